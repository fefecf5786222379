#include <dmakit/pci/binding.hpp>

#include "fake_sysfs.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>

namespace dmakit::pci {
namespace {

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
    ASSERT_TRUE(status.ok()) << status.error().message();
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
    ASSERT_TRUE(status.ok()) << status.error().message();
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
    ASSERT_TRUE(status.ok()) << status.error().message();
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
    ASSERT_TRUE(status.ok()) << status.error().message();
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
        << status.error().message();
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
    Binder real(Sysfs(fake.root()));
    auto status = real.bind_to_vfio(addr("0000:00:04.0"));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(fake.read("bus/pci/devices/0000:00:04.0/driver_override"), "vfio-pci");
    EXPECT_EQ(fake.read("bus/pci/drivers/nvme/unbind"), "0000:00:04.0");
    EXPECT_EQ(fake.read("bus/pci/drivers_probe"), "0000:00:04.0");
}

}  // namespace
}  // namespace dmakit::pci
