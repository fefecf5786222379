// The packet pool shared by several threads, each with its own
// PacketPoolCache, as RX and TX queues on different cores share one pool:
// bursts that refill and spill the caches, buffers freed on another thread
// than the one that took them (TX completion), refused double frees and
// stats readers. Also run under ThreadSanitizer (docs/testing.md).
#include "test_memory.hpp"

#include <concurrency.hpp>
#include <dmakit/drivers/net/packet_pool.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <span>
#include <vector>

namespace dmakit::net {
namespace {

using dmakit::testing::concurrency_seed;
using dmakit::testing::Handoff;
using dmakit::testing::kConcurrentThreads;
using dmakit::testing::run_concurrently;

constexpr std::size_t kBuffers = 512;

TEST(ConcurrentPacketPool, ThreadCachesAndCrossThreadFreesNeverShareABuffer) {
    const std::uint64_t seed = concurrency_seed();
    test::TestMemory mem(4 << 20);
    auto pool = test::make_pool(mem, kBuffers, 2176, {.cache_size = 16});
    Handoff<std::vector<PacketBuffer*>> handoff;
    std::atomic<int> torn{0}, failures{0};
    std::atomic<std::uint64_t> double_frees{0};
    run_concurrently(seed, kConcurrentThreads, [&](unsigned thread, std::mt19937_64& rng) {
        PacketPoolCache cache = pool->make_cache();
        const auto mark = static_cast<std::byte>(thread + 1);
        const auto stamped = [&](const PacketBuffer* b) {
            return b->length == thread + 1 && b->data()[0] == mark && b->data()[b->length - 1] == mark;
        };
        for (int step = 0; step < 2000; ++step) {
            std::vector<PacketBuffer*> burst(1 + rng() % 32);
            const bool through_cache = rng() % 4 != 0;
            const std::size_t n = through_cache ? cache.alloc_burst(burst) : pool->alloc_burst(burst);
            burst.resize(n);
            // A buffer someone else also holds would lose this stamp.
            for (PacketBuffer* b : burst) {
                b->length = thread + 1;
                std::memset(b->data(), static_cast<int>(mark), b->length);
            }
            for (PacketBuffer* b : burst) torn += stamped(b) ? 0 : 1;
            const unsigned r = static_cast<unsigned>(rng() % 100);
            if (r < 30) {
                handoff.put(std::move(burst));  // freed by whichever thread takes it
            } else {
                if (r >= 95) (void)pool->stats();  // a reader racing the counters
                if (!cache.free_burst(burst).ok()) ++failures;
            }
            if (auto theirs = handoff.take()) {
                // TX completion on another core: free buffers this thread did
                // not allocate, through this thread's cache or the pool.
                for (PacketBuffer* b : *theirs) {
                    if (b->length == 0 || b->data()[0] != b->data()[b->length - 1]) ++torn;
                }
                const bool ok = rng() % 2 == 0 ? cache.free_burst(*theirs).ok()
                                               : free_to_owners(*theirs).ok();
                if (!ok) ++failures;
            }
            if (rng() % 16 == 0) {
                PacketBuffer* one = nullptr;
                if (cache.alloc_burst(std::span(&one, 1)) == 1) {
                    if (!cache.free_burst(std::span(&one, 1)).ok()) ++failures;
                    // Now parked in this thread's cache: nobody else can
                    // hold it, so a second free is a double free.
                    ++double_frees;
                    if (cache.free_burst(std::span(&one, 1)).ok()) ++failures;
                }
            }
        }
    });
    for (auto& burst : handoff.take_all()) {
        if (!pool->free_burst(burst).ok()) ++failures;
    }
    EXPECT_EQ(torn.load(), 0) << "a buffer was handed to two owners";
    EXPECT_EQ(failures.load(), 0);
    EXPECT_GT(double_frees.load(), 0u);
    EXPECT_EQ(pool->stats().invalid_frees, double_frees.load());
    EXPECT_EQ(pool->in_use(), 0u);
    std::vector<PacketBuffer*> all(kBuffers);
    ASSERT_EQ(pool->alloc_burst(all), kBuffers) << "thread exit flushed every cache";
    std::sort(all.begin(), all.end());
    EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
    ASSERT_TRUE(pool->free_burst(all).ok());
}

}  // namespace
}  // namespace dmakit::net
