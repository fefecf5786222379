// PciDmaOptions::registers_only against the real stack: the bench's NVMe
// controller opened for its registers only gives BAR0 (CAP and VS read as
// QEMU sets them) while no hugepage is taken, nothing is locked or pinned
// and Bus Master Enable (command register bit 2) stays as it was: off, as
// vfio-pci leaves it after a close. A
// normal open of the same controller, then an allocation, does take
// hugepages, pins memory and turns bus mastering on, which shows each check
// can fail. Drivers refuse a registers-only function with a message.
#include "bench_devices.hpp"

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/drivers/nvme/controller.hpp>
#include <dmakit/mem/hugepage_source.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/vfio/memlock.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>

namespace dmakit::dma {
namespace {

constexpr std::uint32_t kNvmeCap = 0x00;  // NVMe 1.4 §3.1.1
constexpr std::uint32_t kNvmeVs = 0x08;   // NVMe 1.4 §3.1.2
constexpr std::uint16_t kBusMasterEnable = 1u << 2;  // PCIe 4.0 §7.5.1.1.3, command register

// What the process holds of the machine: free 2 MiB hugepages and VmLck
// (VFIO type1 charges pinned pages there, HugepageSource its mlock).
struct Footprint {
    std::size_t free_hugepages = 0;
    std::uint64_t locked_bytes = 0;
};

Footprint footprint() {
    Footprint f;
    auto pool = mem::read_hugepage_pool(std::size_t{2} << 20);
    EXPECT_TRUE(pool.ok()) << pool.error();
    if (pool.ok()) f.free_hugepages = pool->free;
    auto memlock = vfio::read_memlock_state();
    EXPECT_TRUE(memlock.ok()) << memlock.error();
    if (memlock.ok()) f.locked_bytes = memlock->locked;
    return f;
}

// The command register as sysfs shows it (the kernel's view, with no VFIO
// file open), or ~0 when it cannot be read.
std::uint16_t command_register_from_sysfs(const pci::PciAddress& address) {
    auto config = pci::Sysfs().read_config(address);
    EXPECT_TRUE(config.ok() && config->size() >= 6) << (config.ok() ? "short config" : config.error().message());
    if (!config.ok() || config->size() < 6) return 0xffff;
    return static_cast<std::uint16_t>((*config)[4] | ((*config)[5] << 8));
}

class RegistersOnlyVm : public ::testing::Test {
protected:
    void SetUp() override {
        const auto nvmes = vmtest::devices_bound_to(vmtest::kBenchNvme);
        DMAKIT_VM_REQUIRE_DEVICES(nvmes, vmtest::kBenchNvme);
        nvme_ = nvmes[0];
        const auto pool = mem::read_hugepage_pool(std::size_t{2} << 20);
        DMAKIT_VM_REQUIRE(pool.ok() && pool->free >= 32,
                          "32 free 2 MiB hugepages (tests/vm/guest-init reserves 256)");
    }
    pci::PciAddress nvme_;
};

TEST_F(RegistersOnlyVm, ReadsCapAndVsWithoutHugepagesPinningOrBusMastering) {
    PciDmaOptions options;
    options.registers_only = true;
    // Firmware may leave Bus Master Enable on (it is on for this controller
    // right after the guest boots); vfio-pci clears it when the last user
    // closes the device (vfio_pci_core_disable). Start from that state.
    {
        auto first = PciDomain::open(nvme_, options);
        ASSERT_TRUE(first.ok()) << first.error();
    }
    ASSERT_EQ(command_register_from_sysfs(nvme_) & kBusMasterEnable, 0) << "vfio-pci left bus mastering on at close";
    const Footprint before = footprint();

    auto domain = PciDomain::open(nvme_, options);
    ASSERT_TRUE(domain.ok()) << domain.error();
    EXPECT_FALSE((*domain)->has_dma());
    PciFunction& function = (*domain)->function(0);
    EXPECT_FALSE(function.has_dma());

    auto bar0 = function.vfio().map_bar(0);
    ASSERT_TRUE(bar0.ok()) << bar0.error();
    auto cap = bar0->read64(kNvmeCap);
    auto vs = bar0->read32(kNvmeVs);
    ASSERT_TRUE(cap.ok() && vs.ok());
    std::printf("registers-only %s: CAP=0x%016llx VS=0x%08x\n", nvme_.to_string().c_str(),
                static_cast<unsigned long long>(*cap), *vs);
    EXPECT_EQ(*vs, 0x10400u) << "QEMU 7.2 reports NVMe 1.4.0";
    EXPECT_EQ((*cap >> 37) & 1, 1u) << "CAP.CSS: NVM command set";
    EXPECT_NE(*cap & 0xffff, 0u) << "CAP.MQES";

    auto command = function.vfio().config_read16(0x04);
    ASSERT_TRUE(command.ok()) << command.error();
    EXPECT_EQ(*command & kBusMasterEnable, 0) << "registers_only left Bus Master Enable on";
    auto master = function.vfio().bus_master_enabled();
    ASSERT_TRUE(master.ok());
    EXPECT_FALSE(*master);

    const Footprint open = footprint();
    EXPECT_EQ(open.free_hugepages, before.free_hugepages) << "registers_only took hugepages";
    EXPECT_EQ(open.locked_bytes, before.locked_bytes) << "registers_only locked or pinned memory";

    // Drivers say why they cannot use it, and change nothing.
    auto refused = function.require_dma("this test");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), EINVAL);
    EXPECT_NE(refused.error().message().find("registers_only"), std::string::npos) << refused.error();
    auto controller = nvme::Controller::open(function, {});
    ASSERT_FALSE(controller.ok());
    EXPECT_EQ(controller.error().code(), EINVAL);
    EXPECT_NE(controller.error().message().find("the NVMe driver needs DMA"), std::string::npos)
        << controller.error();
    EXPECT_EQ(footprint().free_hugepages, before.free_hugepages);

    domain->reset();  // close: vfio-pci resets the function
    EXPECT_EQ(command_register_from_sysfs(nvme_) & kBusMasterEnable, 0);
}

// The control: the same checks see a normal open.
TEST_F(RegistersOnlyVm, ADmaOpenTakesHugepagesPinsAndEnablesBusMastering) {
    const Footprint before = footprint();
    auto domain = PciDomain::open(nvme_);
    ASSERT_TRUE(domain.ok()) << domain.error();
    PciFunction& function = (*domain)->function(0);
    ASSERT_TRUE(function.has_dma());
    EXPECT_TRUE(function.require_dma("this test").ok());
    auto master = function.vfio().bus_master_enabled();
    ASSERT_TRUE(master.ok());
    EXPECT_TRUE(*master);
    auto buffer = function.dma().alloc_coherent(4096);
    ASSERT_TRUE(buffer.ok()) << buffer.error();
    const Footprint open = footprint();
    std::printf("DMA open + 4 KiB coherent: %zu hugepages taken, %llu KiB locked\n",
                before.free_hugepages - open.free_hugepages,
                static_cast<unsigned long long>((open.locked_bytes - before.locked_bytes) >> 10));
    EXPECT_LT(open.free_hugepages, before.free_hugepages);
    EXPECT_GT(open.locked_bytes, before.locked_bytes);
}

}  // namespace
}  // namespace dmakit::dma
