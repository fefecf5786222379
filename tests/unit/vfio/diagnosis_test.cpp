// What the vfio layer tells a user whose system is not ready, checked over a
// fake sysfs (tests/unit/pci/fake_sysfs.hpp) and a fake /dev/vfio folder.
#include <dmakit/vfio/container.hpp>

#include "fake_sysfs.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace dmakit::vfio {
namespace {

namespace fs = std::filesystem;
using testing::FakeDevice;
using testing::FakeSysfs;

pci::PciAddress addr(const char* text) { return *pci::PciAddress::parse(text); }

class VfioDiagnosis : public ::testing::Test {
protected:
    VfioDiagnosis() {
        paths.sysfs = sysfs.root();
        paths.dev_vfio = sysfs.root() + "/dev-vfio";  // not a real char device folder
    }
    void make_dev_vfio() { fs::create_directories(paths.dev_vfio); }
    static void expect_contains(const Error& error, const std::string& text) {
        EXPECT_NE(error.message().find(text), std::string::npos)
            << "message: " << error.message() << "\nexpected to contain: " << text;
    }

    FakeSysfs sysfs;
    VfioPaths paths;
};

TEST_F(VfioDiagnosis, DeviceOnAnotherDriverSaysDmakitBind) {
    sysfs.enable_iommu();
    sysfs.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "nvme", 5});
    auto status = check_bound_to_vfio(addr("0000:00:04.0"), paths);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), EBUSY);
    expect_contains(status.error(), "0000:00:04.0 is bound to nvme");
    expect_contains(status.error(), "dmakit bind 0000:00:04.0");
}

TEST_F(VfioDiagnosis, UnboundDeviceSaysDmakitBind) {
    sysfs.enable_iommu();
    sysfs.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, std::nullopt, 5});
    auto status = check_bound_to_vfio(addr("0000:00:04.0"), paths);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), ENODEV);
    expect_contains(status.error(), "dmakit bind 0000:00:04.0");
}

TEST_F(VfioDiagnosis, BoundToVfioIsFine) {
    sysfs.enable_iommu();
    sysfs.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "vfio-pci", 5});
    EXPECT_TRUE(check_bound_to_vfio(addr("0000:00:04.0"), paths).ok());
}

TEST_F(VfioDiagnosis, MissingDeviceIsNamed) {
    auto status = check_bound_to_vfio(addr("0000:00:09.0"), paths);
    ASSERT_FALSE(status.ok());
    expect_contains(status.error(), "0000:00:09.0");
}

TEST_F(VfioDiagnosis, NoPermissionForTheGroup) {
    auto error = explain_group_open_failure(5, EACCES, paths);
    EXPECT_EQ(error.code(), EACCES);
    const std::string uid = std::to_string(::geteuid());
    EXPECT_EQ(error.message(), "no permission for " + paths.dev_vfio + "/5 (uid " + uid +
                                   "); give it to this user as root: dmakit bind --user " + uid +
                                   " BDF (any device of group 5), or run as root");
}

TEST_F(VfioDiagnosis, NoDevVfioMeansNoIommuGroups) {
    auto error = explain_group_open_failure(5, ENOENT, paths);
    EXPECT_EQ(error.code(), ENODEV);
    expect_contains(error, "no IOMMU groups: VFIO not loaded / IOMMU off");
    auto container = Container::open(paths);
    ASSERT_FALSE(container.ok());
    expect_contains(container.error(), "no IOMMU groups: VFIO not loaded / IOMMU off");
}

TEST_F(VfioDiagnosis, NoSysfsGroupsMeansIommuOff) {
    make_dev_vfio();
    auto error = explain_group_open_failure(5, ENOENT, paths);
    expect_contains(error, "no IOMMU groups: VFIO not loaded / IOMMU off");
}

TEST_F(VfioDiagnosis, GroupWithoutCharDeviceNeedsBinding) {
    make_dev_vfio();
    sysfs.enable_iommu();
    sysfs.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "nvme", 5});
    auto error = explain_group_open_failure(5, ENOENT, paths);
    EXPECT_EQ(error.code(), ENODEV);
    expect_contains(error, "no device of IOMMU group 5 is bound to vfio-pci");
    expect_contains(error, "dmakit bind 0000:00:04.0");
    // A group number that does not exist at all.
    expect_contains(explain_group_open_failure(42, ENOENT, paths), "IOMMU off");
}

TEST_F(VfioDiagnosis, NoIommuGroupIsNotFaked) {
    make_dev_vfio();
    sysfs.enable_iommu();
    sysfs.add_device({"0000:00:04.0", 0x1b36, 0x0010, 0x010802, "vfio-pci", 5});
    std::ofstream(paths.dev_vfio + "/noiommu-5") << "";
    auto error = explain_group_open_failure(5, ENOENT, paths);
    EXPECT_EQ(error.code(), ENOTSUP);
    expect_contains(error, "no-IOMMU");
}

TEST_F(VfioDiagnosis, BusyGroup) {
    auto error = explain_group_open_failure(5, EBUSY, paths);
    EXPECT_EQ(error.code(), EBUSY);
    expect_contains(error, "already open");
}

TEST_F(VfioDiagnosis, NotViableNamesTheOffendingDevices) {
    sysfs.enable_iommu();
    sysfs.add_device({"0000:00:1f.0", 0x8086, 0x2918, 0x060100, "vfio-pci", 7});
    sysfs.add_device({"0000:00:1f.2", 0x8086, 0x2922, 0x010601, "ahci", 7});
    sysfs.add_device({"0000:00:1f.3", 0x8086, 0x2930, 0x0c0500, "i801_smbus", 7});
    sysfs.add_device({"0000:00:1f.4", 0x8086, 0x2931, 0x0c0500, std::nullopt, 7});
    sysfs.add_device({"0000:00:1c.0", 0x8086, 0x2940, 0x060400, "pcieport", 7});
    auto error = explain_group_not_viable(7, paths);
    EXPECT_EQ(error.code(), EPERM);
    expect_contains(error, "IOMMU group 7 is not viable");
    expect_contains(error, "0000:00:1f.2 is bound to ahci");
    expect_contains(error, "0000:00:1f.3 is bound to i801_smbus");
    expect_contains(error, "dmakit bind 0000:00:1f.2 0000:00:1f.3");
    EXPECT_EQ(error.message().find("1f.4"), std::string::npos) << "unbound devices are fine";
    EXPECT_EQ(error.message().find("1c.0"), std::string::npos) << "bridges are fine";
    EXPECT_EQ(error.message().find("1f.0 is"), std::string::npos) << "vfio-pci is fine";
}

}  // namespace
}  // namespace dmakit::vfio
