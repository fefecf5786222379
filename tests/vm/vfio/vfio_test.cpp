// The vfio and iommu layers against the real kernel: QEMU's NVMe controller
// (1b36:0010) and e1000e NICs (8086:10d3) bound to vfio-pci behind an
// emulated intel-iommu (scripts/vm). A missing device fails the test in the
// guest and skips it elsewhere (bench_devices.hpp).
#include "bench_devices.hpp"

#include <dmakit/iommu/domain.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/support/memory_mapping.hpp>
#include <dmakit/support/mmio.hpp>
#include <dmakit/support/text_file.hpp>
#include <dmakit/vfio/container.hpp>
#include <dmakit/vfio/device.hpp>
#include <dmakit/vfio/interrupts.hpp>
#include <dmakit/vfio/type1_backend.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <optional>
#include <string>
#include <sys/mman.h>
#include <vector>

namespace dmakit {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t k4K = 4096;
constexpr std::uint64_t k2M = 2 << 20;

// NVMe controller registers (NVMe base spec 1.4, "Controller Registers").
constexpr std::uint64_t kNvmeCap = 0x0;
constexpr std::uint64_t kNvmeVs = 0x8;
// e1000e device status register (Intel 82574 datasheet, STATUS).
constexpr std::uint64_t kE1000Status = 0x8;

#define ASSERT_OK(expr)                                                     \
    do {                                                                    \
        const auto& result_ = (expr);                                       \
        ASSERT_TRUE(result_.ok()) << #expr << ": " << result_.error(); \
    } while (0)

// Unwraps a Result or fails the test (use only in functions returning void).
#define ASSIGN_OK(lhs, expr)                                                \
    auto DMAKIT_CONCAT_(r_, __LINE__) = (expr);                             \
    ASSERT_TRUE(DMAKIT_CONCAT_(r_, __LINE__).ok())                          \
        << #expr << ": " << DMAKIT_CONCAT_(r_, __LINE__).error(); \
    lhs = std::move(DMAKIT_CONCAT_(r_, __LINE__)).value()

class VfioVm : public ::testing::Test {
protected:
    void SetUp() override {
        nvme_ = vmtest::devices_bound_to(vmtest::kBenchNvme);
        nics_ = vmtest::devices_bound_to(vmtest::kBenchNic);
        DMAKIT_VM_REQUIRE_DEVICES(nvme_, vmtest::kBenchNvme);
        DMAKIT_VM_REQUIRE_DEVICES(nics_, vmtest::kBenchNic);
    }
    std::vector<pci::PciAddress> nvme_;
    std::vector<pci::PciAddress> nics_;
};

bool inside(const std::vector<iommu::IovaRange>& ranges, std::uint64_t iova, std::uint64_t length) {
    for (const auto& r : ranges) {
        if (iova >= r.start && iova + (length - 1) <= r.last) return true;
    }
    return false;
}

std::uint32_t kernel_dma_avail(vfio::Type1Backend& backend) {
    auto info = backend.info();
    EXPECT_TRUE(info.ok());
    EXPECT_TRUE(info.ok() && info->dma_avail.has_value()) << "kernel reports DMA_AVAIL";
    return info.ok() && info->dma_avail ? *info->dma_avail : 0;
}

Result<MemoryMapping> anonymous(std::size_t bytes) {
    return MemoryMapping::map(nullptr, bytes, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0, "test memory");
}

TEST_F(VfioVm, NvmeRegistersThroughMappedBar0) {
    ASSIGN_OK(auto container, vfio::Container::open());
    ASSIGN_OK(auto group, container.attach_group_of(nvme_[0]));
    ASSIGN_OK(auto device, group.open_device(nvme_[0]));
    EXPECT_GE(device.region_count(), 9u);

    ASSIGN_OK(auto vendor, device.config_read16(PCI_VENDOR_ID));
    EXPECT_EQ(vendor, 0x1b36);
    ASSIGN_OK(auto bar0, device.map_bar(0));
    ASSERT_NE(bar0.base(), nullptr);
    ASSERT_TRUE(bar0.is_mapped(kNvmeCap, 8)) << "the controller registers are mappable";
    for (const auto& area : bar0.mapped_areas()) {
        std::printf("nvme BAR0 %llu bytes, mapped area 0x%llx+0x%llx%s\n",
                    static_cast<unsigned long long>(bar0.size()),
                    static_cast<unsigned long long>(area.offset),
                    static_cast<unsigned long long>(area.size),
                    bar0.info().sparse_areas ? " (sparse)" : "");
    }
    const std::uint64_t cap = mmio::read64(bar0.base(), kNvmeCap);
    const std::uint32_t vs = mmio::read32(bar0.base(), kNvmeVs);
    std::printf("nvme CAP=0x%016llx VS=0x%08x\n", static_cast<unsigned long long>(cap), vs);
    EXPECT_NE(cap, 0u);
    EXPECT_NE(cap, ~std::uint64_t{0});
    EXPECT_EQ((cap >> 37) & 1, 1u) << "CAP.CSS: NVM command set supported";
    EXPECT_EQ(vs, 0x10400u) << "QEMU reports NVMe 1.4.0";

    // The same registers through the kernel (pread fallback path).
    std::uint32_t vs_pread = 0;
    ASSERT_OK(device.read_region(VFIO_PCI_BAR0_REGION_INDEX, kNvmeVs,
                                 std::as_writable_bytes(std::span(&vs_pread, 1))));
    EXPECT_EQ(vs_pread, vs);
    ASSIGN_OK(auto cap_checked, bar0.read64(kNvmeCap));
    EXPECT_EQ(cap_checked, cap);

    // Bus mastering on and off again.
    ASSERT_OK(device.enable_bus_master());
    ASSIGN_OK(bool on, device.bus_master_enabled());
    EXPECT_TRUE(on);
    ASSERT_OK(device.disable_bus_master());
    ASSIGN_OK(bool off, device.bus_master_enabled());
    EXPECT_FALSE(off);

    if (device.supports_reset()) {
        ASSERT_OK(device.reset());
        EXPECT_EQ(mmio::read32(bar0.base(), kNvmeVs), 0x10400u) << "registers readable after reset";
    } else {
        EXPECT_EQ(device.reset().error().code(), ENOTSUP);
    }
}

TEST_F(VfioVm, E1000eStatusThroughBar0) {
    ASSIGN_OK(auto container, vfio::Container::open());
    ASSIGN_OK(auto group, container.attach_group_of(nics_[0]));
    ASSIGN_OK(auto device, group.open_device(nics_[0]));
    ASSIGN_OK(auto vendor, device.config_read16(PCI_VENDOR_ID));
    EXPECT_EQ(vendor, 0x8086);
    ASSIGN_OK(auto device_id, device.config_read16(PCI_DEVICE_ID));
    EXPECT_EQ(device_id, 0x10d3);
    ASSIGN_OK(auto bar0, device.map_bar(0));
    ASSERT_TRUE(bar0.is_mapped(kE1000Status, 4));
    const std::uint32_t status = mmio::read32(bar0.base(), kE1000Status);
    std::printf("e1000e %s STATUS=0x%08x BAR0 %llu bytes\n", nics_[0].to_string().c_str(), status,
                static_cast<unsigned long long>(bar0.size()));
    EXPECT_NE(status, 0xffffffffu) << "the device answers";
    ASSIGN_OK(auto again, bar0.read32(kE1000Status));
    EXPECT_EQ(again & ~0x3u, status & ~0x3u);
    // Regions that are not there are refused cleanly.
    EXPECT_FALSE(device.map_bar(7).ok());
    EXPECT_FALSE(bar0.read32(bar0.size()).ok());
}

// Maps every BAR: mmap-able ones (whole or sparse, e.g. around an MSI-X
// table), and the rest (I/O port BARs) through the pread/pwrite fallback.
void exercise_bars(const vfio::Device& device) {
    for (unsigned bar = 0; bar < 6; ++bar) {
        ASSIGN_OK(auto info, device.region_info(VFIO_PCI_BAR0_REGION_INDEX + bar));
        if (info.size == 0) continue;
        ASSIGN_OK(auto region, device.map_bar(bar));
        std::printf("%s BAR%u: %llu bytes flags=0x%x%s areas:", device.address().to_string().c_str(),
                    bar, static_cast<unsigned long long>(info.size), info.flags,
                    info.sparse_areas ? " sparse" : "");
        for (const auto& area : region.mapped_areas()) {
            std::printf(" 0x%llx+0x%llx", static_cast<unsigned long long>(area.offset),
                        static_cast<unsigned long long>(area.size));
        }
        std::printf("\n");
        if (info.mappable()) {
            EXPECT_FALSE(region.mapped_areas().empty());
        }
        if (!info.readable() || info.size < 4) continue;
        // Offset 0 works either way; for a region with holes, also a hole.
        ASSIGN_OK(auto first, region.read32(0));
        (void)first;
        if (info.sparse_areas) {
            for (std::uint64_t off = 0; off + 4 <= info.size; off += k4K) {
                if (!region.is_mapped(off, 4)) {
                    ASSIGN_OK(auto hole, region.read32(off));
                    std::printf("  read 0x%08x at unmapped offset 0x%llx via pread\n", hole,
                                static_cast<unsigned long long>(off));
                    break;
                }
            }
        }
    }
}

TEST_F(VfioVm, EveryBarMapsOrFallsBackToReadWrite) {
    ASSIGN_OK(auto container, vfio::Container::open());
    ASSIGN_OK(auto nvme_group, container.attach_group_of(nvme_[0]));
    ASSIGN_OK(auto nic_group, container.attach_group_of(nics_[0]));
    ASSIGN_OK(auto nvme, nvme_group.open_device(nvme_[0]));
    ASSIGN_OK(auto nic, nic_group.open_device(nics_[0]));
    exercise_bars(nvme);
    exercise_bars(nic);
}

void exercise_msix(const vfio::Device& device) {
    ASSIGN_OK(auto info, device.irq_info(VFIO_PCI_MSIX_IRQ_INDEX));
    std::printf("%s: %u MSI-X vectors\n", device.address().to_string().c_str(), info.count);
    ASSERT_GE(info.count, 2u);
    const std::uint32_t vectors = std::min<std::uint32_t>(info.count, 4);
    {
        ASSIGN_OK(auto irqs, vfio::Interrupts::enable(device, vfio::IrqKind::msix, vectors));
        EXPECT_EQ(irqs.vector_count(), vectors);
        for (std::uint32_t v = 0; v < vectors; ++v) EXPECT_GE(irqs.eventfd(v), 0);
        ASSIGN_OK(auto none, irqs.poll(0));
        EXPECT_EQ(none, 0u) << "nothing pending";
        ASSIGN_OK(auto timed_out, irqs.wait(0, 10ms));
        EXPECT_EQ(timed_out, 0u);
        // Loop back through the kernel: vfio-pci signals the vector's eventfd.
        ASSERT_OK(irqs.trigger(1));
        ASSIGN_OK(auto fired, irqs.wait(1, 2000ms));
        EXPECT_EQ(fired, 1u);
        ASSERT_OK(irqs.trigger(vectors - 1));
        ASSIGN_OK(auto which, irqs.wait_any(2000ms));
        ASSERT_TRUE(which.has_value());
        EXPECT_EQ(*which, vectors - 1);
        EXPECT_FALSE(irqs.trigger(vectors).ok()) << "vector beyond those enabled";
        EXPECT_FALSE(irqs.unmask_intx().ok());
        auto too_many = vfio::Interrupts::enable(device, vfio::IrqKind::msix, info.count + 1);
        EXPECT_FALSE(too_many.ok());
    }
    // Destruction disabled them: enabling again works.
    ASSIGN_OK(auto again, vfio::Interrupts::enable(device, vfio::IrqKind::msix, 1));
    ASSERT_OK(again.trigger(0));
    ASSIGN_OK(auto fired, again.poll(0));
    EXPECT_EQ(fired, 1u);
    ASSERT_OK(again.disable());
}

TEST_F(VfioVm, MsixWithEventfdsOnBothDevices) {
    ASSIGN_OK(auto container, vfio::Container::open());
    ASSIGN_OK(auto nvme_group, container.attach_group_of(nvme_[0]));
    ASSIGN_OK(auto nic_group, container.attach_group_of(nics_[0]));
    ASSIGN_OK(auto nvme, nvme_group.open_device(nvme_[0]));
    ASSIGN_OK(auto nic, nic_group.open_device(nics_[0]));
    exercise_msix(nvme);
    exercise_msix(nic);
}

TEST_F(VfioVm, MapAndUnmapThroughType1) {
    ASSIGN_OK(auto container, vfio::Container::open());
    ASSIGN_OK(auto group, container.attach_group_of(nvme_[0]));
    ASSIGN_OK(auto device, group.open_device(nvme_[0]));
    ASSIGN_OK(auto domain, vfio::create_type1_domain(container));
    auto& backend = static_cast<vfio::Type1Backend&>(domain->backend());

    ASSIGN_OK(auto info, backend.info());
    ASSERT_TRUE(info.iova_ranges.has_value()) << "kernel reports IOVA ranges";
    std::printf("type1: pgsizes=0x%llx dma_avail=%u ranges:",
                static_cast<unsigned long long>(info.iova_pgsizes), info.dma_avail.value_or(0));
    for (const auto& r : *info.iova_ranges) {
        std::printf(" 0x%llx-0x%llx", static_cast<unsigned long long>(r.start),
                    static_cast<unsigned long long>(r.last));
    }
    std::printf("\n");
    const std::uint32_t avail_before = kernel_dma_avail(backend);
    EXPECT_GT(avail_before, 0u);
    EXPECT_EQ(domain->mapping_budget(), avail_before);
    EXPECT_EQ(domain->granule(), k4K);

    ASSIGN_OK(auto small, anonymous(64 * k4K));
    ASSIGN_OK(auto large, anonymous(4 * k2M));
    // 2 MiB-aligned CPU address inside the large mapping.
    auto* aligned = reinterpret_cast<std::byte*>(
        (reinterpret_cast<std::uintptr_t>(large.data()) + k2M - 1) & ~(k2M - 1));

    std::vector<iommu::IommuMapping> maps;
    for (int i = 0; i < 32; ++i) {
        ASSIGN_OK(auto m, domain->map(small.bytes() + i * k4K, k4K, iommu::Access::read_write));
        maps.push_back(m);
    }
    ASSIGN_OK(auto big, domain->map(aligned, k2M, iommu::Access::read));
    EXPECT_EQ(big.iova % k2M, 0u) << "2 MiB mapping on a 2 MiB IOVA boundary";
    maps.push_back(big);
    ASSIGN_OK(auto low, domain->map(small.bytes() + 40 * k4K, 3 * k4K, iommu::Access::write,
                                    {.dma_mask = 0xffffffff}));
    EXPECT_LE(low.iova + low.length - 1, 0xffffffffu);
    maps.push_back(low);
    const iommu::CpuSegment pieces[] = {{small.bytes() + 50 * k4K, k4K},
                                        {small.bytes() + 60 * k4K, k4K}};
    ASSIGN_OK(auto scattered, domain->map_scattered(pieces, iommu::Access::read_write));
    maps.push_back(scattered);

    // Every IOVA inside what the kernel reports now.
    ASSIGN_OK(auto now, backend.info());
    for (const auto& m : maps) {
        EXPECT_TRUE(inside(*now.iova_ranges, m.iova, m.length)) << std::hex << m.iova;
    }
    EXPECT_EQ(kernel_dma_avail(backend), avail_before - 36) << "one kernel entry per segment";
    EXPECT_EQ(domain->mappings_in_use(), 36u);

    // The kernel refuses what IommuDomain never asks for: a second map of a
    // live IOVA (EEXIST), and an unmap of nothing.
    EXPECT_FALSE(backend.map(big.iova, aligned, k4K, iommu::Access::read).ok());
    EXPECT_FALSE(domain->unmap(big.iova + k4K).ok());

    for (const auto& m : maps) ASSERT_OK(domain->unmap(m.iova));
    EXPECT_EQ(kernel_dma_avail(backend), avail_before);
    EXPECT_EQ(domain->mappings_in_use(), 0u);
    EXPECT_FALSE(domain->unmap(big.iova).ok()) << "double unmap is an error";

    // Bad input: no system call, no leak.
    EXPECT_FALSE(domain->map(small.bytes() + 1, k4K, iommu::Access::read).ok());
    EXPECT_FALSE(domain->map(small.bytes(), 0, iommu::Access::read).ok());
    EXPECT_EQ(kernel_dma_avail(backend), avail_before);
}

TEST_F(VfioVm, MappingBudgetHitAndRecovered) {
    ASSIGN_OK(auto container, vfio::Container::open());
    ASSIGN_OK(auto group, container.attach_group_of(nics_[0]));
    constexpr std::uint64_t kCap = 20;
    ASSIGN_OK(auto domain, vfio::create_type1_domain(container, {.max_mappings = kCap}));
    auto& backend = static_cast<vfio::Type1Backend&>(domain->backend());
    const std::uint32_t avail_before = kernel_dma_avail(backend);
    EXPECT_GE(avail_before, kCap);
    EXPECT_EQ(domain->mapping_budget(), kCap);

    ASSIGN_OK(auto memory, anonymous(32 * k4K));
    std::vector<iommu::IommuMapping> maps;
    for (std::uint64_t i = 0; i < kCap; ++i) {
        ASSIGN_OK(auto m, domain->map(memory.bytes() + i * k4K, k4K, iommu::Access::read_write));
        maps.push_back(m);
    }
    auto full = domain->map(memory.bytes() + kCap * k4K, k4K, iommu::Access::read_write);
    ASSERT_FALSE(full.ok());
    EXPECT_EQ(full.error().code(), ENOSPC);
    std::printf("budget error: %s\n", dmakit::to_string(full.error()).c_str());
    EXPECT_NE(full.error().message().find("is used up"), std::string::npos);
    EXPECT_EQ(kernel_dma_avail(backend), avail_before - kCap) << "the failed call reached no kernel";

    ASSERT_OK(domain->unmap(maps[3].iova));
    ASSIGN_OK(auto again, domain->map(memory.bytes() + kCap * k4K, k4K, iommu::Access::read_write));
    maps[3] = again;
    for (const auto& m : maps) ASSERT_OK(domain->unmap(m.iova));
    EXPECT_EQ(kernel_dma_avail(backend), avail_before);
}

// Restores a sysfs attribute on scope exit.
class AttributeGuard {
public:
    AttributeGuard(std::string path, std::string old) : path_(std::move(path)), old_(std::move(old)) {}
    ~AttributeGuard() { (void)write_text_file(path_, old_); }
    AttributeGuard(const AttributeGuard&) = delete;
    AttributeGuard& operator=(const AttributeGuard&) = delete;

private:
    std::string path_;
    std::string old_;
};

TEST_F(VfioVm, KernelDmaEntryLimitIsReadAndEnforced) {
    // dma_entry_limit is a writable module parameter, read when a container
    // gets its IOMMU; lower it for one container and restore it afterwards.
    const std::string limit_path = "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit";
    auto old = read_trimmed(limit_path);
    ASSERT_TRUE(old.ok()) << old.error();
    std::printf("dma_entry_limit=%s\n", old->c_str());
    // The suite runs as root in the guest, where the parameter is writable
    // (mode 0644): refusing it would be a broken bench, so it fails.
    auto lowered = write_text_file(limit_path, "12");
    ASSERT_TRUE(lowered.ok()) << "cannot lower dma_entry_limit: " << lowered.error();
    AttributeGuard restore(limit_path, *old);

    const auto& nic = nics_.size() > 1 ? nics_[1] : nics_[0];
    ASSIGN_OK(auto container, vfio::Container::open());
    ASSIGN_OK(auto group, container.attach_group_of(nic));
    ASSIGN_OK(auto domain, vfio::create_type1_domain(container));
    auto& backend = static_cast<vfio::Type1Backend&>(domain->backend());
    EXPECT_EQ(kernel_dma_avail(backend), 12u);
    EXPECT_EQ(domain->mapping_budget(), 12u) << "the domain's budget is the kernel's";

    ASSIGN_OK(auto memory, anonymous(16 * k4K));
    std::vector<iommu::IommuMapping> maps;
    for (int i = 0; i < 12; ++i) {
        ASSIGN_OK(auto m, domain->map(memory.bytes() + i * k4K, k4K, iommu::Access::read));
        maps.push_back(m);
    }
    EXPECT_EQ(kernel_dma_avail(backend), 0u);
    auto full = domain->map(memory.bytes() + 12 * k4K, k4K, iommu::Access::read);
    ASSERT_FALSE(full.ok());
    EXPECT_EQ(full.error().code(), ENOSPC);
    EXPECT_NE(full.error().message().find("vfio_iommu_type1 dma_entry_limit) is used up; raise it "
                                          "with modprobe vfio_iommu_type1 dma_entry_limit="),
              std::string::npos)
        << full.error();
    std::printf("budget error: %s\n", dmakit::to_string(full.error()).c_str());
    // The kernel itself refuses too, and the backend says the same thing.
    auto raw = backend.map(0x7f000000, memory.bytes() + 13 * k4K, k4K, iommu::Access::read);
    ASSERT_FALSE(raw.ok());
    EXPECT_EQ(raw.error().code(), ENOSPC);
    std::printf("kernel refusal: %s\n", dmakit::to_string(raw.error()).c_str());

    ASSERT_OK(domain->unmap(maps[0].iova));
    ASSIGN_OK(auto again, domain->map(memory.bytes() + 12 * k4K, k4K, iommu::Access::read));
    EXPECT_EQ(kernel_dma_avail(backend), 0u);
    (void)again;
}

TEST_F(VfioVm, TwoDevicesInTwoDomainsFromOneProcess) {
    ASSIGN_OK(auto container_a, vfio::Container::open());
    ASSIGN_OK(auto container_b, vfio::Container::open());
    ASSIGN_OK(auto group_a, container_a.attach_group_of(nvme_[0]));
    ASSIGN_OK(auto group_b, container_b.attach_group_of(nics_[0]));
    ASSIGN_OK(auto nvme, group_a.open_device(nvme_[0]));
    ASSIGN_OK(auto nic, group_b.open_device(nics_[0]));
    ASSIGN_OK(auto domain_a, vfio::create_type1_domain(container_a));
    ASSIGN_OK(auto domain_b, vfio::create_type1_domain(container_b, {.max_mappings = 4}));
    auto& backend_a = static_cast<vfio::Type1Backend&>(domain_a->backend());
    auto& backend_b = static_cast<vfio::Type1Backend&>(domain_b->backend());
    const std::uint32_t avail_a = kernel_dma_avail(backend_a);
    const std::uint32_t avail_b = kernel_dma_avail(backend_b);

    ASSIGN_OK(auto memory, anonymous(8 * k4K));
    // The same memory mapped for both devices, in two address spaces.
    ASSIGN_OK(auto ma, domain_a->map(memory.bytes(), 4 * k4K, iommu::Access::read_write));
    ASSIGN_OK(auto mb, domain_b->map(memory.bytes(), 4 * k4K, iommu::Access::read_write));
    ASSIGN_OK(auto mb2, domain_b->map(memory.bytes() + 4 * k4K, k4K, iommu::Access::read));
    EXPECT_EQ(kernel_dma_avail(backend_a), avail_a - 1);
    EXPECT_EQ(kernel_dma_avail(backend_b), avail_b - 2);

    // Both devices answer while both domains hold mappings.
    ASSIGN_OK(auto bar_a, nvme.map_bar(0));
    ASSIGN_OK(auto bar_b, nic.map_bar(0));
    EXPECT_EQ(mmio::read32(bar_a.base(), kNvmeVs), 0x10400u);
    EXPECT_NE(mmio::read32(bar_b.base(), kE1000Status), 0xffffffffu);

    // Unmapping in one leaves the other alone.
    ASSERT_OK(domain_b->unmap(mb.iova));
    EXPECT_EQ(kernel_dma_avail(backend_a), avail_a - 1);
    EXPECT_EQ(domain_a->mapping_count(), 1u);
    ASSERT_OK(domain_b->unmap(mb2.iova));
    ASSERT_OK(domain_a->unmap(ma.iova));
    EXPECT_EQ(kernel_dma_avail(backend_a), avail_a);
    EXPECT_EQ(kernel_dma_avail(backend_b), avail_b);
}

TEST_F(VfioVm, OneDomainServesTwoDevices) {
    ASSIGN_OK(auto container, vfio::Container::open());
    ASSIGN_OK(auto nvme_group, container.attach_group_of(nvme_[0]));
    ASSIGN_OK(auto domain, vfio::create_type1_domain(container));
    ASSIGN_OK(auto memory, anonymous(4 * k4K));
    ASSIGN_OK(auto before, domain->map(memory.bytes(), k4K, iommu::Access::read_write));

    // A second group joins the same container afterwards: the kernel replays
    // the existing mappings into it; the domain re-reads ranges and budget.
    ASSIGN_OK(auto nic_group, container.attach_group_of(nics_[0]));
    ASSERT_OK(domain->refresh());
    ASSIGN_OK(auto after, domain->map(memory.bytes() + k4K, k4K, iommu::Access::read_write));
    ASSIGN_OK(auto nvme, nvme_group.open_device(nvme_[0]));
    ASSIGN_OK(auto nic, nic_group.open_device(nics_[0]));
    ASSIGN_OK(auto bar_a, nvme.map_bar(0));
    ASSIGN_OK(auto bar_b, nic.map_bar(0));
    EXPECT_EQ(mmio::read32(bar_a.base(), kNvmeVs), 0x10400u);
    EXPECT_NE(mmio::read32(bar_b.base(), kE1000Status), 0xffffffffu);
    ASSERT_OK(domain->unmap(before.iova));
    ASSERT_OK(domain->unmap(after.iova));
}

TEST_F(VfioVm, ClearErrorsForMisuse) {
    ASSIGN_OK(auto container, vfio::Container::open());
    ASSIGN_OK(auto group, container.attach_group_of(nvme_[0]));
    // A group opens once.
    auto twice = container.attach_group_of(nvme_[0]);
    ASSERT_FALSE(twice.ok());
    EXPECT_EQ(twice.error().code(), EBUSY);
    std::printf("second open: %s\n", dmakit::to_string(twice.error()).c_str());
    // A device of another group.
    auto wrong = group.open_device(nics_[0]);
    ASSERT_FALSE(wrong.ok());
    std::printf("wrong group: %s\n", dmakit::to_string(wrong.error()).c_str());
    // A backend before any group is attached.
    ASSIGN_OK(auto empty, vfio::Container::open());
    auto early = vfio::Type1Backend::create(empty);
    ASSERT_FALSE(early.ok());
    EXPECT_NE(early.error().message().find("attach a group first"), std::string::npos);
}

}  // namespace
}  // namespace dmakit
