#include <dmakit/pci/names.hpp>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace dmakit::pci {
namespace {

class NamesTest : public ::testing::Test {
protected:
    void SetUp() override {
        path = (std::filesystem::temp_directory_path() /
                ("dmakit-pci-ids-" + std::to_string(::getpid()) + ".ids"))
                   .string();
        std::ofstream(path) << "# test database\n"
                               "1b36  Red Hat, Inc.\n"
                               "\t0010  QEMU NVM Express Controller\n"
                               "8086  Intel Corporation\n"
                               "\t10d3  82574L Gigabit Network Connection\n"
                               "C 01  Mass storage controller\n"
                               "\t08  Non-Volatile memory controller\n"
                               "C 02  Network controller\n"
                               "\t00  Ethernet controller\n";
    }
    void TearDown() override { std::remove(path.c_str()); }
    std::string path;
};

TEST_F(NamesTest, LooksUpVendorDeviceAndClass) {
    PciNames names(path);
    EXPECT_TRUE(names.has_database());
    EXPECT_EQ(names.vendor(0x1b36), "Red Hat, Inc.");
    EXPECT_EQ(names.device(0x1b36, 0x0010), "QEMU NVM Express Controller");
    EXPECT_EQ(names.device(0x8086, 0x10d3), "82574L Gigabit Network Connection");
    EXPECT_EQ(names.class_name(0x010802), "Non-Volatile memory controller");
    EXPECT_EQ(names.class_name(0x020000), "Ethernet controller");
}

TEST_F(NamesTest, UnknownIdsFallBackToHex) {
    PciNames names(path);
    EXPECT_EQ(names.vendor(0xabcd), "abcd");
    EXPECT_EQ(names.device(0x1b36, 0x00ff), "00ff");
    EXPECT_EQ(names.class_name(0xff0000), "ff00");
}

TEST(Names, MissingDatabaseDegradesToHex) {
    PciNames names(std::string("/nonexistent/dmakit/pci.ids"));
    EXPECT_FALSE(names.has_database());
    EXPECT_EQ(names.vendor(0x1b36), "1b36");
    EXPECT_EQ(names.device(0x1b36, 0x0010), "0010");
    EXPECT_EQ(names.class_name(0x010802), "0108");
}

TEST_F(NamesTest, CorruptDatabaseDoesNotExit) {
    // libpci's default error hook exits on a parse error; ours must not.
    std::ofstream(path) << "1b36  Red Hat, Inc.\n\t\t\t\tnonsense\n";
    PciNames names(path);
    EXPECT_FALSE(names.has_database());
    EXPECT_EQ(names.vendor(0x1b36), "1b36");
}

TEST_F(NamesTest, IsMovable) {
    PciNames names(path);
    PciNames moved(std::move(names));
    EXPECT_EQ(moved.vendor(0x8086), "Intel Corporation");
}

}  // namespace
}  // namespace dmakit::pci
