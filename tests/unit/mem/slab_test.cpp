// Slab caches and kmalloc: randomized runs against a model, slab lists,
// cross-thread frees, size classes, and bad input.
#include "mem_test_support.hpp"

#include <dmakit/mem/kmalloc.hpp>
#include <dmakit/mem/slab.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <thread>

namespace dmakit::mem {
namespace {

using testing::CapturedLog;
using testing::expect_fully_coalesced;
using testing::make_buddy;
using testing::test_options;

struct SlabFixture : ::testing::Test {
    CapturedLog log;
    std::unique_ptr<BuddyAllocator> buddy = make_buddy(test_options(log.logger()));
};

std::unique_ptr<SlabCache> make_cache(BuddyAllocator& buddy, std::size_t size,
                                      SlabCacheOptions options = {}) {
    auto cache = SlabCache::create(buddy, "test-" + std::to_string(size), size, std::move(options));
    EXPECT_TRUE(cache.ok()) << (cache.ok() ? "" : dmakit::to_string(cache.error()));
    return cache.ok() ? std::move(cache).value() : nullptr;
}

class SlabRandomized : public ::testing::TestWithParam<std::size_t> {};

TEST_P(SlabRandomized, MatchesReferenceModel) {
    CapturedLog log;
    auto buddy = make_buddy(test_options(log.logger()));
    ASSERT_TRUE(buddy);
    const std::size_t size = GetParam();
    SlabCacheOptions options;
    options.align = 16;
    auto cache = make_cache(*buddy, size, options);
    ASSERT_TRUE(cache);
    std::mt19937_64 rng(size);
    std::map<std::uintptr_t, unsigned char> live;  // object -> stamp
    for (int step = 0; step < 6000; ++step) {
        if (live.empty() || rng() % 100 < 55) {
            auto* object = static_cast<unsigned char*>(cache->alloc());
            ASSERT_NE(object, nullptr);
            const auto address = reinterpret_cast<std::uintptr_t>(object);
            ASSERT_EQ(address % 16, 0u);
            auto next = live.lower_bound(address);
            if (next != live.end()) {
                ASSERT_GE(next->first, address + size);
            }
            if (next != live.begin()) {
                ASSERT_LE(std::prev(next)->first + size, address);
            }
            const auto stamp = static_cast<unsigned char>(step);
            std::memset(object, stamp, size);
            live[address] = stamp;
        } else {
            auto it = live.begin();
            std::advance(it, static_cast<long>(rng() % live.size()));
            auto* object = reinterpret_cast<unsigned char*>(it->first);
            ASSERT_EQ(object[0], it->second);
            ASSERT_EQ(object[size - 1], it->second);
            cache->free(object);
            live.erase(it);
        }
        if (step % 500 == 0) {
            const SlabInfo info = cache->info();
            ASSERT_EQ(info.active_objects, live.size()) << "step " << step;
            ASSERT_LE(info.active_objects, info.total_objects);
            ASSERT_EQ(info.pages, info.slabs * info.pages_per_slab);
        }
    }
    for (auto [address, stamp] : live) cache->free(reinterpret_cast<void*>(address));
    cache->drain_thread_cache();
    const SlabInfo info = cache->info();
    EXPECT_EQ(info.active_objects, 0u);
    EXPECT_LE(info.slabs, 2u) << "empty slabs beyond max_empty_slabs go back to the buddy allocator";
    EXPECT_EQ(cache->invalid_frees(), 0u);
    cache->shrink();
    EXPECT_EQ(cache->info().slabs, 0u);
    buddy->drain_thread_cache();
    EXPECT_EQ(buddy->stats().allocated_bytes, 0u);
    expect_fully_coalesced(*buddy);
}

INSTANTIATE_TEST_SUITE_P(ObjectSizes, SlabRandomized, ::testing::Values(8u, 64u, 200u, 2048u, 5000u));

TEST_F(SlabFixture, LayoutKeepsMetadataSmall) {
    auto cache = make_cache(*buddy, 64);
    ASSERT_TRUE(cache);
    EXPECT_EQ(cache->stride(), 64u);
    EXPECT_GE(order_bytes(cache->slab_order()), 32768u);
    void* object = cache->alloc();
    const SlabInfo info = cache->info();
    EXPECT_EQ(info.slabs, 1u);
    // Descriptor + bitmap + this thread's 128-entry array + the cache object.
    EXPECT_LT(info.metadata_bytes, 4096u);
    cache->free(object);
}

TEST_F(SlabFixture, ConstructorRunsOncePerObjectWhenASlabIsMade) {
    int constructed = 0;
    SlabCacheOptions options;
    options.ctor = [&](void* object) {
        ++constructed;
        std::memset(object, 0x5a, 32);
    };
    auto cache = make_cache(*buddy, 32, options);
    ASSERT_TRUE(cache);
    auto* object = static_cast<unsigned char*>(cache->alloc());
    EXPECT_EQ(constructed, static_cast<int>(cache->objects_per_slab()));
    EXPECT_EQ(object[31], 0x5a);
    cache->free(object);
    (void)cache->alloc();
    EXPECT_EQ(constructed, static_cast<int>(cache->objects_per_slab()));
}

TEST_F(SlabFixture, TwoThreadsWithCrossThreadFrees) {
    auto cache = make_cache(*buddy, 128);
    ASSERT_TRUE(cache);
    std::mutex mutex;
    std::vector<void*> handoff;
    auto worker = [&](std::uint64_t seed) {
        std::mt19937_64 rng(seed);
        std::vector<void*> mine;
        for (int step = 0; step < 40000; ++step) {
            const unsigned r = static_cast<unsigned>(rng() % 100);
            if (r < 45 || mine.empty()) {
                void* object = cache->alloc();
                ASSERT_NE(object, nullptr);
                std::memset(object, static_cast<int>(seed), 128);
                mine.push_back(object);
            } else if (r < 70) {
                std::lock_guard lock(mutex);
                handoff.push_back(mine.back());
                mine.pop_back();
            } else if (r < 85) {
                void* theirs = nullptr;
                {
                    std::lock_guard lock(mutex);
                    if (!handoff.empty()) {
                        theirs = handoff.back();
                        handoff.pop_back();
                    }
                }
                if (theirs != nullptr) cache->free(theirs);
            } else {
                auto* object = static_cast<unsigned char*>(mine.back());
                mine.pop_back();
                ASSERT_EQ(object[0], static_cast<unsigned char>(seed));
                ASSERT_EQ(object[127], static_cast<unsigned char>(seed));
                cache->free(object);
            }
        }
        for (void* object : mine) cache->free(object);
    };
    std::thread first(worker, 3);
    std::thread second(worker, 5);
    first.join();
    second.join();
    for (void* object : handoff) cache->free(object);
    cache->drain_thread_cache();
    EXPECT_EQ(cache->info().active_objects, 0u);
    EXPECT_EQ(cache->invalid_frees(), 0u);
    cache->shrink();
    buddy->drain_thread_cache();
    EXPECT_EQ(buddy->stats().allocated_bytes, 0u);
    expect_fully_coalesced(*buddy);
}

TEST_F(SlabFixture, BadInputIsRefused) {
    EXPECT_FALSE(SlabCache::create(*buddy, "zero", 0).ok());
    SlabCacheOptions bad_align;
    bad_align.align = 24;
    EXPECT_FALSE(SlabCache::create(*buddy, "align", 64, bad_align).ok());
    auto huge = SlabCache::create(*buddy, "huge", std::size_t{8} << 20);
    ASSERT_FALSE(huge.ok());
    EXPECT_NE(huge.error().message().find("page allocator"), std::string::npos);

    auto cache = make_cache(*buddy, 64);
    auto other = make_cache(*buddy, 96);
    ASSERT_TRUE(cache && other);
    auto* object = static_cast<std::byte*>(cache->alloc());
    void* foreign = other->alloc();
    int on_stack = 0;
    EXPECT_FALSE(cache->try_free(nullptr).ok());
    EXPECT_FALSE(cache->try_free(&on_stack).ok());
    auto interior = cache->try_free(object + 8);
    ASSERT_FALSE(interior.ok());
    EXPECT_NE(interior.error().message().find("start of an object"), std::string::npos);
    auto wrong_cache = cache->try_free(foreign);
    ASSERT_FALSE(wrong_cache.ok());
    EXPECT_NE(wrong_cache.error().message().find("test-96"), std::string::npos);
    void* page = buddy->alloc_pages(0);
    EXPECT_FALSE(cache->try_free(page).ok());
    // Every refusal above was counted and logged with the cache name, and so
    // is one through free(), which is not fatal.
    EXPECT_EQ(cache->invalid_frees(), 5u);
    cache->free(object + 8);
    EXPECT_EQ(cache->invalid_frees(), 6u);
    EXPECT_EQ(log.count_containing("slab cache 'test-64': free of"), 6u);
    EXPECT_EQ(log.count_containing("start of an object"), 2u);
    cache->free(object);
    other->free(foreign);
    buddy->free_pages(page);
}

TEST_F(SlabFixture, ExhaustionReturnsNullWithAReason) {
    CapturedLog small_log;
    BuddyOptions options = test_options(small_log.logger());
    options.max_managed = options.region_size;
    auto small = make_buddy(options);
    ASSERT_TRUE(small);
    auto cache = make_cache(*small, 2048);
    ASSERT_TRUE(cache);
    std::vector<void*> objects;
    while (void* object = cache->alloc()) objects.push_back(object);
    EXPECT_GT(objects.size(), 1500u);
    auto failed = cache->try_alloc();
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.error().code(), ENOMEM);
    EXPECT_NE(failed.error().message().find("test-2048"), std::string::npos);
    for (void* object : objects) cache->free(object);
}

TEST_F(SlabFixture, KmallocSizeClasses) {
    auto kmalloc = Kmalloc::create(*buddy);
    ASSERT_TRUE(kmalloc.ok());
    Kmalloc& km = **kmalloc;
    for (std::size_t size : {1u, 7u, 8u, 9u, 64u, 65u, 96u, 97u, 192u, 193u, 256u, 1000u, 4096u,
                             4097u, 8192u}) {
        void* object = km.kmalloc(size);
        ASSERT_NE(object, nullptr) << size;
        const std::size_t usable = km.ksize(object);
        EXPECT_GE(usable, size);
        EXPECT_EQ(km.cache_for(size).object_size(), usable);
        // Power-of-two classes are naturally aligned.
        const std::size_t natural = usable & (~usable + 1);
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(object) % std::min<std::size_t>(natural, 4096), 0u);
        std::memset(object, 0xee, size);
        km.kfree(object);
    }
    void* large = km.kmalloc(8193);
    ASSERT_NE(large, nullptr);
    EXPECT_EQ(km.ksize(large), 16384u);
    km.kfree(large);
    auto* zeroed = static_cast<unsigned char*>(km.kzalloc(300));
    ASSERT_NE(zeroed, nullptr);
    for (int i = 0; i < 300; ++i) ASSERT_EQ(zeroed[i], 0);
    km.kfree(zeroed);
    km.kfree(nullptr);

    EXPECT_EQ(km.kmalloc(0), nullptr);
    auto zero = km.try_kmalloc(0);
    ASSERT_FALSE(zero.ok());
    EXPECT_EQ(zero.error().code(), EINVAL);
    auto too_big = km.try_kmalloc(std::size_t{2} << 30);
    ASSERT_FALSE(too_big.ok());
    EXPECT_EQ(too_big.error().code(), EINVAL);
    int on_stack = 0;
    EXPECT_FALSE(km.try_kfree(&on_stack).ok());
    EXPECT_EQ(km.ksize(&on_stack), 0u);
}

TEST_F(SlabFixture, SlabinfoReportsPerCache) {
    auto kmalloc = Kmalloc::create(*buddy);
    ASSERT_TRUE(kmalloc.ok());
    Kmalloc& km = **kmalloc;
    std::vector<void*> objects;
    for (int i = 0; i < 100; ++i) objects.push_back(km.kmalloc(64));
    const auto infos = km.slabinfo();
    ASSERT_EQ(infos.size(), Kmalloc::kClassSizes.size());
    const SlabInfo& info = infos[Kmalloc::class_index(64)];
    EXPECT_EQ(info.name, "kmalloc-64");
    EXPECT_EQ(info.object_size, 64u);
    EXPECT_EQ(info.active_objects, 100u);
    EXPECT_EQ(info.slabs, 1u);
    EXPECT_EQ(info.total_objects, info.slabs * (info.pages_per_slab * kPageSize / 64));
    EXPECT_NE(km.format_slabinfo().find("kmalloc-64"), std::string::npos);
    for (void* object : objects) km.kfree(object);
    km.drain_thread_caches();
    EXPECT_EQ(km.slabinfo()[Kmalloc::class_index(64)].active_objects, 0u);
}

// The inline fast paths find a thread's cache through a table of 32 slots
// (fast_path.hpp); more caches than slots must share slots, and a lookup that
// misses goes the slow way, which must use the cache the thread already has
// (neither refill a non-empty one past its end nor spill a non-full one).
// 40 caches and the page allocator, used in turn, miss on nearly every call.
TEST_F(SlabFixture, CachesSharingAThreadCacheSlotKeepTheirObjectsApart) {
    constexpr int kCaches = 40;  // more than fast_path::kThreadCacheSlots
    static_assert(kCaches > static_cast<int>(fast_path::kThreadCacheSlots));
    std::vector<std::unique_ptr<SlabCache>> caches;
    for (int i = 0; i < kCaches; ++i) {
        caches.push_back(make_cache(*buddy, 64));
        ASSERT_TRUE(caches.back());
    }
    std::vector<std::vector<void*>> live(kCaches);
    std::vector<void*> pages;
    std::set<void*> seen;
    for (int round = 0; round < 300; ++round) {
        for (int i = 0; i < kCaches; ++i) {
            void* object = caches[i]->alloc();
            ASSERT_NE(object, nullptr);
            std::uint32_t index;
            ASSERT_NE(caches[i]->slab_of(object, &index), nullptr) << "cache " << i;
            ASSERT_TRUE(seen.insert(object).second) << "handed out twice";
            live[i].push_back(object);
        }
        void* page = buddy->alloc_pages(0);
        ASSERT_NE(page, nullptr);
        ASSERT_TRUE(seen.insert(page).second);
        pages.push_back(page);
        if (round % 3 == 2) {  // free some, in turn too, so frees miss as well
            for (int i = 0; i < kCaches; ++i) {
                seen.erase(live[i].front());
                caches[i]->free(live[i].front());
                live[i].erase(live[i].begin());
            }
            seen.erase(pages.front());
            buddy->free_pages(pages.front());
            pages.erase(pages.begin());
        }
    }
    for (int i = 0; i < kCaches; ++i) {
        for (void* object : live[i]) caches[i]->free(object);
        caches[i]->drain_thread_cache();
        EXPECT_EQ(caches[i]->invalid_frees(), 0u) << "cache " << i;
        EXPECT_EQ(caches[i]->info().active_objects, 0u) << "cache " << i;
    }
    for (void* page : pages) buddy->free_pages(page);
    buddy->drain_thread_cache();
    const BuddyStats stats = buddy->stats();
    EXPECT_EQ(stats.invalid_frees, 0u);
    EXPECT_EQ(stats.thread_cached_bytes, 0u);
    EXPECT_EQ(log.count_containing("warning"), 0u);
}

}  // namespace
}  // namespace dmakit::mem
