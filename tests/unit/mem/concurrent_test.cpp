// The page allocator, slab caches and kmalloc used by several threads at
// once: per-thread caches, frees on a thread other than the allocating one,
// refused double frees and stats readers, all racing. Each block is stamped
// with its owner's mark, so a block handed to two owners shows up as a torn
// stamp. Also run under ThreadSanitizer (docs/testing.md).
#include "mem_test_support.hpp"

#include <concurrency.hpp>
#include <dmakit/mem/kmalloc.hpp>
#include <dmakit/mem/slab.hpp>

#include <atomic>
#include <cstring>
#include <random>
#include <vector>

namespace dmakit::mem {
namespace {

using dmakit::testing::concurrency_seed;
using dmakit::testing::Handoff;
using dmakit::testing::kConcurrentThreads;
using dmakit::testing::run_concurrently;
using testing::CapturedLog;

constexpr int kSteps = 3000;

struct Stamped {
    void* block;
    std::size_t bytes;
    unsigned char mark;
};

void stamp(const Stamped& item) { std::memset(item.block, item.mark, item.bytes); }

// First and last byte still carry the mark (nobody else got the block).
bool stamp_intact(const Stamped& item) {
    const auto* bytes = static_cast<const unsigned char*>(item.block);
    return bytes[0] == item.mark && bytes[item.bytes - 1] == item.mark;
}

// The steps every test below shares. Hands this thread's newest block to
// another thread.
void give_away(std::vector<Stamped>& mine, Handoff<Stamped>& handoff) {
    handoff.put(mine.back());
    mine.pop_back();
}

// Frees a block another thread handed over, if any, checking nobody else wrote it.
template <typename Free>
void free_theirs(Handoff<Stamped>& handoff, std::atomic<int>& torn, Free free) {
    if (auto theirs = handoff.take()) {
        if (!stamp_intact(*theirs)) ++torn;
        free(theirs->block);
    }
}

// Takes this thread's newest block back, checked; the caller frees it.
Stamped take_mine(std::vector<Stamped>& mine, std::atomic<int>& torn) {
    const Stamped item = mine.back();
    mine.pop_back();
    if (!stamp_intact(item)) ++torn;
    return item;
}

TEST(ConcurrentBuddy, PerThreadCachesCrossThreadFreesAndStatsReaders) {
    const std::uint64_t seed = concurrency_seed();
    CapturedLog log;
    BuddyOptions options = testing::test_options(log.logger());
    options.page_cache_high = 16;  // small caches: refills and spills happen often
    options.page_cache_batch = 4;
    auto buddy = testing::make_buddy(options);
    ASSERT_TRUE(buddy);
    Handoff<Stamped> handoff;
    std::atomic<int> torn{0}, failed{0};
    run_concurrently(seed, kConcurrentThreads, [&](unsigned thread, std::mt19937_64& rng) {
        std::vector<Stamped> mine;
        for (int step = 0; step < kSteps; ++step) {
            const unsigned r = rng() % 100;
            if (r < 45 || mine.empty()) {
                const unsigned order = rng() % 4 == 0 ? static_cast<unsigned>(rng() % 4) : 0;
                void* block = buddy->alloc_pages(order);
                if (block == nullptr) {
                    ++failed;
                    continue;
                }
                if (buddy->block_size(block) != order_bytes(order)) ++failed;
                mine.push_back({block, order_bytes(order), static_cast<unsigned char>(thread + 1)});
                stamp(mine.back());
            } else if (r < 65) {
                give_away(mine, handoff);
            } else if (r < 80) {
                free_theirs(handoff, torn, [&](void* block) { buddy->free_pages(block); });
            } else if (r < 97) {
                const Stamped item = take_mine(mine, torn);
                buddy->free_pages(item.block);
            } else if (r < 98) {
                (void)buddy->stats();
            } else if (r < 99) {
                (void)buddy->buddyinfo();
            } else {
                (void)buddy->shrink();
            }
        }
        for (const Stamped& item : mine) {
            if (!stamp_intact(item)) ++torn;
            buddy->free_pages(item.block);
        }
    });
    for (const Stamped& item : handoff.take_all()) buddy->free_pages(item.block);
    buddy->drain_thread_cache();
    EXPECT_EQ(torn.load(), 0) << "a block was handed to two owners";
    EXPECT_EQ(failed.load(), 0);
    const BuddyStats stats = buddy->stats();
    EXPECT_EQ(stats.thread_cached_bytes, 0u) << "thread exit flushes the workers' caches";
    EXPECT_EQ(stats.allocated_bytes, 0u);
    EXPECT_EQ(stats.invalid_frees, 0u);
    testing::expect_fully_coalesced(*buddy);
}

TEST(ConcurrentBuddy, DoubleFreesRacingOtherThreadsAreAllRefused) {
    const std::uint64_t seed = concurrency_seed();
    CapturedLog log;
    auto buddy = testing::make_buddy(testing::test_options(log.logger()));
    ASSERT_TRUE(buddy);
    std::atomic<std::size_t> attempts{0}, refused{0};
    run_concurrently(seed, kConcurrentThreads, [&](unsigned, std::mt19937_64& rng) {
        std::vector<void*> held;
        for (int step = 0; step < kSteps; ++step) {
            if (held.empty() || rng() % 2 == 0) {
                if (void* page = buddy->alloc_pages(0)) held.push_back(page);
                continue;
            }
            void* page = held.back();
            held.pop_back();
            buddy->free_pages(page);
            // A freed page stays in this thread's page cache (a full cache
            // spills older pages, not this one), so no other thread can own
            // it yet: the second free must be refused.
            if (rng() % 4 == 0) {
                ++attempts;
                if (!buddy->try_free_pages(page).ok()) ++refused;
            }
        }
        for (void* page : held) buddy->free_pages(page);
    });
    buddy->drain_thread_cache();
    EXPECT_GT(attempts.load(), 0u);
    EXPECT_EQ(refused.load(), attempts.load());
    EXPECT_EQ(buddy->stats().allocated_bytes, 0u);
    testing::expect_fully_coalesced(*buddy);
}

TEST(ConcurrentSlab, CrossThreadFreesAndRefusedDoubleFrees) {
    const std::uint64_t seed = concurrency_seed();
    CapturedLog log;
    auto buddy = testing::make_buddy(testing::test_options(log.logger()));
    ASSERT_TRUE(buddy);
    SlabCacheOptions options;
    options.thread_cache_size = 16;  // refills and spills under the cache lock often
    options.max_empty_slabs = 0;     // and slabs go back to the buddy allocator
    auto created = SlabCache::create(*buddy, "concurrent", 192, options);
    ASSERT_TRUE(created.ok()) << created.error();
    SlabCache& cache = **created;
    Handoff<Stamped> handoff;
    std::atomic<int> torn{0}, failed{0};
    std::atomic<std::size_t> double_frees{0};
    run_concurrently(seed, kConcurrentThreads, [&](unsigned thread, std::mt19937_64& rng) {
        std::vector<Stamped> mine;
        for (int step = 0; step < kSteps; ++step) {
            const unsigned r = rng() % 100;
            if (r < 45 || mine.empty()) {
                void* object = cache.alloc();
                if (object == nullptr) {
                    ++failed;
                    continue;
                }
                mine.push_back({object, 192, static_cast<unsigned char>(thread + 1)});
                stamp(mine.back());
            } else if (r < 65) {
                give_away(mine, handoff);
            } else if (r < 80) {
                free_theirs(handoff, torn, [&](void* block) { cache.free(block); });
            } else if (r < 98) {
                const Stamped item = take_mine(mine, torn);
                cache.free(item.block);
                // The free check bytes: the object sits in this thread's
                // cache, so a second free must be refused whatever the other
                // threads do meanwhile.
                if (rng() % 8 == 0) {
                    ++double_frees;
                    if (cache.try_free(item.block).ok()) ++failed;
                }
            } else if (r < 99) {
                (void)cache.info();
            } else {
                cache.drain_thread_cache();
            }
        }
        for (const Stamped& item : mine) cache.free(item.block);
    });
    for (const Stamped& item : handoff.take_all()) cache.free(item.block);
    cache.drain_thread_cache();
    EXPECT_EQ(torn.load(), 0) << "an object was handed to two owners";
    EXPECT_EQ(failed.load(), 0);
    EXPECT_GT(double_frees.load(), 0u);
    EXPECT_EQ(cache.invalid_frees(), double_frees.load());
    EXPECT_EQ(cache.info().active_objects, 0u);
    created->reset();
    buddy->drain_thread_cache();
    EXPECT_EQ(buddy->stats().allocated_bytes, 0u);
    testing::expect_fully_coalesced(*buddy);
}

TEST(ConcurrentKmalloc, EverySizeClassAndPageBlocksFreedAnywhere) {
    const std::uint64_t seed = concurrency_seed();
    CapturedLog log;
    auto buddy = testing::make_buddy(testing::test_options(log.logger()));
    ASSERT_TRUE(buddy);
    auto created = Kmalloc::create(*buddy);
    ASSERT_TRUE(created.ok()) << created.error();
    Kmalloc& heap = **created;
    Handoff<Stamped> handoff;
    std::atomic<int> torn{0}, failed{0};
    run_concurrently(seed, kConcurrentThreads, [&](unsigned thread, std::mt19937_64& rng) {
        std::vector<Stamped> mine;
        for (int step = 0; step < kSteps; ++step) {
            const unsigned r = rng() % 100;
            if (r < 45 || mine.empty()) {
                // Mostly slab classes, sometimes past kMaxSlabSize (page blocks).
                const std::size_t size = rng() % 16 == 0 ? Kmalloc::kMaxSlabSize + 1 + rng() % 12000
                                                         : 1 + rng() % Kmalloc::kMaxSlabSize;
                void* object = heap.kmalloc(size);
                if (object == nullptr || heap.ksize(object) < size) {
                    ++failed;
                    if (object != nullptr) heap.kfree(object);
                    continue;
                }
                mine.push_back({object, size, static_cast<unsigned char>(thread + 1)});
                stamp(mine.back());
            } else if (r < 65) {
                give_away(mine, handoff);
            } else if (r < 80) {
                free_theirs(handoff, torn, [&](void* block) { heap.kfree(block); });
            } else if (r < 99) {
                const Stamped item = take_mine(mine, torn);
                heap.kfree(item.block);
            } else {
                (void)heap.slabinfo();
            }
        }
        for (const Stamped& item : mine) heap.kfree(item.block);
    });
    for (const Stamped& item : handoff.take_all()) heap.kfree(item.block);
    heap.drain_thread_caches();
    EXPECT_EQ(torn.load(), 0) << "an allocation was handed to two owners";
    EXPECT_EQ(failed.load(), 0);
    for (const SlabInfo& info : heap.slabinfo()) {
        EXPECT_EQ(info.active_objects, 0u) << info.name;
    }
    created->reset();
    buddy->drain_thread_cache();
    EXPECT_EQ(buddy->stats().allocated_bytes, 0u);
    EXPECT_EQ(buddy->stats().invalid_frees, 0u);
}

}  // namespace
}  // namespace dmakit::mem
