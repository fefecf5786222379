#include <dmakit/pci/binding.hpp>

#include "fake_sysfs.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>

namespace dmakit::pci {
// Named, not anonymous: the unit programs compile as unity files (tests/meson.build),
// where another file's helpers of the same names share the translation unit.
namespace binding_test {

using testing::FakeDevice;
using testing::FakeSysfs;
using Log = FakeSysfs::WriteLog;
using Write = std::pair<std::string, std::string>;

PciAddress addr(const char* text) { return *PciAddress::parse(text); }

class BindingTest : public ::testing::Test {
protected:
    void SetUp() override {
        fake.enable_iommu();
        fake.add_driver("vfio-pci");
        fake.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "nvme", 3, -1});
        fake.add_device({"0000:00:02.0", 0x8086, 0x10d3, 0x020000, "e1000e", 5, -1});
        fake.add_device({"0000:00:03.0", 0x8086, 0x10d3, 0x020000, "e1000e", 5, -1});
    }
    [[nodiscard]] Binder binder() { return Binder(Sysfs(fake.root()), fake.kernel_writer(log)); }

    FakeSysfs fake;
    Log log;
};

TEST_F(BindingTest, BindWritesOverrideUnbindsProbesAndVerifies) {
    auto status = binder().bind_to_vfio(addr("0000:00:04.0"));
    ASSERT_TRUE(status.ok()) << status.error();
    EXPECT_EQ(log, (Log{
                       Write{"bus/pci/devices/0000:00:04.0/driver_override", "vfio-pci"},
                       Write{"bus/pci/devices/0000:00:04.0/driver/unbind", "0000:00:04.0"},
                       Write{"bus/pci/drivers_probe", "0000:00:04.0"},
                   }));
    EXPECT_EQ(*Sysfs(fake.root()).driver(addr("0000:00:04.0")), "vfio-pci");
}

TEST_F(BindingTest, BindOfUnboundDeviceSkipsUnbind) {
    fake.set_driver("0000:00:04.0", std::nullopt);
    ASSERT_TRUE(binder().bind_to_vfio(addr("0000:00:04.0")).ok());
    EXPECT_EQ(log, (Log{
                       Write{"bus/pci/devices/0000:00:04.0/driver_override", "vfio-pci"},
                       Write{"bus/pci/drivers_probe", "0000:00:04.0"},
                   }));
}

TEST_F(BindingTest, AlreadyOnVfioIsANoOp) {
    fake.set_driver("0000:00:04.0", "vfio-pci");
    ASSERT_TRUE(binder().bind_to_vfio(addr("0000:00:04.0")).ok());
    EXPECT_TRUE(log.empty());
}

TEST_F(BindingTest, UnbindClearsOverrideAndReprobes) {
    ASSERT_TRUE(binder().bind_to_vfio(addr("0000:00:04.0")).ok());
    log.clear();
    auto status = binder().unbind_from_vfio(addr("0000:00:04.0"));
    ASSERT_TRUE(status.ok()) << status.error();
    EXPECT_EQ(log, (Log{
                       Write{"bus/pci/devices/0000:00:04.0/driver_override", "\n"},
                       Write{"bus/pci/devices/0000:00:04.0/driver/unbind", "0000:00:04.0"},
                       Write{"bus/pci/drivers_probe", "0000:00:04.0"},
                   }));
    EXPECT_EQ(*Sysfs(fake.root()).driver(addr("0000:00:04.0")), "nvme");  // native driver is back
}

TEST_F(BindingTest, UnbindOfDeviceNotOnVfioOnlyClearsOverride) {
    ASSERT_TRUE(binder().unbind_from_vfio(addr("0000:00:04.0")).ok());
    EXPECT_EQ(log, (Log{Write{"bus/pci/devices/0000:00:04.0/driver_override", "\n"}}));
    EXPECT_EQ(*Sysfs(fake.root()).driver(addr("0000:00:04.0")), "nvme");
}

TEST_F(BindingTest, RefusesWhenGroupMemberIsOnAnotherDriver) {
    auto status = binder().bind_to_vfio(addr("0000:00:02.0"));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), EBUSY);
    const std::string& m = status.error().message();
    EXPECT_NE(m.find("IOMMU group 5"), std::string::npos) << m;
    EXPECT_NE(m.find("0000:00:03.0"), std::string::npos) << m;
    EXPECT_NE(m.find("bound to e1000e"), std::string::npos) << m;
    EXPECT_NE(m.find("dmakit bind 0000:00:02.0 0000:00:03.0"), std::string::npos) << m;
    EXPECT_TRUE(log.empty()) << "nothing may be written before the group check passes";
}

TEST_F(BindingTest, BindingTheWholeGroupTogetherSucceeds) {
    const std::vector<PciAddress> both = {addr("0000:00:02.0"), addr("0000:00:03.0")};
    auto status = binder().bind_to_vfio(both);
    ASSERT_TRUE(status.ok()) << status.error();
    Sysfs sysfs(fake.root());
    EXPECT_EQ(*sysfs.driver(both[0]), "vfio-pci");
    EXPECT_EQ(*sysfs.driver(both[1]), "vfio-pci");
    EXPECT_EQ(log.size(), 6u);
}

TEST_F(BindingTest, AllowedGroupMembers) {
    // Unbound, pci-stub, vfio-pci and pcieport members, and bridges on any
    // driver, leave the group viable.
    fake.add_device({"0000:00:05.0", 0x1b36, 0x0010, 0x010802, "nvme", 7, -1});
    fake.add_device({"0000:00:06.0", 0x8086, 0x1234, 0x020000, std::nullopt, 7, -1});
    fake.add_device({"0000:00:07.0", 0x8086, 0x1234, 0x020000, "pci-stub", 7, -1});
    fake.add_device({"0000:00:08.0", 0x8086, 0x1234, 0x020000, "vfio-pci", 7, -1});
    fake.add_device({"0000:00:09.0", 0x8086, 0x1234, 0x060400, "pcieport", 7, -1});
    fake.add_device({"0000:00:0a.0", 0x8086, 0x1234, 0x060400, "shpchp", 7, -1});
    auto status = binder().bind_to_vfio(addr("0000:00:05.0"));
    ASSERT_TRUE(status.ok()) << status.error();
}

TEST(DriverAllowed, FollowsVfioViabilityRules) {
    EXPECT_TRUE(driver_allowed_in_vfio_group(std::nullopt, 0x020000));
    EXPECT_TRUE(driver_allowed_in_vfio_group("vfio-pci", 0x020000));
    EXPECT_TRUE(driver_allowed_in_vfio_group("mlx5_vfio_pci", 0x020000));
    EXPECT_TRUE(driver_allowed_in_vfio_group("pci-stub", 0x020000));
    EXPECT_TRUE(driver_allowed_in_vfio_group("pcieport", 0x060400));
    EXPECT_TRUE(driver_allowed_in_vfio_group("anything", 0x060400));  // bridge header
    EXPECT_FALSE(driver_allowed_in_vfio_group("e1000e", 0x020000));
    EXPECT_FALSE(driver_allowed_in_vfio_group("nvme", 0x010802));
}

TEST_F(BindingTest, MissingDeviceIsEnoent) {
    auto status = binder().bind_to_vfio(addr("0000:00:09.0"));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), ENOENT);
    EXPECT_EQ(status.error().message(), "no PCI device at 0000:00:09.0; run: dmakit list");
    auto unbind = binder().unbind_from_vfio(addr("0000:00:09.0"));
    ASSERT_FALSE(unbind.ok());
    EXPECT_EQ(unbind.error().code(), ENOENT);
}

TEST_F(BindingTest, OneBadDeviceStopsTheBatchBeforeAnyWrite) {
    const std::vector<PciAddress> list = {addr("0000:00:04.0"), addr("0000:00:09.0")};
    EXPECT_FALSE(binder().bind_to_vfio(list).ok());
    EXPECT_TRUE(log.empty());
}

TEST_F(BindingTest, VfioPciNotLoaded) {
    std::filesystem::remove_all(fake.root() + "/bus/pci/drivers/vfio-pci");
    auto status = binder().bind_to_vfio(addr("0000:00:04.0"));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), ENODEV);
    EXPECT_NE(status.error().message().find("modprobe vfio-pci"), std::string::npos);
    EXPECT_TRUE(log.empty());
}

TEST(BindingNoIommu, RefusesWithIommuHintBeforeWriting) {
    FakeSysfs fake;
    fake.add_driver("vfio-pci");
    fake.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "nvme", std::nullopt, -1});
    Log log;
    Binder binder(Sysfs(fake.root()), fake.kernel_writer(log));
    auto status = binder.bind_to_vfio(addr("0000:00:04.0"));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), ENODEV);
    EXPECT_NE(status.error().message().find("VFIO/IOMMU is not enabled"), std::string::npos);
    EXPECT_TRUE(log.empty());
}

TEST_F(BindingTest, VerifyFailsWhenVfioDoesNotTakeTheDevice) {
    // A kernel that accepts every write but never moves the driver.
    Binder stuck(Sysfs(fake.root()), [this](const std::string& path, std::string_view value) -> Status {
        log.emplace_back(path, std::string(value));
        return {};
    });
    auto status = stuck.bind_to_vfio(addr("0000:00:04.0"));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), EIO);
    EXPECT_NE(status.error().message().find("did not bind to vfio-pci (driver now: nvme)"),
              std::string::npos)
        << status.error();
}

TEST_F(BindingTest, PermissionFailureSaysRunAsRoot) {
    // What write_text_file reports on EACCES, passed through with context.
    Binder denied(Sysfs(fake.root()), [](const std::string& path, std::string_view) -> Status {
        return system_error(EACCES, "write to " + path, "run as root");
    });
    auto status = denied.bind_to_vfio(addr("0000:00:04.0"));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), EACCES);
    const std::string& m = status.error().message();
    EXPECT_NE(m.find("binding 0000:00:04.0 to vfio-pci"), std::string::npos) << m;
    EXPECT_NE(m.find("run as root"), std::string::npos) << m;
}

TEST_F(BindingTest, DefaultWriterWritesTheFiles) {
    // Through the real write path the fake cannot move drivers, but what was
    // written is in the files and the verify step reports the stuck driver.
    // The rollback then clears the override ("\n" written over "vfio-pci":
    // a plain file is not truncated as sysfs would be).
    Binder real(Sysfs(fake.root()));
    auto status = real.bind_to_vfio(addr("0000:00:04.0"));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(fake.read("bus/pci/devices/0000:00:04.0/driver_override"), "\nfio-pci");
    EXPECT_EQ(fake.read("bus/pci/drivers/nvme/unbind"), "0000:00:04.0");
    EXPECT_EQ(fake.read("bus/pci/drivers_probe"), "0000:00:04.0");
}

// --- the host's own use (host_use.hpp) -------------------------------------

class InUseTest : public BindingTest {
protected:
    [[nodiscard]] Status bind(std::vector<PciAddress> list, bool force = false) {
        BindOptions options;
        options.force = force;
        options.host = fake.host_view();
        return binder().bind_to_vfio(list, options);
    }
    // Refused with EBUSY, nothing written, and each piece in the message.
    void expect_refused(const Status& status, std::initializer_list<const char*> pieces) {
        ASSERT_FALSE(status.ok());
        EXPECT_EQ(status.error().code(), EBUSY);
        for (const char* piece : pieces) {
            EXPECT_NE(status.error().message().find(piece), std::string::npos)
                << "missing '" << piece << "' in: " << status.error();
        }
        EXPECT_TRUE(log.empty()) << "nothing may be written when refusing";
    }
};

TEST_F(InUseTest, NvmeWithMountedNamespaceIsRefused) {
    fake.add_block_device("0000:00:04.0", "nvme/nvme0", "242:0");  // the controller's char device
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1", "259:0");
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1/nvme0n1p1", "259:1");
    fake.add_mount("259:1", "/data");
    fake.add_mount("259:0", "/mnt/raw");
    expect_refused(bind({addr("0000:00:04.0")}),
                   {"will not bind 0000:00:04.0", "nvme0n1p1 (259:1) is mounted on /data; unmount it: umount /data",
                    "nvme0n1 (259:0) is mounted on /mnt/raw; unmount it: umount /mnt/raw",
                    ", or bind anyway with: dmakit bind --force 0000:00:04.0"});
}

TEST_F(InUseTest, NvmeHoldingTheRootFilesystemIsRefused) {
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1", "259:0");
    fake.add_mount("8:1", "/boot");  // another disk's mount does not count
    fake.add_mount("259:0", "/");
    expect_refused(bind({addr("0000:00:04.0")}), {"nvme0n1 (259:0) holds the root filesystem"});
}

TEST_F(InUseTest, NvmeWithSwapOrHoldersIsRefused) {
    const std::string disk = fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1", "259:0");
    fake.add_swap("nvme0n1");
    expect_refused(bind({addr("0000:00:04.0")}), {"nvme0n1 is in use as swap", "swapoff /dev/nvme0n1"});
    fake.write("proc/swaps", "Filename Type Size Used Priority\n");
    std::filesystem::create_directories(disk + "/holders/dm-0");
    expect_refused(bind({addr("0000:00:04.0")}), {"nvme0n1 is held by dm-0", "dmsetup remove dm-0"});
}

TEST_F(InUseTest, NvmeMultipathHeadDiskIsFound) {
    // CONFIG_NVME_MULTIPATH: the disk lives under a virtual subsystem and
    // links to the controller's hidden path device.
    const std::string path_dev = fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0c0n1", "0:0");
    const std::string head = fake.root() + "/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1";
    std::filesystem::create_directories(head + "/multipath");
    fake.write("devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1/dev", "259:0\n");
    std::filesystem::create_directory_symlink(path_dev, head + "/multipath/nvme0c0n1");
    std::filesystem::create_directories(fake.root() + "/block");
    std::filesystem::create_directory_symlink(head, fake.root() + "/block/nvme0n1");
    fake.add_mount("259:0", "/srv");
    expect_refused(bind({addr("0000:00:04.0")}), {"nvme0n1 (259:0) is mounted on /srv"});
}

TEST_F(InUseTest, PartitionMountedThroughAByIdLinkIsRefused) {
    // mount /dev/disk/by-id/...-part2 /srv: mountinfo shows the link as the
    // source, and the partition's own major:minor.
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1", "259:0");
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1/nvme0n1p1", "259:1");
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1/nvme0n1p2", "259:2");
    fake.add_mount("259:2", "/srv", "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_deadbeef-part2");
    expect_refused(bind({addr("0000:00:04.0")}), {"nvme0n1p2 (259:2) is mounted on /srv; unmount it: umount /srv"});
}

TEST_F(InUseTest, BtrfsIsFoundByItsMountSource) {
    // btrfs reports an anonymous device (0:N) in mountinfo; only the source
    // names the partition, directly or through a /dev/disk link.
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1/nvme0n1p2", "259:2");
    fake.add_mount("0:45", "/home", "/dev/nvme0n1p2", "btrfs");
    expect_refused(bind({addr("0000:00:04.0")}),
                   {"nvme0n1p2 is mounted on /home (btrfs on device 0:45); unmount it: umount /home"});

    fake.write("proc/self/mountinfo", "");
    fake.add_dev_node("nvme0n1p2");
    fake.add_dev_link("/dev/disk/by-uuid/6f1c-42", "../../nvme0n1p2");
    fake.add_mount("0:46", "/", "/dev/disk/by-uuid/6f1c-42", "btrfs");
    expect_refused(bind({addr("0000:00:04.0")}), {"nvme0n1p2 holds the root filesystem (btrfs on device 0:46)"});

    // Another disk's link does not count.
    fake.write("proc/self/mountinfo", "");
    fake.add_dev_node("sda1");
    fake.add_dev_link("/dev/disk/by-uuid/0000-01", "../../sda1");
    fake.add_mount("0:47", "/var", "/dev/disk/by-uuid/0000-01", "btrfs");
    auto status = bind({addr("0000:00:04.0")});
    ASSERT_TRUE(status.ok()) << status.error();
}

TEST_F(InUseTest, BtrfsMemberDeviceIsRefused) {
    // A two-device btrfs mounted from sda1: the NVMe partition shows only in
    // SYSFS/fs/btrfs/UUID/devices.
    const std::string part = fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1/nvme0n1p3", "259:3");
    const std::string devices = fake.root() + "/fs/btrfs/2c1f0e7a-uuid/devices";
    std::filesystem::create_directories(devices);
    std::filesystem::create_directory_symlink(part, devices + "/nvme0n1p3");
    fake.add_mount("0:50", "/data", "/dev/sda1", "btrfs");
    expect_refused(bind({addr("0000:00:04.0")}), {"nvme0n1p3 belongs to the mounted btrfs filesystem 2c1f0e7a-uuid",
                                                   "findmnt --source UUID=2c1f0e7a-uuid"});
}

TEST_F(InUseTest, SwapOnAPartitionIsRefusedByAnyName) {
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1/nvme0n1p3", "259:3");
    fake.add_swap("nvme0n1p3");
    expect_refused(bind({addr("0000:00:04.0")}), {"nvme0n1p3 is in use as swap; turn it off: swapoff /dev/nvme0n1p3"});

    fake.write("proc/swaps", "Filename Type Size Used Priority\n");
    fake.add_dev_node("nvme0n1p3");
    fake.add_dev_link("/dev/disk/by-partlabel/swap", "../../nvme0n1p3");
    fake.add_swap("/dev/disk/by-partlabel/swap");
    expect_refused(bind({addr("0000:00:04.0")}), {"nvme0n1p3 is in use as swap"});

    // A swap file is on a mounted filesystem; its name is no device's.
    fake.write("proc/swaps", "Filename Type Size Used Priority\n/nvme0n1p3 file 1024 0 -2\n");
    auto status = bind({addr("0000:00:04.0")});
    ASSERT_TRUE(status.ok()) << status.error();
}

TEST_F(InUseTest, RaidAndDeviceMapperMembersAreRefused) {
    const std::string p1 = fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1/nvme0n1p1", "259:1");
    const std::string p2 = fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1/nvme0n1p2", "259:2");
    std::filesystem::create_directories(p1 + "/holders/md127");
    // holders/dm-3 links to the dm device, whose dm/name LVM gave it.
    const std::string dm = fake.root() + "/devices/virtual/block/dm-3";
    fake.write("devices/virtual/block/dm-3/dm/name", "vg0-data\n");
    std::filesystem::create_directories(p2 + "/holders");
    std::filesystem::create_directory_symlink(dm, p2 + "/holders/dm-3");
    expect_refused(bind({addr("0000:00:04.0")}),
                   {"nvme0n1p1 is a member of RAID array md127; stop the array: mdadm --stop /dev/md127",
                    "nvme0n1p2 is held by dm-3 (vg0-data) (LVM, RAID or dm-crypt)", "dmsetup remove vg0-data"});
}

TEST_F(InUseTest, DeviceHeldOpenByAProcessIsRefused) {
    fake.add_block_device("0000:00:04.0", "nvme/nvme0", "241:0");  // the controller's character device
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1", "259:0");
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/ng0n1", "240:0");  // generic namespace device
    fake.add_process(4242, "smartctl", {"/dev/null", "/dev/nvme0"});
    fake.add_process(977, "fio", {"/dev/pts/0", "/dev/nvme0n1", "/dev/nvme0n1", "socket:[1234]"});
    fake.add_process(51, "nvme", {"/dev/ng0n1 (deleted)"});
    fake.add_process(300, "other", {"/dev/nvme1n1", "/dev/nvme0n10", "/home/nvme0n1", "anon_inode:[eventfd]"});
    expect_refused(bind({addr("0000:00:04.0")}),
                   {"ng0n1 is open in process 51 (nvme); close it: stop process 51 (nvme), e.g. kill 51; "
                    "nvme0n1 is open in process 977 (fio); close it: stop process 977 (fio), e.g. kill 977; "
                    "nvme0 is open in process 4242 (smartctl); close it: stop process 4242 (smartctl), e.g. kill 4242, "
                    "or bind anyway with: dmakit bind --force 0000:00:04.0"});
}

TEST_F(InUseTest, OtherDevicesOpenFilesDoNotCount) {
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1", "259:0");
    fake.add_process(300, "other", {"/dev/nvme1n1", "/dev/nvme0n10", "/home/nvme0n1", "anon_inode:[eventfd]"});
    fake.write("proc/net/notapid/fd/0", "");  // non-numeric /proc entries are not processes
    auto status = bind({addr("0000:00:04.0")});
    ASSERT_TRUE(status.ok()) << status.error();
}

TEST_F(InUseTest, UnmountedNvmeBinds) {
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1", "259:0");
    fake.add_mount("8:1", "/");
    auto status = bind({addr("0000:00:04.0")});
    ASSERT_TRUE(status.ok()) << status.error();
}

TEST_F(InUseTest, ForceBindsAMountedController) {
    fake.add_block_device("0000:00:04.0", "nvme/nvme0/nvme0n1", "259:0");
    fake.add_mount("259:0", "/data");
    auto status = bind({addr("0000:00:04.0")}, true);
    ASSERT_TRUE(status.ok()) << status.error();
    EXPECT_EQ(*Sysfs(fake.root()).driver(addr("0000:00:04.0")), "vfio-pci");
}

TEST_F(InUseTest, NicUpWithIpv4RouteIsRefused) {
    fake.add_interface("0000:00:02.0", "enp0s2", true);
    fake.add_ipv4_route("enp0s2", "0000A8C0");  // 192.168.0.0/24
    expect_refused(bind({addr("0000:00:02.0"), addr("0000:00:03.0")}),
                   {"interface enp0s2 is up with IPv4 route 192.168.0.0", "ip link set dev enp0s2 down",
                    "--force 0000:00:02.0"});
}

TEST_F(InUseTest, NicUpWithIpv4AddressButNoRouteIsRefused) {
    // A /32 (or noprefixroute) address adds no route to the main table.
    fake.add_interface("0000:00:02.0", "enp0s2", true);
    fake.add_ipv4_address("enp0s2", "10.0.0.5/32");
    expect_refused(bind({addr("0000:00:02.0"), addr("0000:00:03.0")}),
                   {"interface enp0s2 is up with IPv4 address 10.0.0.5/32; take it down: ip link set dev enp0s2 down",
                    "--force 0000:00:02.0"});

    fake.add_ipv4_route("enp0s2", "0000000A");
    fake.add_ipv6_address("enp0s2", "20010db8000000000000000000000001", "00");
    expect_refused(bind({addr("0000:00:02.0"), addr("0000:00:03.0")}),
                   {"interface enp0s2 is up with IPv4 address 10.0.0.5/32, IPv4 route 10.0.0.0 and IPv6 address "
                    "2001:0db8:0000:0000:0000:0000:0000:0001/64"});
}

TEST_F(InUseTest, VirtioNicInterfaceIsFoundBelowItsVirtioDevice) {
    // virtio-net's interface lives at ADDR/virtioN/net/IFACE, not ADDR/net/IFACE.
    fake.write("devices/pci0000:00/0000:00:02.0/virtio1/net/eth0/flags", "0x1003\n");
    fake.add_ipv4_address("eth0", "192.0.2.2/24");
    expect_refused(bind({addr("0000:00:02.0"), addr("0000:00:03.0")}),
                   {"interface eth0 is up with IPv4 address 192.0.2.2/24", "ip link set dev eth0 down"});
}

TEST_F(InUseTest, NicWhoseAddressesCannotBeReadIsRefused) {
    fake.add_interface("0000:00:02.0", "enp0s2", true);
    BindOptions options;
    options.host = fake.host_view();
    options.host.ipv4_addresses = [](const std::string&) -> Result<std::vector<std::string>> {
        return Error(EPERM, "getifaddrs: Operation not permitted");
    };
    expect_refused(binder().bind_to_vfio(std::vector<PciAddress>{addr("0000:00:02.0"), addr("0000:00:03.0")}, options),
                   {"interface enp0s2 is up and its IPv4 addresses could not be read (getifaddrs: Operation not "
                    "permitted); check with: ip -4 addr show dev enp0s2, then take it down"});
}

TEST(KernelIpv4Addresses, LoopbackHasItsAddress) {
    // The real lookup, against this machine's own loopback interface.
    auto addresses = kernel_ipv4_addresses("lo");
    ASSERT_TRUE(addresses.ok()) << addresses.error();
    if (addresses->empty()) GTEST_SKIP() << "lo has no IPv4 address here (a network namespace without one)";
    EXPECT_EQ(addresses->front(), "127.0.0.1/8");
    auto none = kernel_ipv4_addresses("no-such-if0");
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->empty());
}

TEST_F(InUseTest, NicUpWithGlobalIpv6AddressIsRefused) {
    fake.add_interface("0000:00:03.0", "enp0s3", true);
    fake.add_ipv6_address("enp0s3", "fe800000000000000000000000000001", "20");
    fake.add_ipv6_address("enp0s3", "20010db8000000000000000000000001", "00");
    expect_refused(bind({addr("0000:00:02.0"), addr("0000:00:03.0")}),
                   {"enp0s3 is up with IPv6 address 2001:0db8:0000:0000:0000:0000:0000:0001/64"});
}

TEST_F(InUseTest, NicDownOrWithOnlyLinkLocalBinds) {
    fake.add_interface("0000:00:02.0", "enp0s2", false);
    fake.add_ipv4_route("enp0s2", "0000A8C0");  // a stale route of a down interface
    fake.add_interface("0000:00:03.0", "enp0s3", true);
    fake.add_ipv6_address("enp0s3", "fe800000000000000000000000000001", "20");
    auto status = bind({addr("0000:00:02.0"), addr("0000:00:03.0")});
    ASSERT_TRUE(status.ok()) << status.error();
}

TEST_F(InUseTest, BridgeIsRefused) {
    fake.add_device({"0000:00:1c.0", 0x8086, 0x2922, 0x060400, "pcieport", 9, -1});
    expect_refused(bind({addr("0000:00:1c.0")}),
                   {"it is a PCI bridge (class 0604)", "bind the devices behind it instead"});
}

TEST_F(InUseTest, GroupMemberInUseIsRefused) {
    // A root port shares group 9 with the NVMe controller; a disk behind the
    // port is mounted. The port is a viable member (pcieport), but in use.
    fake.add_device({"0000:00:1c.0", 0x8086, 0x2922, 0x060400, "pcieport", 9, -1});
    fake.add_device({"0000:00:05.0", 0x1b36, 0x0010, 0x010802, "nvme", 9, -1});
    fake.add_block_device("0000:00:1c.0", "0000:01:00.0/nvme/nvme1/nvme1n1", "259:7");
    fake.add_mount("259:7", "/home");
    expect_refused(bind({addr("0000:00:05.0")}),
                   {"0000:00:1c.0 in its IOMMU group 9 is in use", "nvme1n1 (259:7) is mounted on /home",
                    "umount /home"});
    ASSERT_TRUE(bind({addr("0000:00:05.0")}, true).ok());
}

// --- rollback --------------------------------------------------------------

TEST_F(InUseTest, PartialFailureGivesTheOthersBack) {
    // The kernel refuses to probe 0000:00:03.0; 0000:00:04.0 and 0000:00:02.0
    // were already on vfio-pci by then and must go back to their drivers.
    auto kernel = fake.kernel_writer(log);
    bool refuse = true;
    Binder flaky(Sysfs(fake.root()), [&](const std::string& path, std::string_view value) -> Status {
        if (refuse && path.ends_with("drivers_probe") && value == "0000:00:03.0" &&
            fake.read("bus/pci/devices/0000:00:03.0/driver_override") == "vfio-pci") {
            return Error(EINVAL, "write to " + path + ": Invalid argument");
        }
        return kernel(path, value);
    });
    const std::vector<PciAddress> list = {addr("0000:00:04.0"), addr("0000:00:02.0"), addr("0000:00:03.0")};
    BindOptions options;
    options.host = fake.host_view();
    auto status = flaky.bind_to_vfio(list, options);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), EINVAL);
    const std::string& m = status.error().message();
    EXPECT_NE(m.find("binding 0000:00:03.0 to vfio-pci"), std::string::npos) << m;
    EXPECT_NE(m.find("gave back 0000:00:04.0 (nvme), 0000:00:02.0 (e1000e)"), std::string::npos) << m;
    Sysfs sysfs(fake.root());
    EXPECT_EQ(*sysfs.driver(list[0]), "nvme");
    EXPECT_EQ(*sysfs.driver(list[1]), "e1000e");
    EXPECT_EQ(*sysfs.driver(list[2]), "e1000e");
    for (const auto& a : list) {
        EXPECT_EQ(fake.read("bus/pci/devices/" + a.to_string() + "/driver_override"), "") << a.to_string();
    }
}

TEST_F(InUseTest, FailedRollbackIsReported) {
    // Every probe after the first fails: 0000:00:04.0 binds, 0000:00:02.0
    // cannot, and 0000:00:04.0 cannot be given back either.
    auto kernel = fake.kernel_writer(log);
    int probes = 0;
    Binder flaky(Sysfs(fake.root()), [&](const std::string& path, std::string_view value) -> Status {
        if (path.ends_with("drivers_probe") && ++probes > 1) return Error(EIO, "probe failed");
        return kernel(path, value);
    });
    const std::vector<PciAddress> list = {addr("0000:00:04.0"), addr("0000:00:02.0"), addr("0000:00:03.0")};
    auto status = flaky.bind_to_vfio(list, BindOptions{false, fake.host_view()});
    ASSERT_FALSE(status.ok());
    const std::string& m = status.error().message();
    EXPECT_NE(m.find("could not put 0000:00:04.0 back on nvme"), std::string::npos) << m;
}

}  // namespace binding_test
}  // namespace dmakit::pci
