#include <dmakit/pci/sysfs.hpp>

#include "fake_sysfs.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>

namespace dmakit::pci {
namespace {

using testing::FakeDevice;
using testing::FakeSysfs;

PciAddress addr(const char* text) { return *PciAddress::parse(text); }

class SysfsTest : public ::testing::Test {
protected:
    void SetUp() override {
        fake.enable_iommu();
        fake.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "nvme", 3, 0});
        fake.add_device({"0000:00:02.0", 0x8086, 0x10d3, 0x020000, "e1000e", 5, -1});
        fake.add_device({"0000:00:03.0", 0x8086, 0x10d3, 0x020000, std::nullopt, 5, -1});
        fake.add_device({"0000:00:1f.0", 0x8086, 0x2918, 0x060100, std::nullopt, std::nullopt, -1});
    }
    FakeSysfs fake;
};

TEST_F(SysfsTest, ListsDevicesSortedAndSkipsNonAddresses) {
    std::filesystem::create_directories(fake.root() + "/bus/pci/devices/not-a-device");
    Sysfs sysfs(fake.root());
    auto devices = sysfs.list_devices();
    ASSERT_TRUE(devices.ok()) << devices.error();
    ASSERT_EQ(devices->size(), 4u);
    EXPECT_EQ((*devices)[0].to_string(), "0000:00:02.0");
    EXPECT_EQ((*devices)[1].to_string(), "0000:00:03.0");
    EXPECT_EQ((*devices)[2].to_string(), "0000:00:04.0");
    EXPECT_EQ((*devices)[3].to_string(), "0000:00:1f.0");
}

TEST_F(SysfsTest, ReadsDeviceInfo) {
    Sysfs sysfs(fake.root());
    auto info = sysfs.device_info(addr("0000:00:04.0"));
    ASSERT_TRUE(info.ok()) << info.error();
    EXPECT_EQ(info->vendor_id, 0x1b36);
    EXPECT_EQ(info->device_id, 0x0010);
    EXPECT_EQ(info->class_code, 0x010802u);
    EXPECT_EQ(info->subsystem_vendor_id, 0x1b36);
    EXPECT_EQ(info->subsystem_device_id, 0x1100);
    EXPECT_EQ(info->driver, "nvme");
    EXPECT_EQ(info->iommu_group, 3u);
    EXPECT_EQ(info->numa_node, 0);

    auto unbound = sysfs.device_info(addr("0000:00:1f.0"));
    ASSERT_TRUE(unbound.ok()) << unbound.error();
    EXPECT_EQ(unbound->driver, std::nullopt);
    EXPECT_EQ(unbound->iommu_group, std::nullopt);
    EXPECT_EQ(unbound->numa_node, std::nullopt);  // -1 means no affinity
}

TEST_F(SysfsTest, MissingDeviceIsEnoentWithHint) {
    Sysfs sysfs(fake.root());
    auto info = sysfs.device_info(addr("0000:00:09.0"));
    ASSERT_FALSE(info.ok());
    EXPECT_EQ(info.error().code(), ENOENT);
    EXPECT_EQ(info.error().message(), "no PCI device at 0000:00:09.0; run: dmakit list");
}

TEST_F(SysfsTest, GroupMembers) {
    Sysfs sysfs(fake.root());
    auto members = sysfs.group_members(5);
    ASSERT_TRUE(members.ok()) << members.error();
    ASSERT_EQ(members->size(), 2u);
    EXPECT_EQ((*members)[0].to_string(), "0000:00:02.0");
    EXPECT_EQ((*members)[1].to_string(), "0000:00:03.0");

    auto alone = sysfs.group_members(3);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ(alone->size(), 1u);

    auto missing = sysfs.group_members(42);
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code(), ENOENT);
}

TEST_F(SysfsTest, ReadsConfigSpaceBytes) {
    std::vector<std::uint8_t> bytes(256, 0);
    bytes[0] = 0x36;
    bytes[1] = 0x1b;
    bytes[0x80] = 0x00;  // a NUL inside must not end the read
    bytes[0xff] = 0xa5;
    fake.set_config("0000:00:04.0", bytes);
    Sysfs sysfs(fake.root());
    auto config = sysfs.read_config(addr("0000:00:04.0"));
    ASSERT_TRUE(config.ok()) << config.error();
    EXPECT_EQ(*config, bytes);

    auto missing = sysfs.read_config(addr("0000:00:02.0"));
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code(), ENOENT);
    EXPECT_NE(missing.error().message().find("0000:00:02.0/config"), std::string::npos) << missing.error();
}

TEST_F(SysfsTest, MalformedAttributeIsEio) {
    fake.write("devices/pci0000:00/0000:00:04.0/vendor", "garbage\n");
    Sysfs sysfs(fake.root());
    auto info = sysfs.device_info(addr("0000:00:04.0"));
    ASSERT_FALSE(info.ok());
    EXPECT_EQ(info.error().code(), EIO);
    EXPECT_NE(info.error().message().find("garbage"), std::string::npos);
}

TEST(SysfsNoIommu, NoGroupsIsAClearError) {
    FakeSysfs fake;  // no kernel/iommu_groups at all
    fake.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "nvme", std::nullopt, -1});
    Sysfs sysfs(fake.root());
    EXPECT_FALSE(sysfs.has_iommu_groups());
    auto status = sysfs.require_iommu_groups();
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), ENODEV);
    const std::string& m = status.error().message();
    EXPECT_NE(m.find("VFIO/IOMMU is not enabled"), std::string::npos) << m;
    EXPECT_NE(m.find("intel_iommu=on"), std::string::npos) << m;
    EXPECT_NE(m.find("amd_iommu=on"), std::string::npos) << m;
    EXPECT_NE(m.find("modprobe vfio-pci"), std::string::npos) << m;

    // An empty iommu_groups folder means the same.
    fake.enable_iommu();
    EXPECT_FALSE(sysfs.has_iommu_groups());
    EXPECT_FALSE(sysfs.group_members(0).ok());

    // Listing still works, with no groups.
    auto info = sysfs.device_info(addr("0000:00:04.0"));
    ASSERT_TRUE(info.ok()) << info.error();
    EXPECT_EQ(info->iommu_group, std::nullopt);
}

TEST(SysfsMissingRoot, ListingFailsWithPath) {
    Sysfs sysfs("/nonexistent/dmakit-sysfs");
    auto devices = sysfs.list_devices();
    ASSERT_FALSE(devices.ok());
    EXPECT_EQ(devices.error().code(), ENOENT);
    EXPECT_NE(devices.error().message().find("/nonexistent/dmakit-sysfs/bus/pci/devices"),
              std::string::npos);
}

TEST(BridgeClass, RecognisesBridgeHeaderClasses) {
    EXPECT_TRUE(is_bridge_class(0x060400));
    EXPECT_TRUE(is_bridge_class(0x060401));
    EXPECT_TRUE(is_bridge_class(0x060700));
    EXPECT_TRUE(is_bridge_class(0x060900));
    EXPECT_FALSE(is_bridge_class(0x060000));  // host bridge has a normal header
    EXPECT_FALSE(is_bridge_class(0x060100));  // ISA bridge too
    EXPECT_FALSE(is_bridge_class(0x020000));
}

}  // namespace
}  // namespace dmakit::pci
