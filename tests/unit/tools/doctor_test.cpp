// dmakit doctor over fake sysfs/proc trees: a ready machine passes, and each
// bad input of issue 13 (no IOMMU, no vfio module, a device in a non-viable
// group, a too-small memlock limit) is one FAIL line with its fix and exit 1.
#include "fake_sysfs.hpp"
#include "mini_json.hpp"
#include "run_tool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

namespace dmakit::testing {
namespace {

// QEMU's intel-iommu Capability Register fields (VT-d 11.4.2): MGAW in bits
// 21:16 (width - 1), SAGAW in bits 12:8 (bit 1: 39-bit, bit 2: 48-bit).
std::string vtd_cap(unsigned mgaw_bits, unsigned sagaw) {
    std::ostringstream text;
    text << std::hex << ((std::uint64_t{mgaw_bits - 1} << 16) | (std::uint64_t{sagaw} << 8) | 0x86);
    return text.str();
}

class DoctorTest : public ::testing::Test {
protected:
    // The bench's shape: one NVMe controller on vfio-pci alone in group 3,
    // with everything a user-space driver needs in place.
    void SetUp() override {
        fake.enable_iommu();
        fake.add_driver("vfio-pci");
        fake.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "vfio-pci", 3, 0});
        fake.write("class/iommu/dmar0/intel-iommu/cap", vtd_cap(39, 0x2) + "\n");
        fake.write("firmware/acpi/tables/DMAR", "");
        fake.write("module/vfio_pci/parameters/ids", "\n");
        fake.write("module/vfio_iommu_type1/parameters/dma_entry_limit", "65535\n");
        fake.write("module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "N\n");
        fake.write("proc/cmdline", "console=ttyS0 intel_iommu=on iommu=pt\n");
        fake.write("proc/interrupts", "           CPU0\n 24:   5   IR-PCI-MSI 65536-edge   vfio-msix\n");
        fake.add_dev_node("vfio/vfio");
        fake.add_dev_node("vfio/3");
        fake.add_hugepages(2048, 64, 64, 0, 0, {{64, 64}});
        set_memlock("unlimited", "unlimited", false);
    }

    void set_memlock(const std::string& soft, const std::string& hard, bool cap_ipc_lock) {
        fake.write("proc/self/limits",
                   "Limit                     Soft Limit           Hard Limit           Units     \n"
                   "Max locked memory         " + soft + "              " + hard + "              bytes     \n");
        fake.write("proc/self/status", std::string("Name:\tdmakit\nVmLck:\t       0 kB\nCapEff:\t") +
                                           (cap_ipc_lock ? "000001ffffffffff" : "0000000000000000") + "\n");
    }

    ToolRun doctor(std::vector<std::string> args = {}) {
        args.insert(args.begin(), {"--sysfs-root", fake.root(), "--proc-root", fake.proc_root(), "doctor"});
        return run_dmakit(args);
    }

    // The one output line about `check` ("STATUS CHECK: ..."); fails the test when not exactly one.
    static std::string line_of(const ToolRun& run, const std::string& check) {
        std::istringstream lines(run.out);
        std::string found;
        int count = 0;
        for (std::string line; std::getline(lines, line);) {
            if (line.size() > 5 && line.compare(5, check.size() + 2, check + ": ") == 0) {
                found = line;
                ++count;
            }
        }
        EXPECT_EQ(count, 1) << "lines about '" << check << "' in:\n" << run.out;
        return found;
    }

    static int count_status(const ToolRun& run, const std::string& status) {
        std::istringstream lines(run.out);
        int count = 0;
        for (std::string line; std::getline(lines, line);) count += line.rfind(status + " ", 0) == 0 ? 1 : 0;
        return count;
    }

    FakeSysfs fake;
};

TEST_F(DoctorTest, ReadyMachinePasses) {
    auto run = doctor({"0000:00:04.0"});
    EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
    EXPECT_EQ(run.err, "");
    EXPECT_EQ(count_status(run, "FAIL"), 0) << run.out;
    EXPECT_EQ(count_status(run, "warn"), 0) << run.out;
    EXPECT_NE(line_of(run, "IOMMU").find("dmar0; 1 IOMMU groups"), std::string::npos);
    EXPECT_EQ(line_of(run, "interrupt remapping").rfind("ok   ", 0), 0u);
    EXPECT_EQ(line_of(run, "0000:00:04.0 driver"), "ok   0000:00:04.0 driver: vfio-pci");
    EXPECT_EQ(line_of(run, "0000:00:04.0 IOMMU group 3"), "ok   0000:00:04.0 IOMMU group 3: viable (1 member)");
    EXPECT_EQ(line_of(run, "/dev/vfio/3").rfind("ok   /dev/vfio/3: usable by uid ", 0), 0u);
    EXPECT_NE(line_of(run, "IOMMU address width").find("39 bits (dmar0 39;"), std::string::npos);
    EXPECT_NE(line_of(run, "VFIO dma_entry_limit").find("65535 mappings"), std::string::npos);
    EXPECT_NE(line_of(run, "hugepages").find("2M: 64 free of 64 (node0 64 of 64)"), std::string::npos);
    EXPECT_EQ(line_of(run, "locked-memory limit"), "ok   locked-memory limit: unlimited");
}

TEST_F(DoctorTest, WithoutDevicesNamedChecksThoseOnVfio) {
    fake.add_device({"0000:00:05.0", 0x8086, 0x10d3, 0x020000, "e1000e", 4, 0});
    auto run = doctor();
    EXPECT_EQ(run.exit_code, 0) << run.out;
    line_of(run, "0000:00:04.0 driver");
    EXPECT_EQ(run.out.find("0000:00:05.0"), std::string::npos) << "not on vfio-pci, not named: " << run.out;
}

TEST_F(DoctorTest, NoIommuIsOneFailLineWithTheFix) {
    FakeSysfs bare;  // no iommu_groups, no class/iommu
    bare.add_driver("vfio-pci");
    bare.write("firmware/acpi/tables/DMAR", "");
    bare.write("proc/cmdline", "console=ttyS0\n");
    auto run = run_dmakit({"--sysfs-root", bare.root(), "--proc-root", bare.proc_root(), "doctor"});
    EXPECT_EQ(run.exit_code, 1) << run.out;
    const std::string line = line_of(run, "IOMMU");
    EXPECT_EQ(line.rfind("FAIL IOMMU: off: the firmware has a DMAR table", 0), 0u) << line;
    EXPECT_NE(line.find("; fix: add intel_iommu=on on the kernel command line"), std::string::npos) << line;

    bare.write("proc/cmdline", "console=ttyS0 intel_iommu=off\n");
    auto off = run_dmakit({"--sysfs-root", bare.root(), "--proc-root", bare.proc_root(), "doctor"});
    EXPECT_NE(line_of(off, "IOMMU").find("fix: remove intel_iommu=off"), std::string::npos) << off.out;

    FakeSysfs nothing;
    auto none = run_dmakit({"--sysfs-root", nothing.root(), "--proc-root", nothing.proc_root(), "doctor"});
    EXPECT_EQ(none.exit_code, 1);
    EXPECT_NE(line_of(none, "IOMMU").find("no DMAR or IVRS ACPI table; fix: turn on VT-d"), std::string::npos)
        << none.out;
}

TEST_F(DoctorTest, NoVfioModuleIsOneFailLineWithTheFix) {
    FakeSysfs bare;
    bare.enable_iommu();
    auto run = run_dmakit({"--sysfs-root", bare.root(), "--proc-root", bare.proc_root(), "doctor"});
    EXPECT_EQ(run.exit_code, 1) << run.out;
    EXPECT_EQ(line_of(run, "vfio-pci"),
              "FAIL vfio-pci: not loaded (no " + bare.root() +
                  "/bus/pci/drivers/vfio-pci); fix: modprobe vfio-pci (at every boot: echo vfio-pci > "
                  "/etc/modules-load.d/vfio-pci.conf)");
    EXPECT_NE(line_of(run, "/dev/vfio/vfio").find("fix: modprobe vfio-pci"), std::string::npos);
    EXPECT_NE(line_of(run, "VFIO dma_entry_limit").find("fix: modprobe vfio_iommu_type1"), std::string::npos);
}

TEST_F(DoctorTest, NonViableGroupNamesTheMemberAndTheBind) {
    fake.add_device({"0000:00:02.0", 0x8086, 0x10d3, 0x020000, "vfio-pci", 5, -1});
    fake.add_device({"0000:00:03.0", 0x8086, 0x10d3, 0x020000, "e1000e", 5, -1});
    fake.add_device({"0000:00:1c.0", 0x8086, 0x2448, 0x060400, "pcieport", 5, -1});  // a bridge: fine
    fake.add_dev_node("vfio/5");
    auto run = doctor({"00:02.0"});
    EXPECT_EQ(run.exit_code, 1) << run.out;
    EXPECT_EQ(count_status(run, "FAIL"), 1) << run.out;
    EXPECT_EQ(line_of(run, "0000:00:02.0 IOMMU group 5"),
              "FAIL 0000:00:02.0 IOMMU group 5: not viable (3 members): 0000:00:03.0 on e1000e; VFIO needs every "
              "member on vfio-pci, pci-stub or no driver (bridges may keep theirs); fix: dmakit bind 0000:00:02.0 "
              "0000:00:03.0 (or move the card to a slot with its own group)");
}

TEST_F(DoctorTest, DeviceOnAnotherDriverSaysBind) {
    fake.add_device({"0000:00:06.0", 0x1b36, 0x0010, 0x010802, "nvme", 6, 0});
    auto run = doctor({"0000:00:06.0"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(line_of(run, "0000:00:06.0 driver"),
              "FAIL 0000:00:06.0 driver: bound to nvme, not vfio-pci; fix: dmakit bind 0000:00:06.0");
    EXPECT_NE(line_of(run, "/dev/vfio/6").find("missing"), std::string::npos);
    auto absent = doctor({"0000:00:09.0"});
    EXPECT_EQ(absent.exit_code, 1);
    EXPECT_NE(line_of(absent, "0000:00:09.0").find("no PCI device at 0000:00:09.0"), std::string::npos);
}

TEST_F(DoctorTest, TooSmallMemlockIsOneFailLineWithTheFix) {
    set_memlock("8388608", "8388608", false);  // Debian's default: 8 MiB
    auto run = doctor({"0000:00:04.0"});
    EXPECT_EQ(run.exit_code, 1) << run.out;
    EXPECT_EQ(count_status(run, "FAIL"), 1) << run.out;
    const std::string line = line_of(run, "locked-memory limit");
    EXPECT_EQ(line.rfind("FAIL locked-memory limit: 8 MiB, but the DMA pool pins 64 MiB", 0), 0u) << line;
    for (const char* part : {"; fix: raise it to at least 64 MiB: ulimit -l 65536", "above the hard limit 8 MiB",
                             "/etc/security/limits.conf", "LimitMEMLOCK=64M", "CAP_IPC_LOCK"}) {
        EXPECT_NE(line.find(part), std::string::npos) << part << " not in: " << line;
    }
    // The same limit with CAP_IPC_LOCK (root) passes; so does a large enough one.
    set_memlock("8388608", "8388608", true);
    EXPECT_EQ(doctor({"0000:00:04.0"}).exit_code, 0);
    set_memlock("67108864", "67108864", false);
    auto enough = doctor({"0000:00:04.0"});
    EXPECT_EQ(enough.exit_code, 0) << enough.out;
    EXPECT_EQ(line_of(enough, "locked-memory limit"),
              "ok   locked-memory limit: 64 MiB, enough for the 64 MiB the DMA pool pins first");
}

TEST_F(DoctorTest, InterruptRemapping) {
    fake.write("proc/interrupts", "           CPU0\n  0:   5   IO-APIC   2-edge   timer\n 24: 1 PCI-MSI 1-edge x\n");
    auto off = doctor();
    EXPECT_EQ(off.exit_code, 1);
    EXPECT_NE(line_of(off, "interrupt remapping").find("FAIL interrupt remapping: off"), std::string::npos);
    EXPECT_NE(line_of(off, "interrupt remapping").find("allow_unsafe_interrupts=1"), std::string::npos);
    fake.write("module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "Y\n");
    auto unsafe = doctor();
    EXPECT_EQ(unsafe.exit_code, 0) << unsafe.out;
    EXPECT_NE(line_of(unsafe, "interrupt remapping").find("warn interrupt remapping: off"), std::string::npos);
    fake.write("proc/interrupts", "           CPU0\n");
    auto unknown = doctor();
    EXPECT_NE(line_of(unknown, "interrupt remapping").find("warn interrupt remapping: cannot be determined"),
              std::string::npos);
}

TEST_F(DoctorTest, AddressWidthFromTheCapabilityRegister) {
    fake.write("class/iommu/dmar0/intel-iommu/cap", vtd_cap(48, 0x6) + "\n");
    EXPECT_NE(line_of(doctor(), "IOMMU address width").find("ok   IOMMU address width: 48 bits"), std::string::npos);
    // MGAW caps what SAGAW allows: a 36-bit unit with a 39-bit table.
    fake.write("class/iommu/dmar0/intel-iommu/cap", vtd_cap(36, 0x2) + "\n");
    auto narrow = doctor();
    EXPECT_EQ(narrow.exit_code, 0);
    EXPECT_NE(line_of(narrow, "IOMMU address width").find("warn IOMMU address width: 36 bits"), std::string::npos)
        << narrow.out;
    fake.write("class/iommu/dmar0/intel-iommu/cap", "zz\n");
    EXPECT_NE(line_of(doctor(), "IOMMU address width").find("warn IOMMU address width: unknown"), std::string::npos);
}

TEST_F(DoctorTest, HugepagesShortWarnsWithTheReserveCommand) {
    fake.add_hugepages(2048, 16, 8, 0, 0, {{16, 8}});
    auto run = doctor();
    EXPECT_EQ(run.exit_code, 0) << "4 KiB pages still work: " << run.out;
    const std::string line = line_of(run, "hugepages");
    EXPECT_EQ(line.rfind("warn hugepages: 2M: 8 free of 16 (node0 8 of 16)", 0), 0u) << line;
    EXPECT_NE(line.find("fix: dmakit hugepages --reserve 32"), std::string::npos) << line;
}

TEST_F(DoctorTest, JsonHasOneObjectPerCheck) {
    set_memlock("65536", "65536", false);
    auto run = doctor({"--json", "0000:00:04.0"});
    EXPECT_EQ(run.exit_code, 1);
    auto checks = parse_object_array(run.out);
    ASSERT_TRUE(checks) << run.out;
    auto text = doctor({"0000:00:04.0"});
    EXPECT_EQ(checks->size(), static_cast<std::size_t>(std::count(text.out.begin(), text.out.end(), '\n')));
    bool memlock = false;
    for (const auto& check : *checks) {
        for (const char* key : {"check", "status", "detail", "fix"}) EXPECT_TRUE(check.count(key)) << key;
        if (check.at("check") == "\"locked-memory limit\"") {
            memlock = true;
            EXPECT_EQ(check.at("status"), "\"fail\"");
            EXPECT_NE(check.at("fix").find("ulimit -l 65536"), std::string::npos);
        } else {
            EXPECT_EQ(check.at("status"), "\"ok\"") << check.at("check");
            EXPECT_EQ(check.at("fix"), "null");
        }
    }
    EXPECT_TRUE(memlock);
}

TEST_F(DoctorTest, BadArguments) {
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"--bogus"}, {"0000:0g:00.0"}, {"00:04.0", "0000:00:04.0"}, {"--json", "x"}}) {
        auto run = doctor(args);
        EXPECT_EQ(run.exit_code, 2) << args[0];
        EXPECT_EQ(run.out, "");
        EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
        EXPECT_NE(run.err.find("dmakit doctor --help"), std::string::npos) << run.err;
    }
    auto help = doctor({"--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_EQ(help.out.rfind("usage: dmakit doctor", 0), 0u);
}

}  // namespace
}  // namespace dmakit::testing
