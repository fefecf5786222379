#include "dma_test_fixture.hpp"

#include <cerrno>
#include <random>
#include <vector>

namespace dmakit::dma::testing {
namespace {

using RegistrationTest = DmaTest;

TEST_F(RegistrationTest, ExactMappingsFollowEveryMapAndUnmap) {
    std::vector<unsigned char> heap(std::size_t{8} << 20);
    std::mt19937 rng(7);
    struct Live { DmaAddr addr; std::size_t length; };
    std::vector<Live> live;
    for (int step = 0; step < 3000; ++step) {
        if (live.empty() || rng() % 2 == 0) {
            std::size_t offset = rng() % (heap.size() - 70000);
            std::size_t length = 1 + rng() % 65536;
            auto addr = device_->map_single(heap.data() + offset, length, DmaDirection::to_device);
            ASSERT_TRUE(addr.ok()) << addr.error();
            ASSERT_EQ(device_view(*addr, length, iommu::Access::read), heap.data() + offset);
            ASSERT_FALSE(device_can_write(*addr, 1)) << "to_device: the device may only read";
            live.push_back({*addr, length});
        } else {
            std::size_t i = rng() % live.size();
            ASSERT_TRUE(device_->unmap_single(live[i].addr, live[i].length, DmaDirection::to_device).ok());
            live.erase(live.begin() + static_cast<long>(i));
        }
        // Every live mapping stays reachable; nothing else is mapped.
        if (step % 100 == 0) {
            for (const auto& l : live) ASSERT_TRUE(device_can_read(l.addr, l.length));
        }
    }
    for (const auto& l : live) ASSERT_TRUE(device_->unmap_single(l.addr, l.length, DmaDirection::to_device).ok());
    EXPECT_EQ(device_->live_mappings(), 0U);
    EXPECT_EQ(backend_maps(), backend_unmaps() + context_->domain().mapping_count())
        << "every exact mapping was torn down";
    EXPECT_EQ(context_->registrations().stats().hits, 0U) << "nothing registered, nothing cached";
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
    ASSERT_TRUE(segments.ok()) << segments.error();
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

TEST_F(RegistrationTest, EndingARegistrationInvalidatesItsTranslationsAtOnce) {
    std::vector<unsigned char> heap(std::size_t{1} << 20);
    auto registration = context_->registrations().register_memory(heap.data(), heap.size(),
                                                                  device_->mask());
    ASSERT_TRUE(registration.ok()) << registration.error();
    auto inside = device_->map_single(heap.data() + 4096, 4096, DmaDirection::to_device);
    ASSERT_TRUE(inside.ok());
    EXPECT_EQ(context_->registrations().stats().hits, 1U);
    registration->reset();
    // A streaming mapping inside keeps its pages reachable until its unmap ...
    EXPECT_TRUE(device_can_read(*inside, 4096));
    // ... but no new map can hit the ended registration.
    const std::size_t maps = backend_maps();
    auto later = device_->map_single(heap.data() + 8192, 4096, DmaDirection::to_device);
    ASSERT_TRUE(later.ok());
    EXPECT_EQ(backend_maps(), maps + 1) << "mapped exactly, not served from the ended registration";
    EXPECT_EQ(context_->registrations().stats().hits, 1U);
    ASSERT_TRUE(device_->unmap_single(*inside, 4096, DmaDirection::to_device).ok());
    EXPECT_FALSE(device_can_read(*inside, 1)) << "the last user gone, the registration's pages are unmapped";
    EXPECT_EQ(context_->registrations().stats().extents, 0U);
    ASSERT_TRUE(device_->unmap_single(*later, 4096, DmaDirection::to_device).ok());
}

TEST_F(RegistrationTest, RegistrationsMapExactlyTheirPagesAndRefuseOverlap) {
    std::vector<unsigned char> heap(std::size_t{64} << 10);
    auto* start = heap.data() + 100;
    auto registration = context_->registrations().register_memory(start, 10000, device_->mask());
    ASSERT_TRUE(registration.ok()) << registration.error();
    const auto& last = backend_->operations().back();
    const auto first_page = reinterpret_cast<std::uintptr_t>(start) & ~std::uintptr_t{4095};
    const auto end_page = (reinterpret_cast<std::uintptr_t>(start) + 10000 + 4095) & ~std::uintptr_t{4095};
    EXPECT_EQ(last.length, end_page - first_page) << "the 4 KiB pages covering [start, start + 10000)";
    EXPECT_EQ(last.cpu, reinterpret_cast<const void*>(first_page));
    auto overlap = context_->registrations().register_memory(start + 5000, 100, device_->mask());
    ASSERT_FALSE(overlap.ok());
    EXPECT_EQ(overlap.error().code(), EEXIST);
    auto nothing = context_->registrations().register_memory(nullptr, 100, device_->mask());
    ASSERT_FALSE(nothing.ok());
    EXPECT_EQ(nothing.error().code(), EINVAL);
}

}  // namespace
}  // namespace dmakit::dma::testing
