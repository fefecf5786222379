// Regression tests for issue 9's isolation findings: a mapping gives the
// device exactly what the call asked for, with the direction's permission,
// for as long as it lives; misuse is refused without touching anything else.
// The test plays the device through TestIommuBackend::translate, which fails
// where a real IOMMU would fault.
#include "dma_test_fixture.hpp"

#include <dmakit/dma/pool.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <sys/mman.h>
#include <thread>
#include <vector>

namespace dmakit::dma::testing {
namespace {

constexpr std::size_t kPage = 4096;

std::uintptr_t page_of(const void* p) { return reinterpret_cast<std::uintptr_t>(p) & ~(kPage - 1); }

using IsolationTest = DmaTest;

// Found: map_single(buf, 64, to_device) of foreign memory mapped a 2 MiB,
// read-write extent.
TEST_F(IsolationTest, SixtyFourByteForeignMapExposesOnePageReadOnly) {
    std::vector<unsigned char> heap(16 * kPage);
    unsigned char* buffer = heap.data() + 5 * kPage + 100;
    auto addr = device_->map_single(buffer, 64, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    const auto& op = backend_->operations().back();
    EXPECT_EQ(op.length, kPage) << "one 4 KiB page";
    EXPECT_EQ(op.cpu, reinterpret_cast<const void*>(page_of(buffer)));
    EXPECT_EQ(op.access, iommu::Access::read);
    EXPECT_EQ(device_view(*addr, 64, iommu::Access::read), buffer);
    EXPECT_FALSE(device_can_write(*addr, 1)) << "to_device: the device may not write";
    // Nothing of the neighbouring pages is reachable, at any IOVA.
    const auto page_iova = addr->value() & ~(kPage - 1);
    EXPECT_FALSE(device_can_read(DmaAddr(page_iova + kPage), 1));
    EXPECT_FALSE(device_can_read(DmaAddr(page_iova - kPage), 1));
    for (const auto& [iova, live] : backend_->live()) {
        const auto cpu = reinterpret_cast<std::uintptr_t>(live.cpu);
        const auto heap_start = reinterpret_cast<std::uintptr_t>(heap.data());
        if (cpu + live.length <= heap_start || cpu >= heap_start + heap.size()) continue;
        EXPECT_EQ(live.length, kPage) << "the only mapping of the heap is the buffer's page";
    }
    ASSERT_TRUE(device_->unmap_single(*addr, 64, DmaDirection::to_device).ok());
    EXPECT_FALSE(device_can_read(*addr, 1));
}

TEST_F(IsolationTest, DirectionDecidesThePermission) {
    std::vector<unsigned char> heap(4 * kPage);
    auto from = device_->map_single(heap.data(), 100, DmaDirection::from_device);
    ASSERT_TRUE(from.ok());
    EXPECT_TRUE(device_can_write(*from, 100));
    EXPECT_FALSE(device_can_read(*from, 1)) << "from_device is write-only";
    auto both = device_->map_single(heap.data() + 2 * kPage, 100, DmaDirection::bidirectional);
    ASSERT_TRUE(both.ok());
    EXPECT_TRUE(device_can_write(*both, 100));
    EXPECT_TRUE(device_can_read(*both, 100));
    ASSERT_TRUE(device_->unmap_single(*from, 100, DmaDirection::from_device).ok());
    ASSERT_TRUE(device_->unmap_single(*both, 100, DmaDirection::bidirectional).ok());
}

// Found: extents were keyed by virtual address and never invalidated, so a
// map after munmap + a new mapping at the same address was a hit on the old
// pinned pages.
TEST_F(IsolationTest, NewMemoryAtAnOldAddressIsMappedAfresh) {
    const std::size_t length = 4 * kPage;
    void* first = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(first, MAP_FAILED);
    auto a = device_->map_single(first, kPage, DmaDirection::to_device);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(device_->unmap_single(*a, kPage, DmaDirection::to_device).ok());
    ASSERT_EQ(::munmap(first, length), 0);
    void* second = ::mmap(first, length, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    ASSERT_EQ(second, first) << "the test needs the same address back";
    const std::size_t maps = backend_maps();
    auto b = device_->map_single(second, kPage, DmaDirection::to_device);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(backend_maps(), maps + 1) << "a new pin and map, never a cached translation";
    EXPECT_EQ(context_->registrations().stats().hits, 0U);
    ASSERT_TRUE(device_->unmap_single(*b, kPage, DmaDirection::to_device).ok());
    ::munmap(second, length);
}

// Found: release() dropped a reference from whichever extent held the
// address, so a double unmap released another mapping.
TEST_F(IsolationTest, DoubleUnmapIsRefusedAndLeavesOtherMappingsAlone) {
    std::vector<unsigned char> heap(8 * kPage);
    auto coherent = device_->alloc_coherent(2 * kPage);
    ASSERT_TRUE(coherent.ok());
    for (bool pool : {false, true}) {
        SCOPED_TRACE(pool ? "pool memory" : "foreign memory");
        unsigned char* base = pool ? coherent->as<unsigned char>() : heap.data();
        auto a = device_->map_single(base, 512, DmaDirection::to_device);
        auto b = device_->map_single(base + 1024, 512, DmaDirection::to_device);
        ASSERT_TRUE(a.ok() && b.ok());
        ASSERT_TRUE(device_->unmap_single(*a, 512, DmaDirection::to_device).ok());
        const auto ops = backend_->operations().size();
        auto again = device_->unmap_single(*a, 512, DmaDirection::to_device);
        ASSERT_FALSE(again.ok());
        EXPECT_EQ(again.error().code(), EINVAL);
        EXPECT_NE(again.error().message().find("nothing was changed"), std::string::npos);
        EXPECT_EQ(backend_->operations().size(), ops) << "no IOMMU call for a refused unmap";
        EXPECT_TRUE(device_can_read(*b, 512)) << "b is still mapped";
        EXPECT_EQ(device_->live_mappings(), 1U);
        // Wrong length or direction: refused too, b stays.
        EXPECT_FALSE(device_->unmap_single(*b, 511, DmaDirection::to_device).ok());
        EXPECT_FALSE(device_->unmap_single(*b, 512, DmaDirection::from_device).ok());
        EXPECT_FALSE(device_->unmap_page(*b + 1, 511, DmaDirection::to_device).ok());
        EXPECT_TRUE(device_can_read(*b, 512));
        ASSERT_TRUE(device_->unmap_single(*b, 512, DmaDirection::to_device).ok());
        EXPECT_EQ(device_->live_mappings(), 0U);
    }
}

TEST_F(IsolationTest, SyncsOfNothingLiveAreRefused) {
    std::vector<unsigned char> heap(2 * kPage);
    auto addr = device_->map_single(heap.data(), 1000, DmaDirection::from_device);
    ASSERT_TRUE(addr.ok());
    EXPECT_TRUE(device_->sync_single_for_cpu(*addr, 1000, DmaDirection::from_device).ok());
    EXPECT_TRUE(device_->sync_single_range_for_cpu(*addr, 500, 500, DmaDirection::from_device).ok());
    EXPECT_FALSE(device_->sync_single_range_for_cpu(*addr, 500, 501, DmaDirection::from_device).ok());
    EXPECT_FALSE(device_->sync_single_for_cpu(*addr, 1001, DmaDirection::from_device).ok());
    EXPECT_FALSE(device_->sync_single_for_device(*addr, 1000, DmaDirection::to_device).ok());
    ASSERT_TRUE(device_->unmap_single(*addr, 1000, DmaDirection::from_device).ok());
    auto stale = device_->sync_single_for_cpu(*addr, 1000, DmaDirection::from_device);
    ASSERT_FALSE(stale.ok());
    EXPECT_EQ(stale.error().code(), EINVAL);
    ScatterList unmapped;
    unmapped.add(heap.data(), 100);
    EXPECT_FALSE(device_->sync_sg_for_device(unmapped, DmaDirection::to_device).ok());
}

// Found by the concurrency test's seed 361673618221585379: pool memory mapped
// twice with two lengths has one device address for both, and a sync of the
// longer mapping found the shorter one and was refused as out of range.
TEST_F(IsolationTest, SyncFindsTheMappingLongEnoughAmongTwoAtOneAddress) {
    auto coherent = device_->alloc_coherent(4 * kPage);
    ASSERT_TRUE(coherent.ok());
    auto shorter = device_->map_single(coherent->cpu(), 99, DmaDirection::to_device);
    auto longer = device_->map_single(coherent->cpu(), 6823, DmaDirection::to_device);
    ASSERT_TRUE(shorter.ok() && longer.ok());
    ASSERT_EQ(*shorter, *longer) << "pool memory has one device address";
    EXPECT_TRUE(device_->sync_single_for_cpu(*longer, 6823, DmaDirection::to_device).ok());
    EXPECT_TRUE(device_->sync_single_for_device(*shorter, 99, DmaDirection::to_device).ok());
    // Still refused: longer than either live mapping.
    EXPECT_FALSE(device_->sync_single_for_cpu(*longer, 6824, DmaDirection::to_device).ok());
    ASSERT_TRUE(device_->unmap_single(*longer, 6823, DmaDirection::to_device).ok());
    // Only the 99-byte mapping is left: a 6823-byte sync is refused again.
    EXPECT_FALSE(device_->sync_single_for_cpu(*longer, 6823, DmaDirection::to_device).ok());
    EXPECT_TRUE(device_->sync_single_for_cpu(*shorter, 99, DmaDirection::to_device).ok());
    ASSERT_TRUE(device_->unmap_single(*shorter, 99, DmaDirection::to_device).ok());
    EXPECT_EQ(device_->live_mappings(), 0u);
}

TEST_F(IsolationTest, ManyThreadsMapAndUnmapWithoutLosingAMapping) {
    auto coherent = device_->alloc_coherent(std::size_t{1} << 20);
    ASSERT_TRUE(coherent.ok());
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            auto* base = coherent->as<std::byte>() + t * (std::size_t{1} << 18);
            std::vector<DmaAddr> mine;
            for (int round = 0; round < 200; ++round) {
                for (int i = 0; i < 32; ++i) {
                    auto addr = device_->map_single(base + i * 64, 64, DmaDirection::to_device);
                    if (!addr.ok()) ++failures;
                    else mine.push_back(*addr);
                }
                for (DmaAddr addr : mine) {
                    if (!device_->unmap_single(addr, 64, DmaDirection::to_device).ok()) ++failures;
                }
                mine.clear();
            }
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(device_->live_mappings(), 0U);
}

using StrictTest = StrictDmaTest;

TEST_F(StrictTest, PoolRegionsAreNotMappedAndEveryCoherentBufferHasItsOwnMapping) {
    auto a = device_->alloc_coherent(kPage);
    auto b = device_->alloc_coherent(3 * kPage);
    ASSERT_TRUE(a.ok() && b.ok()) << (a.ok() ? b.error() : a.error());
    EXPECT_EQ(context_->domain().mapping_count(), 2U) << "one IOMMU mapping per buffer, no region";
    EXPECT_EQ(device_view(a->dma(), kPage), a->cpu());
    EXPECT_EQ(device_view(b->dma(), 3 * kPage), b->cpu());
    EXPECT_FALSE(device_can_read(b->dma() + 3 * kPage, 1)) << "the buffer's unused tail is not mapped";
    const DmaAddr gone = a->dma();
    a->reset();
    EXPECT_FALSE(device_can_read(gone, 1)) << "freed: unmapped before the pages are reused";
    EXPECT_EQ(context_->domain().mapping_count(), 1U);
}

TEST_F(StrictTest, PoolMemoryIsMappedPerCallWithItsDirection) {
    auto buffer = device_->alloc_coherent(4 * kPage);
    ASSERT_TRUE(buffer.ok());
    auto* data = buffer->as<std::byte>() + kPage;
    auto addr = device_->map_single(data, 2 * kPage, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    EXPECT_NE(addr->value(), buffer->dma().value() + kPage) << "its own IOVA, not the buffer's";
    EXPECT_EQ(device_view(*addr, 2 * kPage, iommu::Access::read), data);
    EXPECT_FALSE(device_can_write(*addr, 1));
    ASSERT_TRUE(device_->unmap_single(*addr, 2 * kPage, DmaDirection::to_device).ok());
    EXPECT_FALSE(device_can_read(*addr, 1));
    EXPECT_FALSE(device_->unmap_single(*addr, 2 * kPage, DmaDirection::to_device).ok());
}

TEST_F(StrictTest, MemoryFromThePoolThatWasNeverMappedIsUnreachable) {
    void* page = context_->pages().alloc_pages(0);
    ASSERT_NE(page, nullptr);
    for (const auto& [iova, live] : backend_->live()) {
        const auto cpu = reinterpret_cast<std::uintptr_t>(live.cpu);
        const auto p = reinterpret_cast<std::uintptr_t>(page);
        EXPECT_FALSE(p >= cpu && p < cpu + live.length) << "no IOVA reaches an unmapped pool page";
    }
    context_->pages().free_pages(page);
}

TEST_F(StrictTest, ScatterListEntriesAreMappedExactly) {
    auto buffer = device_->alloc_coherent(8 * kPage);
    ASSERT_TRUE(buffer.ok());
    ScatterList list;
    list.add(buffer->as<std::byte>() + 4 * kPage, kPage);
    list.add(buffer->as<std::byte>(), 100);
    auto count = device_->map_sg(list, DmaDirection::from_device);
    ASSERT_TRUE(count.ok()) << count.error();
    for (const DmaSegment& segment : list.segments()) {
        EXPECT_TRUE(device_can_write(segment.addr, segment.length));
        EXPECT_FALSE(device_can_read(segment.addr, 1));
    }
    ASSERT_TRUE(device_->unmap_sg(list, DmaDirection::from_device).ok());
    EXPECT_EQ(device_->live_mappings(), 0U);
    EXPECT_EQ(context_->domain().mapping_count(), 1U) << "only the coherent buffer is left";
}

}  // namespace
}  // namespace dmakit::dma::testing
