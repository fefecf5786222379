// Runs the built dmakit binary over a fake sysfs tree: exit codes, the
// one-line errors, and the list/hugepages output.
#include "fake_sysfs.hpp"
#include "mini_json.hpp"
#include "run_tool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

namespace dmakit::testing {
namespace {

// Exactly one line, starting "dmakit: error: ".
::testing::AssertionResult IsOneErrorLine(const std::string& err) {
    if (err.rfind("dmakit: error: ", 0) != 0) return ::testing::AssertionFailure() << "stderr: " << err;
    if (std::count(err.begin(), err.end(), '\n') != 1 || err.back() != '\n') {
        return ::testing::AssertionFailure() << "not one line: " << err;
    }
    return ::testing::AssertionSuccess();
}

// A runtime failure: exit 1, one error line containing `text`.
::testing::AssertionResult FailsSaying(const ToolRun& run, const std::string& text) {
    if (run.exit_code != 1) return ::testing::AssertionFailure() << "exit " << run.exit_code << ": " << run.err;
    if (auto one = IsOneErrorLine(run.err); !one) return one;
    if (run.err.find(text) == std::string::npos) return ::testing::AssertionFailure() << "no '" << text << "' in " << run.err;
    return ::testing::AssertionSuccess();
}

class ToolTest : public ::testing::Test {
protected:
    void SetUp() override {
        fake.enable_iommu();
        fake.add_driver("vfio-pci");
        fake.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "nvme", 3, 0});
        fake.add_device({"0000:00:02.0", 0x8086, 0x10d3, 0x020000, "e1000e", 5, -1});
        fake.add_device({"0000:00:03.0", 0x8086, 0x10d3, 0x020000, "e1000e", 5, -1});
        fake.add_device({"0000:00:01.0", 0x8086, 0x29c0, 0x060000, std::nullopt, std::nullopt, -1});

        ids = fake.root() + "/pci.ids";
        std::ofstream(ids) << "1b36  Red Hat, Inc.\n"
                              "\t0010  QEMU NVM Express Controller\n"
                              "8086  Intel Corporation\n"
                              "\t10d3  82574L Gigabit \"Network\" Connection\n"
                              "C 01  Mass storage controller\n"
                              "\t08  Non-Volatile memory controller\n"
                              "C 02  Network controller\n"
                              "\t00  Ethernet controller\n";
    }

    ToolRun dmakit(std::vector<std::string> args) {
        args.insert(args.begin(), {"--sysfs-root", fake.root(), "--proc-root", fake.proc_root(), "--pci-ids", ids});
        return run_dmakit(args);
    }

    FakeSysfs fake;
    std::string ids;
};

TEST_F(ToolTest, HelpEverywhere) {
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"--help"}, {"list", "--help"}, {"bind", "--help"}, {"unbind", "-h"}, {"hugepages", "--help"},
             {"doctor", "--help"}}) {
        auto run = dmakit(args);
        EXPECT_EQ(run.exit_code, 0) << args[0];
        EXPECT_NE(run.out.find("usage: dmakit"), std::string::npos) << run.out;
        EXPECT_EQ(run.err, "");
    }
}

TEST_F(ToolTest, UsageErrorsExitTwoWithOneLine) {
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"frobnicate"}, {"list", "--bogus"}, {"bind"}, {"unbind"}, {"bind", "--force"}, {"bind", "--frobnicate"},
             {"unbind", "--force", "0000:00:04.0"}, {"bind", "0000:00:04.0", "00:04.0"},
             {"hugepages", "--reserve", "nan"}, {"hugepages", "--reserve", "18446744073709551616"},
             {"hugepages", "--node", "-1"},
             {"hugepages", "--size", "3M"}, {"hugepages", "--reserve", "many"}, {"hugepages", "--reserve"}}) {
        auto run = dmakit(args);
        EXPECT_EQ(run.exit_code, 2) << args[0];
        EXPECT_TRUE(IsOneErrorLine(run.err));
        EXPECT_NE(run.err.find("--help"), std::string::npos) << run.err;
    }
    auto bare = run_dmakit({});
    EXPECT_EQ(bare.exit_code, 2);
}

TEST_F(ToolTest, MalformedAddresses) {
    for (const char* bad : {"0000:0g:00.0", "1:2:3", "0000:00:20.0", "00:04.9"}) {
        auto run = dmakit({"bind", bad});
        EXPECT_EQ(run.exit_code, 2) << bad;
        EXPECT_TRUE(IsOneErrorLine(run.err));
        EXPECT_NE(run.err.find(std::string("'") + bad + "'"), std::string::npos) << run.err;
        EXPECT_NE(run.err.find("expected DDDD:BB:DD.F"), std::string::npos) << run.err;
    }
}

TEST_F(ToolTest, MissingDevice) {
    for (const char* command : {"bind", "unbind"}) {
        auto run = dmakit({command, "0000:00:09.0"});
        EXPECT_EQ(run.exit_code, 1);
        EXPECT_EQ(run.err, "dmakit: error: no PCI device at 0000:00:09.0; run: dmakit list [ENOENT]\n");
    }
}

TEST_F(ToolTest, GroupRefusalNamesTheMember) {
    auto run = dmakit({"bind", "0000:00:02.0"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_TRUE(IsOneErrorLine(run.err));
    EXPECT_NE(run.err.find("0000:00:03.0, which is bound to e1000e"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("dmakit bind 0000:00:02.0 0000:00:03.0"), std::string::npos) << run.err;
    EXPECT_EQ(fake.read("bus/pci/drivers_probe"), "") << "nothing may be written";
}

TEST_F(ToolTest, AlreadyBoundIsSuccess) {
    fake.set_driver("0000:00:04.0", "vfio-pci");
    auto run = dmakit({"bind", "00:04.0"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out, "0000:00:04.0: already on vfio-pci\n");
}

TEST_F(ToolTest, BindUserGivesTheGroupNode) {
    fake.set_driver("0000:00:04.0", "vfio-pci");
    fake.add_dev_node("vfio/3");
    const std::string node = fake.root() + "/rootfs/dev/vfio/3";
    ASSERT_EQ(::chmod(node.c_str(), 0644), 0);
    // Root may give the node to anyone; anyone else only to themselves.
    const uid_t uid = ::geteuid() == 0 ? 54321 : ::geteuid();
    auto run = dmakit({"bind", "--user", std::to_string(uid), "0000:00:04.0"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out.rfind("0000:00:04.0: already on vfio-pci; /dev/vfio/3 given to uid " + std::to_string(uid), 0),
              0u) << run.out;
    EXPECT_NE(run.out.find(", mode 0600\n"), std::string::npos) << run.out;
    struct stat st {};
    ASSERT_EQ(::stat(node.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, uid);
    EXPECT_EQ(st.st_mode & 07777, 0600u);

    // By name: root is in every password database (only root may give a node to root).
    if (::geteuid() == 0) {
        auto by_name = dmakit({"bind", "--user=root", "00:04.0"});
        EXPECT_EQ(by_name.exit_code, 0) << by_name.err;
        EXPECT_NE(by_name.out.find("given to uid 0 (root), mode 0600"), std::string::npos) << by_name.out;
        ASSERT_EQ(::stat(node.c_str(), &st), 0);
        EXPECT_EQ(st.st_uid, 0u);
    }
}

TEST_F(ToolTest, BindUserRefusesUnknownUsersBeforeBinding) {
    for (const char* user : {"no-such-user-dmakit", "4294967295", ""}) {
        auto run = dmakit({"bind", "--user", user, "0000:00:04.0"});
        EXPECT_EQ(run.exit_code, 2) << user;
        EXPECT_TRUE(IsOneErrorLine(run.err));
        EXPECT_NE(run.err.find(std::string("no user '") + user + "'"), std::string::npos) << run.err;
    }
    EXPECT_EQ(fake.read("bus/pci/devices/0000:00:04.0/driver_override"), "") << "nothing may be written";
    EXPECT_EQ(fake.read("bus/pci/drivers_probe"), "");
}

TEST_F(ToolTest, BindUserWithoutTheNodeFails) {
    fake.set_driver("0000:00:04.0", "vfio-pci");
    auto run = dmakit({"bind", "--user", "1000", "0000:00:04.0"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_NE(run.err.find("dmakit: error: giving /dev/vfio/3 to uid 1000"), std::string::npos) << run.err;
}

TEST_F(ToolTest, BindWritesTheSysfsSequence) {
    // The fake cannot move the driver, so verification fails, but the writes
    // happened; then the rollback clears the override again ("\n" written
    // over "vfio-pci": a plain file is not truncated as a sysfs attribute is).
    auto run = dmakit({"bind", "0000:00:04.0"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_TRUE(IsOneErrorLine(run.err));
    EXPECT_NE(run.err.find("did not bind to vfio-pci (driver now: nvme)"), std::string::npos) << run.err;
    EXPECT_EQ(fake.read("bus/pci/devices/0000:00:04.0/driver_override"), "\nfio-pci");
    EXPECT_EQ(fake.read("bus/pci/drivers/nvme/unbind"), "0000:00:04.0");
    EXPECT_EQ(fake.read("bus/pci/drivers_probe"), "0000:00:04.0");
}

TEST_F(ToolTest, NoPermission) {
    const std::string attr = fake.root() + "/bus/pci/devices/0000:00:04.0/driver_override";
    if (::geteuid() != 0) {
        std::filesystem::permissions(attr, std::filesystem::perms::owner_read);
    } else {
        // Root ignores file modes, but kernfs refuses to open a read-only
        // attribute for writing (EACCES); point the fake attribute at one.
        const char* read_only = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
        if (!std::filesystem::exists(read_only)) GTEST_SKIP() << "root and no read-only sysfs attribute";
        std::filesystem::remove(attr);
        std::filesystem::create_symlink(read_only, attr);
    }
    auto run = dmakit({"bind", "0000:00:04.0"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_TRUE(IsOneErrorLine(run.err));
    EXPECT_NE(run.err.find("Permission denied (run as root"), std::string::npos) << run.err;
}

TEST(ToolNoIommu, BindSaysVfioIsNotEnabled) {
    FakeSysfs fake;
    fake.add_driver("vfio-pci");
    fake.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "nvme", std::nullopt, -1});
    auto run = run_dmakit({"--sysfs-root", fake.root(), "bind", "0000:00:04.0"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_TRUE(IsOneErrorLine(run.err));
    EXPECT_NE(run.err.find("VFIO/IOMMU is not enabled"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("intel_iommu=on"), std::string::npos) << run.err;

    // list still works and shows no groups.
    auto list = run_dmakit({"--sysfs-root", fake.root(), "list", "--json"});
    EXPECT_EQ(list.exit_code, 0) << list.err;
    auto devices = parse_object_array(list.out);
    ASSERT_TRUE(devices) << list.out;
    ASSERT_EQ(devices->size(), 1u);
    EXPECT_EQ((*devices)[0]["iommu_group"], "null");
}

TEST_F(ToolTest, ListJson) {
    auto run = dmakit({"list", "--json"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err, "");
    auto devices = parse_object_array(run.out);
    ASSERT_TRUE(devices) << "not a JSON array of objects:\n" << run.out;
    ASSERT_EQ(devices->size(), 4u);
    for (const auto& d : *devices) {
        for (const char* key : {"address", "vendor_id", "device_id", "vendor", "device", "class",
                                "driver", "dmakit_driver", "iommu_group", "numa_node"}) {
            EXPECT_EQ(d.count(key), 1u) << key;
        }
        EXPECT_EQ(d.size(), 10u);
    }
    auto& bridge = (*devices)[0];
    EXPECT_EQ(bridge["address"], "\"0000:00:01.0\"");
    EXPECT_EQ(bridge["driver"], "null");
    EXPECT_EQ(bridge["dmakit_driver"], "null");
    EXPECT_EQ(bridge["iommu_group"], "null");
    EXPECT_EQ(bridge["class"], "\"0600\"");  // not in the test pci.ids: hex

    auto& nic = (*devices)[1];
    EXPECT_EQ(nic["address"], "\"0000:00:02.0\"");
    EXPECT_EQ(nic["vendor_id"], "\"8086\"");
    EXPECT_EQ(nic["device_id"], "\"10d3\"");
    EXPECT_EQ(nic["device"], "\"82574L Gigabit \"Network\" Connection\"");  // escaped and read back
    EXPECT_EQ(nic["class"], "\"Ethernet controller\"");
    EXPECT_EQ(nic["driver"], "\"e1000e\"");
    EXPECT_EQ(nic["dmakit_driver"], "\"e1000e\"");
    EXPECT_EQ(nic["iommu_group"], "5");
    EXPECT_EQ(nic["numa_node"], "null");

    auto& nvme = (*devices)[3];
    EXPECT_EQ(nvme["address"], "\"0000:00:04.0\"");
    EXPECT_EQ(nvme["vendor_id"], "\"1b36\"");
    EXPECT_EQ(nvme["device_id"], "\"0010\"");
    EXPECT_EQ(nvme["vendor"], "\"Red Hat, Inc.\"");
    EXPECT_EQ(nvme["device"], "\"QEMU NVM Express Controller\"");
    EXPECT_EQ(nvme["class"], "\"Non-Volatile memory controller\"");
    EXPECT_EQ(nvme["iommu_group"], "3");
    EXPECT_EQ(nvme["dmakit_driver"], "\"nvme\"");
    EXPECT_EQ(nvme["numa_node"], "0");
}

TEST_F(ToolTest, ListTable) {
    auto run = dmakit({"list"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out.rfind("ADDRESS ", 0), 0u) << run.out;
    EXPECT_NE(run.out.find(" DMAKIT "), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("0000:00:04.0  1b36:0010"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("Red Hat, Inc. QEMU NVM Express Controller"), std::string::npos) << run.out;
    EXPECT_EQ(std::count(run.out.begin(), run.out.end(), '\n'), 5);
}

// Config space with Status.Capabilities List set and `caps` as (offset, id,
// next, byte after next) from the pointer at 0x34.
std::vector<std::uint8_t> config_with(std::size_t size, std::uint8_t first,
                                      std::vector<std::array<std::uint8_t, 4>> caps) {
    std::vector<std::uint8_t> bytes(size, 0);
    bytes[0x06] = 0x10;
    bytes[0x34] = first;
    for (const auto& c : caps) {
        for (std::size_t i = 1; i < 4; ++i) bytes[c[0] + i - 1] = c[i];
    }
    return bytes;
}

class ToolListVerboseTest : public ToolTest {
protected:
    void SetUp() override {
        ToolTest::SetUp();
        // QEMU's NVMe: MSI-X -> PCIe v2 -> PM, then AER; a NIC whose list
        // (vendor-specific, MSI) loops back; the host bridge has none (the
        // 64 bytes a non-root reader sees); 0000:00:03.0 has no config file.
        auto nvme = config_with(4096, 0x40, {{0x40, 0x11, 0x80, 0}, {0x80, 0x10, 0x60, 2}, {0x60, 0x01, 0x00, 3}});
        nvme[0x100] = 0x01;  // extended: AER version 1, last
        nvme[0x102] = 0x01;
        fake.set_config("0000:00:04.0", nvme);
        fake.set_config("0000:00:02.0", config_with(256, 0x40, {{0x40, 0x09, 0x50, 16}, {0x50, 0x05, 0x40, 0}}));
        fake.set_config("0000:00:01.0", std::vector<std::uint8_t>(64, 0));
    }
};

TEST_F(ToolListVerboseTest, TableListsEachDevicesCapabilities) {
    auto run = dmakit({"list", "-v"});
    ASSERT_EQ(run.exit_code, 0) << run.err;  // one bad device does not stop the listing
    EXPECT_NE(run.out.find("\nADDRESS       CAPABILITIES\n"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("0000:00:01.0  none\n"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("0000:00:02.0  unreadable: malformed PCI capability list: the next pointer of "
                           "capability 0x5 (MSI) at 0x50 points back to 0x40: the list loops\n"),
              std::string::npos)
        << run.out;
    EXPECT_NE(run.out.find("0000:00:03.0  unreadable: "), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("0000:00:04.0  0x40 MSI-X, 0x80 PCI Express, 0x60 Power Management; "
                           "extended: 0x100 Advanced Error Reporting v1\n"),
              std::string::npos)
        << run.out;

    auto plain = dmakit({"list"});
    EXPECT_EQ(plain.out.find("CAPABILITIES"), std::string::npos) << "only -v reads config space";
}

TEST_F(ToolListVerboseTest, JsonAddsCapabilityKeys) {
    auto run = dmakit({"list", "--json", "--verbose"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    auto devices = parse_object_array(run.out);
    ASSERT_TRUE(devices) << run.out;
    ASSERT_EQ(devices->size(), 4u);
    for (auto& d : *devices) EXPECT_EQ(d.size(), 13u) << d["address"];  // the 10 keys of list --json and 3 capability keys
    EXPECT_EQ((*devices)[0]["capabilities"], "<nested>");  // the bridge: an empty array
    EXPECT_EQ((*devices)[0]["capabilities_error"], "null");
    EXPECT_EQ((*devices)[1]["capabilities"], "null");
    EXPECT_NE((*devices)[1]["capabilities_error"].find("the list loops"), std::string::npos);
    EXPECT_NE(run.out.find("\"offset\": 64,\n        \"id\": 17,\n        \"name\": \"MSI-X\",\n        \"length\": 12"),
              std::string::npos)
        << run.out;
    EXPECT_NE(run.out.find("\"offset\": 256,\n        \"id\": 1,\n        \"version\": 1,\n        \"name\": "
                           "\"Advanced Error Reporting\",\n        \"length\": 4"),
              std::string::npos)
        << run.out;
}

TEST(ToolMissingSysfs, ListFailsWithOneLine) {
    auto run = run_dmakit({"--sysfs-root", "/nonexistent/dmakit", "list"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_TRUE(IsOneErrorLine(run.err));
}

TEST_F(ToolTest, HugepagesShowsSizesAndNodes) {
    fake.add_hugepages(2048, 64, 60, 2, 0, {{32, 30}, {32, 30}});
    fake.add_hugepages(1048576, 1, 1, 0, 0, {{1, 1}});
    auto run = dmakit({"hugepages", "--json"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    auto pools = parse_object_array(run.out);
    ASSERT_TRUE(pools) << run.out;
    ASSERT_EQ(pools->size(), 2u);
    EXPECT_EQ((*pools)[0]["size"], "\"2M\"");
    EXPECT_EQ((*pools)[0]["total"], "64");
    EXPECT_EQ((*pools)[0]["free"], "60");
    EXPECT_EQ((*pools)[0]["reserved"], "2");
    EXPECT_EQ((*pools)[1]["size"], "\"1G\"");
    EXPECT_NE(run.out.find("\"node\": 1"), std::string::npos) << run.out;

    auto table = dmakit({"hugepages", "--size", "2M", "--node", "1"});
    ASSERT_EQ(table.exit_code, 0) << table.err;
    EXPECT_EQ(table.out,
              "SIZE  NODE  TOTAL  FREE  RESERVED  SURPLUS\n"
              "2M    all   64     60    2         0\n"
              "2M    1     32     30    -         0\n");
}

TEST_F(ToolTest, HugepagesReserveWritesAndReadsBack) {
    fake.add_hugepages(2048, 0, 0, 0, 0, {{0, 0}});
    // A plain file keeps what is written (no O_TRUNC, as for sysfs: "0\n" becomes
    // "128"), as if the kernel granted every page.
    auto run = dmakit({"hugepages", "--reserve", "128"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(fake.read("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"), "128");

    auto node = dmakit({"hugepages", "--reserve", "16", "--node", "0", "--size", "2M"});
    EXPECT_EQ(node.exit_code, 0) << node.err;
    EXPECT_EQ(fake.read("devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"), "16");
}

TEST_F(ToolTest, HugepagesReserveRefusesMoreThanTheMachineCanSpare) {
    fake.add_hugepages(2048, 0, 0, 0, 0);
    fake.set_meminfo(2ull << 20, 1ull << 20);  // 2 GiB total, 1 GiB available, 128 MiB kept
    auto run = dmakit({"hugepages", "--reserve", "18446744073709551615"});
    EXPECT_TRUE(FailsSaying(run, "can spare at most 448"));
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(fake.read("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"), "0\n") << "nothing written";
}

TEST_F(ToolTest, BindRefusesAMountedControllerUnlessForced) {
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1", "259:0");
    fake.add_mount("259:0", "/var/lib/data");
    EXPECT_TRUE(FailsSaying(dmakit({"bind", "0000:00:04.0"}),
                            "nvme0n1 (259:0) is mounted on /var/lib/data; unmount it: umount /var/lib/data, or "
                            "bind anyway with: dmakit bind --force 0000:00:04.0"));
    EXPECT_EQ(fake.read("bus/pci/drivers_probe"), "") << "nothing may be written";

    // --force goes on to the writes (the fake cannot move the driver, so the
    // verify step fails, and the rollback puts the override back).
    auto forced = dmakit({"bind", "--force", "0000:00:04.0"});
    EXPECT_EQ(forced.exit_code, 1);
    EXPECT_NE(forced.err.find("did not bind to vfio-pci"), std::string::npos) << forced.err;
    EXPECT_EQ(fake.read("bus/pci/drivers_probe"), "0000:00:04.0");
}

TEST_F(ToolTest, BindRefusesANicInUse) {
    fake.add_interface("0000:00:02.0", "eth1", true);
    fake.add_ipv4_route("eth1", "00000000");
    EXPECT_TRUE(FailsSaying(dmakit({"bind", "0000:00:02.0", "0000:00:03.0"}),
                            "interface eth1 is up with IPv4 route default; take it down: ip link set dev eth1 down"));
}

TEST_F(ToolTest, BindRefusesAControllerHeldOpen) {
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1", "259:0");
    fake.add_process(977, "fio", {"/dev/nvme0n1"});
    EXPECT_TRUE(FailsSaying(dmakit({"bind", "0000:00:04.0"}),
                            "nvme0n1 is open in process 977 (fio); close it: stop process 977 (fio), e.g. kill 977, "
                            "or bind anyway with: dmakit bind --force 0000:00:04.0"));
    EXPECT_EQ(fake.read("bus/pci/drivers_probe"), "") << "nothing may be written";
}

TEST_F(ToolTest, FakeProcRootDoesNotAskTheKernelForAddresses) {
    // This machine's "lo" has 127.0.0.1, but the fake tree's "lo" has no
    // address: with --proc-root the kernel's answer would describe the wrong
    // machine, so bind goes on to the writes (and fails to verify: the fake
    // cannot move the driver).
    fake.add_interface("0000:00:02.0", "lo", true);
    auto run = dmakit({"bind", "0000:00:02.0", "0000:00:03.0"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_NE(run.err.find("did not bind to vfio-pci"), std::string::npos) << run.err;
}

TEST_F(ToolTest, HugepagesUnsupportedSize) {
    fake.add_hugepages(2048, 0, 0, 0, 0);
    auto run = dmakit({"hugepages", "--reserve", "1", "--size", "1G"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_TRUE(IsOneErrorLine(run.err));
    EXPECT_NE(run.err.find("1G hugepages are not available"), std::string::npos) << run.err;
}

TEST(ToolNoHugepages, ClearError) {
    FakeSysfs fake;
    auto run = run_dmakit({"--sysfs-root", fake.root(), "hugepages"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_TRUE(IsOneErrorLine(run.err));
    EXPECT_NE(run.err.find("hugepage support"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace dmakit::testing
