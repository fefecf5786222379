#include "dma_test_fixture.hpp"

#include <cerrno>
#include <random>
#include <vector>

namespace dmakit::dma::testing {
namespace {

using RegistrationTest = DmaTest;

TEST_F(RegistrationTest, ReferenceCountsFollowEveryMapAndUnmap) {
    std::vector<unsigned char> heap(std::size_t{8} << 20);
    std::mt19937 rng(7);
    struct Live { DmaAddr addr; std::size_t length; };
    std::vector<Live> live;
    for (int step = 0; step < 3000; ++step) {
        if (live.empty() || rng() % 2 == 0) {
            std::size_t offset = rng() % (heap.size() - 70000);
            std::size_t length = 1 + rng() % 65536;
            auto addr = device_->map_single(heap.data() + offset, length, DmaDirection::to_device);
            ASSERT_TRUE(addr.ok()) << addr.error().message();
            ASSERT_EQ(device_view(*addr, length), heap.data() + offset);
            live.push_back({*addr, length});
        } else {
            std::size_t i = rng() % live.size();
            ASSERT_TRUE(device_->unmap_single(live[i].addr, live[i].length, DmaDirection::to_device).ok());
            live.erase(live.begin() + static_cast<long>(i));
        }
        // Every live mapping stays reachable; nothing else is mapped.
        if (step % 100 == 0) {
            for (const auto& l : live) ASSERT_NE(device_view(l.addr, l.length), nullptr);
        }
    }
    for (const auto& l : live) ASSERT_TRUE(device_->unmap_single(l.addr, l.length, DmaDirection::to_device).ok());
    auto stats = context_->registrations().stats();
    EXPECT_EQ(stats.extents, 0U);
    EXPECT_EQ(stats.mapped_bytes, 0U);
    EXPECT_EQ(backend_maps(), backend_unmaps() + context_->domain().mapping_count());
    EXPECT_GT(stats.hits, stats.misses) << "2 MiB extents serve neighbouring buffers";
}

TEST_F(RegistrationTest, ScatterListOfForeignAndPoolMemoryMapsAllOrNothing) {
    std::vector<unsigned char> heap(64 * 1024);
    auto coherent = device_->alloc_coherent(8192);
    ASSERT_TRUE(coherent.ok());
    ScatterList list;
    list.add(coherent->cpu(), 4096);
    list.add(coherent->as<std::byte>() + 4096, 4096);  // continues the first: merged
    list.add(heap.data(), 1000);
    auto segments = device_->map_sg(list, DmaDirection::to_device);
    ASSERT_TRUE(segments.ok()) << segments.error().message();
    ASSERT_EQ(*segments, 2U);
    EXPECT_EQ(list.segments()[0], (DmaSegment{coherent->dma(), 8192}));
    EXPECT_EQ(list.segments()[1].length, 1000U);
    ASSERT_TRUE(device_->unmap_sg(list, DmaDirection::to_device).ok());
    EXPECT_EQ(context_->registrations().stats().extents, 0U);

    ScatterList bad;
    bad.add(heap.data(), 4096);
    bad.add(heap.data(), 0);  // invalid entry: nothing may stay mapped
    auto failed = device_->map_sg(bad, DmaDirection::to_device);
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(context_->registrations().stats().extents, 0U);
    EXPECT_FALSE(bad.mapped());
}

TEST_F(RegistrationTest, UnmappedNeighbourhoodFallsBackToSmallPageRounding) {
    // The kernel answers EFAULT when the 2 MiB-rounded span touches memory
    // that is not mapped; the cache then maps the 4 KiB-rounded span.
    std::vector<unsigned char> heap((1 << 20) + 8192);
    backend_->fail_map_after(0, Error(EFAULT, "Bad address"));
    auto addr = device_->map_single(heap.data() + 4096, 1 << 20, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok()) << addr.error().message();
    EXPECT_EQ(device_view(*addr, 1 << 20), heap.data() + 4096);
    auto last = backend_->operations().back();
    EXPECT_LT(last.length, std::uint64_t{2} << 20) << "mapped the 4 KiB-rounded span";
    ASSERT_TRUE(device_->unmap_single(*addr, 1 << 20, DmaDirection::to_device).ok());
}

}  // namespace
}  // namespace dmakit::dma::testing
