// PciDomain::open on the host, which has no VFIO: what can be checked
// without a device. Opening for registers only keeps every argument check
// and fails at the same first VFIO step with the same advice; what it does
// with a real device (no pool, nothing pinned, bus mastering left off) is
// checked in the guest by tests/vm/dma/registers_only_vm_test.cpp.
#include <dmakit/dma/pci_domain.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>

namespace dmakit::dma {
namespace {

PciDmaOptions registers_only_without_vfio() {
    PciDmaOptions options;
    options.registers_only = true;
    options.paths.dev_vfio = "/nonexistent/dev/vfio";
    options.paths.sysfs = "/nonexistent/sys";
    return options;
}

TEST(PciDomainOpen, DefaultsOpenForDma) {
    const PciDmaOptions options;
    EXPECT_FALSE(options.registers_only) << "a plain open() must give the DMA API";
    EXPECT_TRUE(options.enable_bus_master);
}

TEST(PciDomainOpen, RegistersOnlyKeepsTheArgumentChecks) {
    auto none = PciDomain::open(std::span<const pci::PciAddress>(), registers_only_without_vfio());
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code(), EINVAL);

    const auto a = *pci::PciAddress::parse("0000:00:04.0");
    auto twice = PciDomain::open(std::array{a, a}, registers_only_without_vfio());
    ASSERT_FALSE(twice.ok());
    EXPECT_EQ(twice.error().code(), EINVAL);
    EXPECT_NE(twice.error().message().find("0000:00:04.0 is given twice"), std::string::npos)
        << twice.error();
}

TEST(PciDomainOpen, RegistersOnlyWithoutVfioSaysWhatToDoAsAFullOpenDoes) {
    const auto a = *pci::PciAddress::parse("0000:00:04.0");
    auto registers = PciDomain::open(a, registers_only_without_vfio());
    PciDmaOptions full = registers_only_without_vfio();
    full.registers_only = false;
    auto dma = PciDomain::open(a, full);
    ASSERT_FALSE(registers.ok());
    ASSERT_FALSE(dma.ok());
    EXPECT_EQ(registers.error().code(), ENODEV);
    EXPECT_EQ(registers.error().message(), dma.error().message());
    EXPECT_NE(registers.error().message().find("modprobe vfio-pci"), std::string::npos)
        << registers.error();
}

}  // namespace
}  // namespace dmakit::dma
