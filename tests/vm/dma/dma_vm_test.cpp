// The DMA layer against the real kernel: VFIO type1 on the guest's emulated
// intel-iommu, with the NVMe controller (1b36:0010) and an e1000e (8086:10d3)
// bound to vfio-pci. A missing device fails the test in the guest and skips
// it elsewhere (bench_devices.hpp). That devices really move
// data through these mappings is shown by the NVMe tests, which use this API
// and nothing else.
#include "bench_devices.hpp"

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/dma/pool.hpp>
#include <dmakit/pci/sysfs.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

namespace dmakit::dma {
namespace {

struct CapturedLog {
    std::vector<std::string> lines;
    Logger logger{LogLevel::debug, [this](LogLevel, std::string_view m) { lines.emplace_back(m); }};
};

class DmaVm : public ::testing::Test {
protected:
    void SetUp() override {
        const auto nvmes = vmtest::devices_bound_to(vmtest::kBenchNvme);
        const auto nics = vmtest::devices_bound_to(vmtest::kBenchNic);
        DMAKIT_VM_REQUIRE_DEVICES(nvmes, vmtest::kBenchNvme);
        DMAKIT_VM_REQUIRE_DEVICES(nics, vmtest::kBenchNic);
        nvme_ = nvmes[0];
        nic_ = nics[0];
    }

    [[nodiscard]] Result<std::unique_ptr<PciDomain>> open(const pci::PciAddress& address,
                                                            PciDmaOptions options = {}) {
        options.context.logger = &log_.logger;
        options.context.debug = true;
        options.context.pages.region_size = std::size_t{8} << 20;
        return PciDomain::open(address, options);
    }

    [[nodiscard]] static bool inside_kernel_ranges(const iommu::IommuDomain& domain, DmaAddr addr,
                                                   std::size_t length) {
        for (const auto& range : domain.usable_ranges()) {
            if (addr.value() >= range.start && addr.value() + length - 1 <= range.last) return true;
        }
        return false;
    }

    std::optional<pci::PciAddress> nvme_;
    std::optional<pci::PciAddress> nic_;
    CapturedLog log_;
};

TEST_F(DmaVm, CoherentStreamingAndForeignMappingsLandInsideTheKernelsRanges) {
    auto dev = open(*nvme_);
    ASSERT_TRUE(dev.ok()) << dev.error();
    DmaDevice& dma = (*dev)->function(0).dma();
    auto& domain = (*dev)->context().domain();
    ASSERT_FALSE(domain.usable_ranges().empty());

    auto coherent = dma.alloc_coherent(16384);
    ASSERT_TRUE(coherent.ok()) << coherent.error();
    EXPECT_TRUE(inside_kernel_ranges(domain, coherent->dma(), coherent->size()));

    auto streaming = dma.map_single(coherent->as<std::byte>() + 4096, 4096, DmaDirection::to_device);
    ASSERT_TRUE(streaming.ok());
    EXPECT_EQ(streaming->value(), coherent->dma().value() + 4096);
    ASSERT_TRUE(dma.unmap_single(*streaming, 4096, DmaDirection::to_device).ok());

    const auto mappings_before = domain.mappings_in_use();
    std::vector<unsigned char> heap(std::size_t{5} << 20, 0xab);
    auto foreign = dma.map_single(heap.data() + 12345, std::size_t{3} << 20, DmaDirection::from_device);
    ASSERT_TRUE(foreign.ok()) << foreign.error();
    EXPECT_TRUE(inside_kernel_ranges(domain, *foreign, std::size_t{3} << 20));
    EXPECT_EQ(domain.mappings_in_use(), mappings_before + 1) << "one VFIO_IOMMU_MAP_DMA";
    ASSERT_TRUE(dma.unmap_single(*foreign, std::size_t{3} << 20, DmaDirection::from_device).ok());
    EXPECT_EQ(domain.mappings_in_use(), mappings_before) << "unmapped with its last user";
    EXPECT_TRUE((*dev)->context().debug()->reports().empty());
}

TEST_F(DmaVm, ThirtyTwoBitMaskKeepsEveryAddressBelowFourGiB) {
    auto dev = open(*nvme_);
    ASSERT_TRUE(dev.ok()) << dev.error();
    DmaDevice& dma = (*dev)->function(0).dma();
    ASSERT_TRUE(dma.set_mask_and_coherent(dma_bit_mask(32)).ok());
    std::vector<std::vector<unsigned char>> heaps;
    for (int i = 0; i < 8; ++i) {
        heaps.emplace_back(std::size_t{1} << 20);
        auto addr = dma.map_single(heaps.back().data(), heaps.back().size(), DmaDirection::to_device);
        ASSERT_TRUE(addr.ok()) << addr.error();
        EXPECT_LE(addr->value() + heaps.back().size() - 1, dma_bit_mask(32));
        ASSERT_TRUE(dma.unmap_single(*addr, heaps.back().size(), DmaDirection::to_device).ok());
    }
    auto pool = DmaPool::create("prp", dma, 4096, 4096, 4096);
    ASSERT_TRUE(pool.ok()) << pool.error();
    auto block = (*pool)->alloc();
    ASSERT_TRUE(block.ok());
    EXPECT_LE(block->dma.value() + 4095, dma_bit_mask(32));
    ASSERT_TRUE((*pool)->free(block->cpu).ok());
}

TEST_F(DmaVm, MappingBudgetRunsOutCleanlyAndRecovers) {
    PciDmaOptions options;
    options.domain.max_mappings = 4;
    auto dev = open(*nvme_, options);
    ASSERT_TRUE(dev.ok()) << dev.error();
    DmaDevice& dma = (*dev)->function(0).dma();
    std::vector<std::vector<unsigned char>> heaps;
    std::vector<DmaAddr> mapped;
    std::optional<Error> failure;
    for (int i = 0; i < 8 && !failure; ++i) {
        heaps.emplace_back(std::size_t{4} << 20);  // 2 MiB extents never shared between them
        auto addr = dma.map_single(heaps.back().data() + (2 << 20), 4096, DmaDirection::to_device);
        if (addr.ok()) mapped.push_back(*addr); else failure = addr.error();
    }
    ASSERT_TRUE(failure.has_value()) << "the budget of 4 mappings was never hit";
    EXPECT_NE(failure->message().find("budget"), std::string::npos) << failure->message();
    ASSERT_FALSE(mapped.empty());
    ASSERT_TRUE(dma.unmap_single(mapped.back(), 4096, DmaDirection::to_device).ok());
    mapped.pop_back();
    auto again = dma.map_single(heaps.back().data() + (2 << 20), 4096, DmaDirection::to_device);
    ASSERT_TRUE(again.ok()) << again.error();
    mapped.push_back(*again);
    for (DmaAddr addr : mapped) ASSERT_TRUE(dma.unmap_single(addr, 4096, DmaDirection::to_device).ok());
}

TEST_F(DmaVm, TwoDevicesInTwoDomainsFromOneProcess) {
    auto storage = open(*nvme_);
    auto network = open(*nic_);
    ASSERT_TRUE(storage.ok()) << storage.error();
    ASSERT_TRUE(network.ok()) << network.error();
    auto a = (*storage)->function(0).dma().alloc_coherent(4096);
    auto b = (*network)->function(0).dma().alloc_coherent(4096);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_NE(&(*storage)->context().domain(), &(*network)->context().domain());
    std::vector<unsigned char> heap(1 << 20);
    auto fa = (*storage)->function(0).dma().map_single(heap.data(), 4096, DmaDirection::to_device);
    auto fb = (*network)->function(0).dma().map_single(heap.data(), 4096, DmaDirection::to_device);
    ASSERT_TRUE(fa.ok() && fb.ok()) << "the same memory mapped in two domains";
    ASSERT_TRUE((*storage)->function(0).dma().unmap_single(*fa, 4096, DmaDirection::to_device).ok());
    ASSERT_TRUE((*network)->function(0).dma().unmap_single(*fb, 4096, DmaDirection::to_device).ok());
}

TEST_F(DmaVm, LargeBufferFromSmallPagesIsOneDeviceRange) {
    auto dev = open(*nvme_);
    ASSERT_TRUE(dev.ok()) << dev.error();
    auto big = (*dev)->function(0).dma().alloc_large(std::size_t{8} << 20);
    ASSERT_TRUE(big.ok()) << big.error();
    EXPECT_TRUE(inside_kernel_ranges((*dev)->context().domain(), big->dma(), big->size()));
}

TEST_F(DmaVm, LeakedMappingIsReportedWhenTheDeviceCloses) {
    auto dev = open(*nvme_);
    ASSERT_TRUE(dev.ok()) << dev.error();
    std::vector<unsigned char> heap(1 << 20);
    auto addr = (*dev)->function(0).dma().map_single(heap.data(), 4096, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok());
    dev->reset();
    bool reported = false;
    for (const auto& line : log_.lines) reported |= line.find("still live") != std::string::npos;
    EXPECT_TRUE(reported);
}

TEST_F(DmaVm, DeviceOnAnotherDriverNamesTheBindCommand) {
    // The q35 LPC bridge (00:1f.0) is on no vfio driver in the guest.
    auto address = pci::PciAddress::parse("0000:00:1f.0");
    ASSERT_TRUE(address.ok());
    auto dev = open(*address);
    ASSERT_FALSE(dev.ok());
    EXPECT_NE(dev.error().message().find("dmakit bind 0000:00:1f.0"), std::string::npos)
        << dev.error();
}

}  // namespace
}  // namespace dmakit::dma
