#include "test_memory.hpp"

#include <dmakit/drivers/net/packet_pool.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

namespace dmakit::net {
namespace {

TEST(PacketPool, BurstAllocFreeAndLeakCount) {
    test::TestMemory mem(1 << 20);
    auto pool = test::make_pool(mem, 64, 2176, {.headroom = 128});
    std::vector<PacketBuffer*> a(40);
    EXPECT_EQ(pool->alloc_burst(a), 40u);
    EXPECT_EQ(pool->in_use(), 40u);
    std::vector<PacketBuffer*> b(100);
    EXPECT_EQ(pool->alloc_burst(b), 24u);  // only what is left
    EXPECT_EQ(pool->in_use(), 64u);
    EXPECT_EQ(pool->stats().alloc_failures, 1u);
    ASSERT_TRUE(pool->free_burst(a).ok());
    ASSERT_TRUE(pool->free_burst(std::span(b).first(24)).ok());
    EXPECT_EQ(pool->in_use(), 0u);
}

TEST(PacketPool, BuffersAreDistinctAndLaidOutAsDeclared) {
    test::TestMemory mem(1 << 20);
    auto pool = test::make_pool(mem, 32, 2176, {.headroom = 64});
    std::vector<PacketBuffer*> all(32);
    ASSERT_EQ(pool->alloc_burst(all), 32u);
    std::set<std::byte*> bases;
    for (auto* b : all) {
        EXPECT_EQ(b->pool, pool.get());
        EXPECT_EQ(b->data(), b->base + 64);
        EXPECT_EQ(b->data_dma(), mem.dma_of(b->base) + 64);
        EXPECT_EQ(b->room(), 2176u - 64u);
        EXPECT_EQ(b->length, 0u);
        bases.insert(b->base);
    }
    EXPECT_EQ(bases.size(), 32u);
    // The metadata is out of band: no descriptor lies inside buffer memory.
    for (auto* b : all) {
        for (auto* owner : all) {
            const auto* p = reinterpret_cast<const std::byte*>(b);
            EXPECT_FALSE(p >= owner->base && p < owner->base + owner->capacity);
        }
    }
    ASSERT_TRUE(pool->free_burst(all).ok());
}

TEST(PacketPool, DoubleFreeAndForeignBuffersAreRefused) {
    test::TestMemory mem(1 << 20);
    auto pool = test::make_pool(mem, 8);
    auto other = test::make_pool(mem, 8);
    PacketBuffer* b[2];
    ASSERT_EQ(pool->alloc_burst(b), 2u);
    ASSERT_TRUE(pool->free_burst(std::span(b, 1)).ok());
    const Status again = pool->free_burst(std::span(b, 1));  // double free
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code(), EINVAL);
    EXPECT_EQ(pool->in_use(), 1u);

    PacketBuffer* foreign[1];
    ASSERT_EQ(other->alloc_burst(foreign), 1u);
    EXPECT_FALSE(pool->free_burst(foreign).ok());
    PacketBuffer* null[1] = {nullptr};
    EXPECT_FALSE(pool->free_burst(null).ok());
    EXPECT_EQ(pool->stats().invalid_frees, 3u);
    EXPECT_EQ(pool->in_use(), 1u);

    // A mixed burst frees the good ones and reports the bad.
    PacketBuffer* mixed[2] = {b[1], b[0]};
    EXPECT_FALSE(pool->free_burst(mixed).ok());
    EXPECT_EQ(pool->in_use(), 0u);
    ASSERT_TRUE(other->free_burst(foreign).ok());
}

TEST(PacketPool, CacheServesBurstsAndReturnsEverythingOnDestruction) {
    test::TestMemory mem(1 << 20);
    auto pool = test::make_pool(mem, 128, 2176, {.cache_size = 32});
    {
        PacketPoolCache cache = pool->make_cache();
        std::vector<PacketBuffer*> burst(20);
        for (int round = 0; round < 1000; ++round) {
            ASSERT_EQ(cache.alloc_burst(burst), 20u);
            EXPECT_EQ(pool->in_use(), 20u);
            ASSERT_TRUE(cache.free_burst(burst).ok());
        }
        EXPECT_EQ(pool->in_use(), 0u);
        EXPECT_GT(cache.cached(), 0u);
        EXPECT_LE(cache.cached(), 32u);
        // Double free through the cache is caught too.
        ASSERT_EQ(cache.alloc_burst(std::span(burst).first(1)), 1u);
        ASSERT_TRUE(cache.free_burst(std::span(burst).first(1)).ok());
        EXPECT_FALSE(cache.free_burst(std::span(burst).first(1)).ok());
        // A burst larger than the cache still works.
        std::vector<PacketBuffer*> big(100);
        ASSERT_EQ(cache.alloc_burst(big), 100u);
        ASSERT_TRUE(cache.free_burst(big).ok());
    }
    // Cache gone: every buffer is allocatable from the pool itself, each once,
    // after all the spills to and refills from the shared stack above.
    std::vector<PacketBuffer*> all(128);
    EXPECT_EQ(pool->alloc_burst(all), 128u);
    EXPECT_EQ(std::set<PacketBuffer*>(all.begin(), all.end()).size(), 128u);
    ASSERT_TRUE(pool->free_burst(all).ok());
}

TEST(PacketPool, ThreadsWithOwnCachesNeverShareABuffer) {
    test::TestMemory mem(4 << 20);
    auto pool = test::make_pool(mem, 1024, 2176, {.cache_size = 64});
    std::atomic<bool> duplicate{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            PacketPoolCache cache = pool->make_cache();
            std::vector<PacketBuffer*> burst(32);
            for (int i = 0; i < 5000; ++i) {
                const std::size_t n = cache.alloc_burst(burst);
                // Stamp each buffer; someone else holding it would overwrite the stamp.
                for (std::size_t k = 0; k < n; ++k) burst[k]->base[0] = static_cast<std::byte>(t);
                for (std::size_t k = 0; k < n; ++k) {
                    if (burst[k]->base[0] != static_cast<std::byte>(t)) duplicate = true;
                }
                if (!cache.free_burst(std::span(burst).first(n)).ok()) duplicate = true;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_FALSE(duplicate.load());
    EXPECT_EQ(pool->in_use(), 0u);
    EXPECT_EQ(pool->stats().invalid_frees, 0u);
    std::vector<PacketBuffer*> all(1024);
    EXPECT_EQ(pool->alloc_burst(all), 1024u);
    std::sort(all.begin(), all.end());
    EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
    ASSERT_TRUE(pool->free_burst(all).ok());
}

TEST(PacketPool, FreeToOwnersSplitsByPool) {
    test::TestMemory mem(1 << 20);
    auto a = test::make_pool(mem, 8);
    auto b = test::make_pool(mem, 8);
    PacketBuffer* x[3];
    PacketBuffer* y[3];
    ASSERT_EQ(a->alloc_burst(x), 3u);
    ASSERT_EQ(b->alloc_burst(y), 3u);
    PacketBuffer* mixed[6] = {x[0], x[1], y[0], x[2], y[1], y[2]};
    ASSERT_TRUE(free_to_owners(mixed).ok());
    EXPECT_EQ(a->in_use(), 0u);
    EXPECT_EQ(b->in_use(), 0u);
    EXPECT_FALSE(free_to_owners(std::span(mixed, 1)).ok());  // already free
}

TEST(PacketPool, CreateRejectsBuffersNoLargerThanHeadroom) {
    test::TestMemory mem(1 << 20);
    auto r = PacketPool::create(std::make_unique<test::ArenaBacking>(mem, 4, 128), {.headroom = 128});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_FALSE(PacketPool::create(nullptr).ok());
}

TEST(PacketPool, LeakAtDestructionIsReported) {
    test::TestMemory mem(1 << 20);
    std::string report;
    Logger logger(LogLevel::debug, [&](LogLevel, std::string_view m) { report = m; });
    {
        auto pool = test::make_pool(mem, 4, 2176, {.logger = &logger});
        PacketBuffer* b[1];
        ASSERT_EQ(pool->alloc_burst(b), 1u);
    }
    EXPECT_NE(report.find("1 buffers still out"), std::string::npos) << report;
}

}  // namespace
}  // namespace dmakit::net
