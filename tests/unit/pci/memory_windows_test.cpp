#include <dmakit/pci/memory_windows.hpp>

#include "fake_sysfs.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace dmakit::pci {
namespace {

using testing::FakeSysfs;

// A q35 guest's /proc/iomem as root (QEMU 7.2, 2 GiB), shortened, with the
// nesting the kernel prints and a 64-bit window above 4 GiB.
constexpr const char* kQ35Iomem =
    "00000000-00000fff : Reserved\n"
    "00001000-0009fbff : System RAM\n"
    "000a0000-000bffff : PCI Bus 0000:00\n"
    "000f0000-000fffff : System ROM\n"
    "00100000-7ffdefff : System RAM\n"
    "  2c000000-2ce01e57 : Kernel code\n"
    "80000000-afffffff : PCI Bus 0000:00\n"
    "b0000000-bfffffff : PCI MMCONFIG 0000 [bus 00-ff]\n"
    "  b0000000-bfffffff : Reserved\n"
    "c0000000-febfffff : PCI Bus 0000:00\n"
    "  fe800000-fe803fff : 0000:00:02.0\n"
    "  febe0000-febe3fff : 0000:00:04.0\n"
    "    febe0000-febe3fff : vfio-pci\n"
    "  fec00000-fec003ff : IOAPIC 0\n"
    "fed1c000-fed1ffff : Reserved\n"
    "  fed1f410-fed1f414 : iTCO_wdt.0.auto\n"
    "fee00000-fee00fff : Local APIC\n"
    "fffc0000-ffffffff : Reserved\n"
    "100000000-17fffffff : System RAM\n"
    "380000000000-3807ffffffff : PCI Bus 0000:00\n"
    "  380000000000-380000003fff : 0000:00:03.0\n";

TEST(ParseIomem, FindsHostBridgeWindowsAndEcamAtAnyNesting) {
    IomemWindows parsed = parse_iomem(kQ35Iomem);
    EXPECT_FALSE(parsed.addresses_hidden);
    EXPECT_EQ(parsed.skipped_lines, 0u);
    EXPECT_EQ(parsed.entries, 21u);
    const std::vector<MemoryWindow> expected{
        {0xa0000, 0xbffff, "PCI Bus 0000:00"},
        {0x80000000, 0xafffffff, "PCI Bus 0000:00"},
        {0xb0000000, 0xbfffffff, "PCI MMCONFIG 0000 [bus 00-ff]"},
        {0xc0000000, 0xfebfffff, "PCI Bus 0000:00"},
        {0x380000000000, 0x3807ffffffff, "PCI Bus 0000:00"},
    };
    EXPECT_EQ(parsed.windows, expected);
}

TEST(ParseIomem, NestedBridgeWindowsAndEcamAreKept) {
    IomemWindows parsed = parse_iomem(
        "c0000000-febfffff : PCI Bus 0000:00\n"
        "  fe000000-fe1fffff : PCI Bus 0000:01\n"
        "    fe000000-fe0fffff : PCI Bus 0000:02\n"
        "      fe000000-fe003fff : 0000:02:00.0\n"
        "4000000000-7fffffffff : PCI ECAM 0000 [bus 00-ff]\n");
    ASSERT_EQ(parsed.windows.size(), 4u);
    EXPECT_EQ(parsed.windows[1], (MemoryWindow{0xfe000000, 0xfe1fffff, "PCI Bus 0000:01"}));
    EXPECT_EQ(parsed.windows[2], (MemoryWindow{0xfe000000, 0xfe0fffff, "PCI Bus 0000:02"}));
    EXPECT_EQ(parsed.windows[3].name, "PCI ECAM 0000 [bus 00-ff]");
    EXPECT_EQ(parsed.windows[3].last, 0x7fffffffffu);
}

TEST(ParseIomem, NonRootViewIsDetectedAsHidden) {
    // What a non-root reader gets: the same lines, every address zero.
    IomemWindows parsed = parse_iomem(
        "00000000-00000000 : Reserved\n"
        "00000000-00000000 : System RAM\n"
        "00000000-00000000 : PCI Bus 0000:00\n"
        "  00000000-00000000 : 0000:00:02.0\n"
        "00000000-00000000 : PCI MMCONFIG 0000 [bus 00-ff]\n");
    EXPECT_TRUE(parsed.addresses_hidden);
    EXPECT_TRUE(parsed.windows.empty());
    EXPECT_EQ(parsed.entries, 5u);
}

TEST(ParseIomem, EmptyTextIsNotHidden) {
    IomemWindows parsed = parse_iomem("");
    EXPECT_FALSE(parsed.addresses_hidden);
    EXPECT_EQ(parsed.entries, 0u);
    EXPECT_TRUE(parsed.windows.empty());
}

TEST(ParseIomem, GarbageLinesAreCountedAndSkipped) {
    const std::string text = std::string("80000000-afffffff : PCI Bus 0000:00\n") +
                             "not a line at all\n"
                             "80000000 : PCI Bus 0000:00\n"                  // no dash
                             "80000000-afffffff PCI Bus 0000:00\n"            // no separator
                             "afffffff-80000000 : PCI Bus 0000:00\n"          // backwards
                             "-afffffff : PCI Bus 0000:00\n"                  // no start
                             "80000000- : PCI Bus 0000:00\n"                  // no end
                             "0x80000000-0xafffffff : PCI Bus 0000:00\n"      // prefix
                             "+80000000-afffffff : PCI Bus 0000:00\n"         // sign
                             "80000000-afffffzz : PCI Bus 0000:00\n"          // bad digit
                             "10000000000000000-1ffffffffffffffff : PCI Bus 0000:00\n"  // > 64 bit
                             "80000000-afffffff : \n"                          // no name
                             "c0000000-febfffff : PCI Bus 0000:00\r\n"
                             "   \n"
                             "d0000000-d0000fff : x - y : z\n";
    IomemWindows parsed = parse_iomem(text);
    EXPECT_EQ(parsed.skipped_lines, 11u);
    EXPECT_EQ(parsed.entries, 3u);
    const std::vector<MemoryWindow> expected{
        {0x80000000, 0xafffffff, "PCI Bus 0000:00"},
        {0xc0000000, 0xfebfffff, "PCI Bus 0000:00"},
    };
    EXPECT_EQ(parsed.windows, expected);
}

TEST(ParseIomem, BinaryAndUnterminatedInputDoesNotCrash) {
    std::string junk;
    for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 131 + 7) & 0xff));
    IomemWindows parsed = parse_iomem(junk);
    EXPECT_TRUE(parsed.windows.empty());
    // The last line without '\n' still counts.
    IomemWindows last = parse_iomem("ffffffffffffffff-ffffffffffffffff : PCI Bus 0000:ff");
    ASSERT_EQ(last.windows.size(), 1u);
    EXPECT_EQ(last.windows[0].start, ~std::uint64_t{0});
}

constexpr const char* kNvmeResource =
    "0x00000000febe0000 0x00000000febe3fff 0x0000000000140204\n"   // BAR0, 64-bit mem
    "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
    "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
    "0x000000000000c000 0x000000000000c03f 0x0000000000040101\n"   // BAR3, I/O ports
    "0x0000380000000000 0x0000380000003fff 0x000000000014220c\n"   // BAR4, 64-bit prefetchable
    "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
    "0x00000000feb80000 0x00000000febbffff 0x0000000000046200\n";  // ROM

TEST(ParseResourceFile, KeepsAssignedMemoryResourcesOnly) {
    ResourceWindows parsed = parse_resource_file(kNvmeResource, "0000:00:04.0");
    EXPECT_EQ(parsed.skipped_lines, 0u);
    const std::vector<MemoryWindow> expected{
        {0xfebe0000, 0xfebe3fff, "0000:00:04.0 BAR 0"},
        {0x380000000000, 0x380000003fff, "0000:00:04.0 BAR 4"},
        {0xfeb80000, 0xfebbffff, "0000:00:04.0 ROM"},
    };
    EXPECT_EQ(parsed.windows, expected);
}

TEST(ParseResourceFile, BridgeWindowsAreNamedByIndexAndUnsetOnesSkipped) {
    std::string text;
    for (int i = 0; i < 7; ++i) text += "0x0000000000000000 0x0000000000000000 0x0000000000000000\n";
    text += "0x00000000fe000000 0x00000000fe1fffff 0x0000000000000200\n";  // resource 7
    text += "0x0000000000000000 0x00000000001fffff 0x0000000020000200\n";  // unset
    text += "0x00000000fd000000 0x00000000fd0fffff 0x0000000010000200\n";  // disabled
    ResourceWindows parsed = parse_resource_file(text, "0000:00:1c.0");
    ASSERT_EQ(parsed.windows.size(), 1u);
    EXPECT_EQ(parsed.windows[0], (MemoryWindow{0xfe000000, 0xfe1fffff, "0000:00:1c.0 resource 7"}));
}

TEST(ParseResourceFile, GarbageLinesAreCountedAndSkipped) {
    ResourceWindows parsed = parse_resource_file(
        "0x00000000febe0000 0x00000000febe3fff\n"                               // two fields
        "0x00000000febe0000 0x00000000febe3fff 0x200 0x1\n"                     // four
        "febe0000 febe3fff 200\n"                                               // no 0x
        "0x00000000febe3fff 0x00000000febe0000 0x0000000000000200\n"            // backwards
        "0x10000000000000000 0x10000000000000fff 0x0000000000000200\n"          // > 64 bit
        "0x 0x1 0x200\n"                                                        // empty number
        "0x-1 0x1 0x200\n"
        "\t0x00000000fe800000\t0x00000000fe803fff   0x0000000000040200  \n",    // odd blanks: fine
        "0000:00:02.0");
    EXPECT_EQ(parsed.skipped_lines, 7u);
    ASSERT_EQ(parsed.windows.size(), 1u);
    // Index counts every non-blank line, garbage included, as the kernel's file has one per resource.
    EXPECT_EQ(parsed.windows[0], (MemoryWindow{0xfe800000, 0xfe803fff, "0000:00:02.0 resource 7"}));
}

struct CapturedLog {
    Logger logger{LogLevel::debug, [this](LogLevel level, std::string_view message) {
                      if (level == LogLevel::warning) warnings.emplace_back(message);
                  }};
    std::vector<std::string> warnings;
};

class ReadMemoryWindows : public ::testing::Test {
protected:
    void SetUp() override {
        fake.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "vfio-pci", 3, -1});
        fake.add_device({"0000:00:02.0", 0x8086, 0x10d3, 0x020000, "vfio-pci", 4, -1});
        fake.add_device({"0000:00:1f.0", 0x8086, 0x2918, 0x060100, std::nullopt, std::nullopt, -1});
        fake.write("bus/pci/devices/0000:00:04.0/resource", kNvmeResource);
        fake.write("bus/pci/devices/0000:00:02.0/resource",
                   "0x00000000fe800000 0x00000000fe81ffff 0x0000000000040200\n"
                   "0x00000000fe820000 0x00000000fe83ffff 0x0000000000040200\n"
                   "0x000000000000c040 0x000000000000c05f 0x0000000000040101\n");
        // 00:1f.0 has no resource file (as if removed after the listing).
        iomem = fake.root() + "/iomem";
    }
    void write_iomem(const std::string& text) { std::ofstream(iomem) << text; }

    FakeSysfs fake;
    std::string iomem;
    CapturedLog log;
};

TEST_F(ReadMemoryWindows, MergesIomemAndSysfsSortedByStart) {
    write_iomem(kQ35Iomem);
    auto windows = read_memory_windows({iomem, fake.root()}, log.logger);
    ASSERT_TRUE(windows.ok()) << windows.error();
    EXPECT_TRUE(log.warnings.empty()) << log.warnings.front();
    ASSERT_EQ(windows->size(), 10u);
    for (std::size_t i = 1; i < windows->size(); ++i) {
        EXPECT_LE((*windows)[i - 1].start, (*windows)[i].start);
    }
    auto has = [&](std::uint64_t start, std::uint64_t last, const std::string& name) {
        for (const auto& w : *windows) {
            if (w == MemoryWindow{start, last, name}) return true;
        }
        return false;
    };
    EXPECT_TRUE(has(0xc0000000, 0xfebfffff, "PCI Bus 0000:00"));
    EXPECT_TRUE(has(0xb0000000, 0xbfffffff, "PCI MMCONFIG 0000 [bus 00-ff]"));
    EXPECT_TRUE(has(0x380000000000, 0x3807ffffffff, "PCI Bus 0000:00"));
    EXPECT_TRUE(has(0xfebe0000, 0xfebe3fff, "0000:00:04.0 BAR 0"));
    EXPECT_TRUE(has(0xfe820000, 0xfe83ffff, "0000:00:02.0 BAR 1"));
}

TEST_F(ReadMemoryWindows, HiddenIomemFallsBackToSysfsWithAWarning) {
    write_iomem("00000000-00000000 : Reserved\n00000000-00000000 : PCI Bus 0000:00\n");
    auto windows = read_memory_windows({iomem, fake.root()}, log.logger);
    ASSERT_TRUE(windows.ok()) << windows.error();
    EXPECT_EQ(windows->size(), 5u);  // BARs and ROMs only
    for (const auto& w : *windows) EXPECT_EQ(w.name.find("PCI Bus"), std::string::npos);
    ASSERT_EQ(log.warnings.size(), 1u);
    EXPECT_NE(log.warnings[0].find("not root"), std::string::npos) << log.warnings[0];
}

TEST_F(ReadMemoryWindows, MissingIomemFallsBackToSysfsWithAWarning) {
    auto windows = read_memory_windows({iomem + ".missing", fake.root()}, log.logger);
    ASSERT_TRUE(windows.ok()) << windows.error();
    EXPECT_EQ(windows->size(), 5u);
    ASSERT_EQ(log.warnings.size(), 1u);
    EXPECT_NE(log.warnings[0].find("cannot read"), std::string::npos) << log.warnings[0];
}

TEST_F(ReadMemoryWindows, GarbageIsReportedWithItsCount) {
    write_iomem(std::string(kQ35Iomem) + "garbage\nmore garbage\n");
    fake.write("bus/pci/devices/0000:00:02.0/resource", "nonsense\n");
    auto windows = read_memory_windows({iomem, fake.root()}, log.logger);
    ASSERT_TRUE(windows.ok()) << windows.error();
    EXPECT_EQ(windows->size(), 8u);
    ASSERT_EQ(log.warnings.size(), 2u);
    EXPECT_NE(log.warnings[0].find("skipped 2 line(s)"), std::string::npos) << log.warnings[0];
    EXPECT_NE(log.warnings[1].find("skipped 1 line(s)"), std::string::npos) << log.warnings[1];
}

TEST(ReadMemoryWindowsNoSysfs, NoPciBusIsAnError) {
    CapturedLog log;
    auto windows = read_memory_windows({"/nonexistent/iomem", "/nonexistent/sys"}, log.logger);
    ASSERT_FALSE(windows.ok());
    EXPECT_EQ(windows.error().code(), ENOENT);
    EXPECT_NE(windows.error().message().find("PCI BARs"), std::string::npos)
        << windows.error();
}

}  // namespace
}  // namespace dmakit::pci
