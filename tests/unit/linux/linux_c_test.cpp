// <dmakit/linux.h> from C: the cases in kernel_patterns.c (compiled as C11)
// run over a DmaContext on the recording test IOMMU, and this file plays the
// device: it reads and writes through the IOMMU what the C code mapped, and
// checks what the C code was refused and told.
#include <dmakit/dma/context.hpp>
#include <dmakit/dma/device.hpp>
#include <dmakit/testing/test_backend.hpp>
#include <dmakit/linux/kernel.hpp>
#include <dmakit/mem/anonymous_source.hpp>
#include <dmakit/mem/leak_tracker.hpp>

#include "kernel_patterns.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

using namespace dmakit;

class LinuxC : public ::testing::Test {
protected:
    [[nodiscard]] virtual dma::IommuPolicy policy() const { return dma::IommuPolicy::pool; }
    [[nodiscard]] virtual bool leak_check() const { return false; }

    void SetUp() override {
        auto backend = std::make_unique<iommu::TestIommuBackend>(iommu::TestBackendConfig{});
        backend_ = backend.get();
        auto domain = iommu::IommuDomain::create(std::move(backend), {});
        ASSERT_TRUE(domain.ok()) << domain.error();
        dma::DmaContextConfig config;
        config.logger = &logger_;
        config.policy = policy();
        config.pages.leak_check = leak_check();
        config.pages.region_size = std::size_t{4} << 20;
        config.pages.max_managed = std::size_t{64} << 20;  // so kvmalloc of 256 MiB falls back to vmalloc
        auto context = dma::DmaContext::create(std::move(*domain), std::make_unique<mem::AnonymousSource>(), config);
        ASSERT_TRUE(context.ok()) << context.error();
        context_ = std::move(*context);
        device_ = std::make_unique<dma::DmaDevice>(*context_, "0000:00:04.0");
        std::array<dma::DmaDevice*, 1> devices{device_.get()};
        auto kernel = dmakit_kernel::adopt(*context_, devices);
        ASSERT_TRUE(kernel.ok()) << kernel.error();
        kernel_ = std::move(*kernel);
        dmakit_kernel_enter(kernel_.get());
        dev_ = dmakit_kernel_device(kernel_.get(), 0);
        ASSERT_NE(dev_, nullptr);
    }
    void TearDown() override {
        dmakit_kernel_enter(nullptr);
        kernel_.reset();
        device_.reset();
        context_.reset();
    }

    [[nodiscard]] void* device_view(dma_addr_t addr, std::size_t length, iommu::Access access) const {
        auto cpu = backend_->translate(addr, length, access);
        return cpu ? *cpu : nullptr;
    }
    [[nodiscard]] bool logged(const std::string& text) {
        std::lock_guard hold(mutex_);
        return std::any_of(lines_.begin(), lines_.end(),
                           [&](const std::string& line) { return line.find(text) != std::string::npos; });
    }
    [[nodiscard]] std::string log_text() {
        std::lock_guard hold(mutex_);
        std::string all;
        for (const auto& line : lines_) all += line + "\n";
        return all;
    }

    std::mutex mutex_;
    std::vector<std::string> lines_;
    Logger logger_{LogLevel::debug, [this](LogLevel, std::string_view m) {
                       std::lock_guard hold(mutex_);
                       lines_.emplace_back(m);
                   }};
    iommu::TestIommuBackend* backend_ = nullptr;
    std::unique_ptr<dma::DmaContext> context_;
    std::unique_ptr<dma::DmaDevice> device_;
    std::unique_ptr<dmakit_kernel> kernel_;
    struct device* dev_ = nullptr;
};

#define EXPECT_CASE(call)                      \
    do {                                       \
        const char* failed = (call);           \
        EXPECT_EQ(failed, nullptr) << failed;  \
    } while (0)

TEST_F(LinuxC, KmallocFamily) { EXPECT_CASE(case_kmalloc_family()); }
TEST_F(LinuxC, KmemCacheWithConstructor) { EXPECT_CASE(case_kmem_cache()); }
TEST_F(LinuxC, PagesAndOrders) { EXPECT_CASE(case_pages()); }
TEST_F(LinuxC, VmallocAndKvmalloc) { EXPECT_CASE(case_vmalloc()); }
TEST_F(LinuxC, DmaPoolBlocksAreAlignedAndStayInsideTheBoundary) { EXPECT_CASE(case_dma_pool(dev_)); }

TEST_F(LinuxC, CoherentRingIsWhatTheDeviceSees) {
    ring_seen seen{};
    EXPECT_CASE(case_dma_coherent_ring(dev_, &seen));
    auto* view = static_cast<std::uint64_t*>(device_view(seen.ring_dma, seen.ring_bytes, iommu::Access::read_write));
    ASSERT_NE(view, nullptr) << "the device cannot reach the coherent ring";
    EXPECT_EQ(view[0], 0x1122334455667788ull);
    view[1] = 0xfeed;  // the device writes a descriptor back
    EXPECT_EQ(static_cast<std::uint64_t*>(seen.ring_cpu)[1], 0xfeedu);
    EXPECT_CASE(case_dma_free_ring(dev_, &seen));
    EXPECT_TRUE(lines_.empty()) << log_text();
}

// Under the strict policy every streaming map is its own IOMMU mapping with
// the direction's permission (docs/dma.md).
// Leak tracking records the C caller's __FILE__:__LINE__, which the macros
// forward (kernel.hpp undefines the macros for C++; called as they expand).
class LinuxCLeakCheck : public LinuxC {
protected:
    [[nodiscard]] bool leak_check() const override { return true; }
};

TEST_F(LinuxCLeakCheck, SitesAreTheCCallersFileAndLine) {
    void* object = dmakit_kmalloc(100, GFP_KERNEL, __FILE__, __LINE__); const std::uint32_t kmalloc_line = __LINE__;
    struct page* page = dmakit_alloc_pages(GFP_KERNEL, 1, __FILE__, __LINE__); const std::uint32_t page_line = __LINE__;
    dma_addr_t handle = 0;
    void* ring = dmakit_dma_alloc_coherent(dev_, 4096, &handle, GFP_KERNEL, __FILE__, __LINE__); const std::uint32_t ring_line = __LINE__;
    ASSERT_TRUE(object != nullptr && page != nullptr && ring != nullptr);
    const mem::LeakReport report = context_->leak_tracker()->report_leaks();
    ASSERT_EQ(report.sites.size(), 3U) << report.text();
    for (const mem::LeakSite& site : report.sites) {
        EXPECT_NE(site.file.find("linux_c_test.cpp"), std::string::npos) << report.text();
        if (site.kind == mem::AllocKind::kmalloc) EXPECT_EQ(site.line, kmalloc_line);
        else if (site.kind == mem::AllocKind::page) EXPECT_EQ(site.line, page_line);
        else if (site.kind == mem::AllocKind::dma_coherent) EXPECT_EQ(site.line, ring_line);
        else ADD_FAILURE() << "unexpected kind in " << report.text();
    }
    kfree(object);
    __free_pages(page, 1);
    dma_free_coherent(dev_, 4096, ring, handle);
    EXPECT_TRUE(context_->leak_tracker()->report_leaks().empty());
}

class LinuxCStrict : public LinuxC {
protected:
    [[nodiscard]] dma::IommuPolicy policy() const override { return dma::IommuPolicy::strict; }
};

TEST_F(LinuxCStrict, StreamingMapsGiveTheDirectionsPermission) {
    kmem_cache* packets = dmakit_kmem_cache_create("packets", 2048, 64, 0, nullptr, __FILE__, __LINE__);
    ASSERT_NE(packets, nullptr);
    // The frames are taken GFP_ATOMIC, as on a transmit path: the cache needs a slab first.
    kmem_cache_free(packets, dmakit_kmem_cache_alloc(packets, GFP_KERNEL, __FILE__, __LINE__));
    stream_seen seen{};
    EXPECT_CASE(case_dma_streaming(dev_, packets, &seen));
    // TX: the device reads the frame and may not write it.
    auto* tx = static_cast<std::uint8_t*>(device_view(seen.tx_dma, 60, iommu::Access::read));
    ASSERT_NE(tx, nullptr);
    EXPECT_EQ(tx[59], 0x42);
    EXPECT_EQ(device_view(seen.tx_dma, 60, iommu::Access::write), nullptr) << "a DMA_TO_DEVICE map is writable";
    EXPECT_EQ(device_view(seen.rx_dma, 2048, iommu::Access::read), nullptr) << "a DMA_FROM_DEVICE map is readable";
    // RX: the device writes.
    auto* rx = static_cast<std::uint8_t*>(device_view(seen.rx_dma, 2048, iommu::Access::write));
    ASSERT_NE(rx, nullptr);
    rx[0] = 0x99;
    EXPECT_EQ(static_cast<std::uint8_t*>(seen.rx_cpu)[0], 0x99);
    // Each scatter entry reaches its own bytes.
    for (int i = 0; i < seen.sg_count; ++i) {
        auto* piece = device_view(seen.sg[i].dma_address, seen.sg[i].length, iommu::Access::read_write);
        ASSERT_NE(piece, nullptr) << "entry " << i;
        EXPECT_EQ(piece, seen.sg[i].dmakit_cpu) << "entry " << i;
    }
    EXPECT_EQ(device_->live_mappings(), 5u);
    const dma_addr_t tx_dma = seen.tx_dma;
    EXPECT_CASE(case_dma_unmap_streaming(dev_, packets, &seen));
    EXPECT_EQ(device_->live_mappings(), 0u);
    EXPECT_EQ(device_view(tx_dma, 60, iommu::Access::read), nullptr) << "reachable after dma_unmap_single";
    kmem_cache_destroy(packets);
    EXPECT_TRUE(lines_.empty()) << log_text();
}

// Under the pool policy pool memory (kmalloc, kmem_cache, pages) is mapped
// once, read-write, when the pool grows; a streaming map of it costs a lookup.
TEST_F(LinuxC, StreamingMapsOfPoolMemoryCostALookup) {
    kmem_cache* packets = dmakit_kmem_cache_create("packets", 2048, 64, 0, nullptr, __FILE__, __LINE__);
    ASSERT_NE(packets, nullptr);
    // Grow the pool first (its one region map), so what follows is only the maps.
    kmem_cache_free(packets, dmakit_kmem_cache_alloc(packets, GFP_KERNEL, __FILE__, __LINE__));
    stream_seen seen{};
    const auto maps_before = backend_->operations().size();
    EXPECT_CASE(case_dma_streaming(dev_, packets, &seen));
    EXPECT_EQ(backend_->operations().size(), maps_before) << "pool memory was mapped again";
    auto* tx = static_cast<std::uint8_t*>(device_view(seen.tx_dma, 60, iommu::Access::read));
    ASSERT_NE(tx, nullptr);
    EXPECT_EQ(tx[0], 0x42);
    EXPECT_EQ(device_->live_mappings(), 5u);
    EXPECT_CASE(case_dma_unmap_streaming(dev_, packets, &seen));
    EXPECT_EQ(device_->live_mappings(), 0u);
    kmem_cache_destroy(packets);
    EXPECT_TRUE(lines_.empty()) << log_text();
}

TEST_F(LinuxC, BadInputIsRefusedLoggedAndHarmsNothing) {
    u8* keep = static_cast<u8*>(dmakit_kmalloc(64, GFP_KERNEL, __FILE__, __LINE__));
    ASSERT_NE(keep, nullptr);
    std::memset(keep, 0x5c, 64);
    const dma_addr_t keep_dma = dma_map_single(dev_, keep, 64, DMA_BIDIRECTIONAL);
    ASSERT_NE(keep_dma, DMA_MAPPING_ERROR);

    EXPECT_CASE(case_bad_input(dev_));

    const std::string log = log_text();
    EXPECT_TRUE(logged("dma_unmap_single")) << log;
    EXPECT_TRUE(logged("dma_set_mask")) << log;
    EXPECT_TRUE(logged("direction 3")) << log;
    EXPECT_TRUE(logged("__free_pages(order 0)")) << log;
    EXPECT_TRUE(logged("dma_free_coherent: not a live coherent buffer")) << log;
    EXPECT_TRUE(logged("vfree: not a vmalloc area")) << log;
    // The mapping made before is untouched: the device still reads it.
    auto* view = static_cast<std::uint8_t*>(device_view(keep_dma, 64, iommu::Access::read));
    ASSERT_NE(view, nullptr);
    EXPECT_EQ(view[63], 0x5c);
    dma_unmap_single(dev_, keep_dma, 64, DMA_BIDIRECTIONAL);
    kfree(keep);
    EXPECT_EQ(device_->live_mappings(), 0u);
}

TEST_F(LinuxC, AThreadWithoutAKernelGetsNullAndAMessage) {
    dmakit_kernel_enter(nullptr);
    EXPECT_EQ(dmakit_kmalloc(32, GFP_KERNEL, __FILE__, __LINE__), nullptr);
    EXPECT_EQ(dmakit_kernel_current(), nullptr);
    dmakit_kernel_enter(kernel_.get());
    void* p = dmakit_kmalloc(32, GFP_KERNEL, __FILE__, __LINE__);
    EXPECT_NE(p, nullptr);
    kfree(p);
}

TEST_F(LinuxC, CloseFreesWhatTheCodeLeftAndSaysSo) {
    ASSERT_NE(dmakit_kmem_cache_create("left", 100, 0, 0, nullptr, __FILE__, __LINE__), nullptr);
    ASSERT_NE(dma_pool_create("left", dev_, 32, 0, 0), nullptr);
    dma_addr_t handle = 0;
    ASSERT_NE(dmakit_dma_alloc_coherent(dev_, 4096, &handle, GFP_KERNEL, __FILE__, __LINE__), nullptr);
    kernel_.reset();
    EXPECT_TRUE(logged("left 1 kmem_cache(s), 1 dma_pool(s), 1 coherent buffer(s)")) << log_text();
    EXPECT_EQ(dmakit_kernel_current(), nullptr);
}

// GFP_ATOMIC: only what the pool holds, never a system call (no region
// mapped, so the IOMMU backend sees nothing); __GFP_NOWARN keeps it quiet.
TEST_F(LinuxC, AtomicAllocationFromAnEmptyPoolFailsWithoutGrowingIt) {
    const auto operations = backend_->operations().size();
    const auto managed = context_->pages().stats().managed_bytes;
    ASSERT_EQ(managed, 0u) << "the test needs a pool that has not grown yet";
    EXPECT_CASE(case_atomic_from_an_empty_pool());
    // Exactly one growth (the GFP_KERNEL call): one region mapped.
    EXPECT_EQ(backend_->operations().size(), operations + 1);
    std::size_t messages = 0;
    {
        std::lock_guard hold(mutex_);
        for (const auto& line : lines_) messages += line.find("kmalloc(64)") != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(messages, 1u) << "one message for the one atomic failure without __GFP_NOWARN:\n" << log_text();
}

// dev_to_node is the DmaDevice's node: none until sysfs (PciDomain) or
// set_numa_node gives one.
TEST_F(LinuxC, DevToNodeIsTheDevicesNode) {
    EXPECT_EQ(dev_to_node(dev_), NUMA_NO_NODE);
    ASSERT_TRUE(device_->set_numa_node(0).ok());
    EXPECT_EQ(dev_to_node(dev_), 0);
    EXPECT_EQ(dev_to_node(nullptr), NUMA_NO_NODE);
}

TEST(LinuxCOpen, BadAddressesFailWithAClearMessage) {
    const char* bad[] = {"not-a-bdf"};
    EXPECT_EQ(dmakit_kernel_open(bad, 1, nullptr), nullptr);
    EXPECT_EQ(dmakit_kernel_open(nullptr, 0, nullptr), nullptr);
}

}  // namespace
