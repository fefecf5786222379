// Buddy page allocator: randomized runs against a reference model, the page
// cache, growth/shrink, the region listener, and bad input.
#include "mem_test_support.hpp"

#include <dmakit/mem/buddy.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <condition_variable>
#include <thread>

namespace dmakit::mem {
namespace {

using testing::CapturedLog;
using testing::expect_fully_coalesced;
using testing::make_buddy;
using testing::test_options;

// Reference model: live blocks by address, each stamped with a byte pattern.
class BlockModel {
public:
    void add(void* block, unsigned order) {
        auto address = reinterpret_cast<std::uintptr_t>(block);
        const std::size_t bytes = order_bytes(order);
        auto next = blocks_.lower_bound(address);
        if (next != blocks_.end()) {
            ASSERT_GE(next->first, address + bytes) << "new block overlaps the next live block";
        }
        if (next != blocks_.begin()) {
            auto prev = std::prev(next);
            ASSERT_LE(prev->first + order_bytes(prev->second.order), address)
                << "new block overlaps the previous live block";
        }
        const auto stamp = static_cast<unsigned char>(++stamps_);
        auto* bytes_ptr = static_cast<unsigned char*>(block);
        bytes_ptr[0] = stamp;
        bytes_ptr[bytes - 1] = stamp;
        blocks_[address] = Entry{order, stamp};
        live_bytes_ += bytes;
    }

    // Removes a random block, checking its stamp survived.
    std::pair<void*, unsigned> take(std::mt19937_64& rng) {
        auto it = blocks_.begin();
        std::advance(it, static_cast<long>(rng() % blocks_.size()));
        auto* block = reinterpret_cast<unsigned char*>(it->first);
        const Entry entry = it->second;
        EXPECT_EQ(block[0], entry.stamp);
        EXPECT_EQ(block[order_bytes(entry.order) - 1], entry.stamp);
        blocks_.erase(it);
        live_bytes_ -= order_bytes(entry.order);
        return {block, entry.order};
    }

    [[nodiscard]] bool empty() const { return blocks_.empty(); }
    [[nodiscard]] std::size_t size() const { return blocks_.size(); }
    [[nodiscard]] std::size_t live_bytes() const { return live_bytes_; }

private:
    struct Entry {
        unsigned order;
        unsigned char stamp;
    };
    std::map<std::uintptr_t, Entry> blocks_;
    std::size_t live_bytes_ = 0;
    unsigned stamps_ = 0;
};

void check_block(const BuddyAllocator& buddy, void* block, unsigned order) {
    ASSERT_NE(block, nullptr);
    const auto address = reinterpret_cast<std::uintptr_t>(block);
    EXPECT_EQ(address % order_bytes(order), 0u) << "order-" << order << " block misaligned";
    const Region* region = buddy.region_of(block);
    ASSERT_NE(region, nullptr);
    EXPECT_TRUE(region->contains(static_cast<std::byte*>(block) + order_bytes(order) - 1));
    EXPECT_EQ(buddy.block_size(block), order_bytes(order));
}

class BuddyRandomized : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(BuddyRandomized, MatchesReferenceModelAndCoalescesFully) {
    CapturedLog log;
    auto buddy = make_buddy(test_options(log.logger()));
    ASSERT_TRUE(buddy);
    std::mt19937_64 rng(GetParam());
    BlockModel model;
    for (int step = 0; step < 3000; ++step) {
        const bool allocate = model.empty() || rng() % 100 < 55;
        if (allocate) {
            // Mostly small orders, sometimes up to 11 (8 MiB, past the 4 MiB region size).
            const unsigned order = rng() % 4 == 0 ? static_cast<unsigned>(rng() % 12)
                                                  : static_cast<unsigned>(rng() % 3);
            void* block = buddy->alloc_pages(order);
            check_block(*buddy, block, order);
            model.add(block, order);
        } else {
            auto [block, order] = model.take(rng);
            buddy->free_pages(block);
        }
        const BuddyStats stats = buddy->stats();
        ASSERT_EQ(stats.allocated_bytes, model.live_bytes()) << "step " << step;
        ASSERT_EQ(stats.free_bytes + stats.thread_cached_bytes + stats.allocated_bytes,
                  stats.managed_bytes);
    }
    while (!model.empty()) buddy->free_pages(model.take(rng).first);
    buddy->drain_thread_cache();
    const BuddyStats stats = buddy->stats();
    EXPECT_EQ(stats.allocated_bytes, 0u);
    EXPECT_EQ(stats.free_bytes, stats.managed_bytes);
    EXPECT_EQ(stats.invalid_frees, 0u);
    EXPECT_GT(stats.regions, 1u);
    expect_fully_coalesced(*buddy);
    EXPECT_EQ(buddy->shrink(), stats.managed_bytes);
    EXPECT_EQ(buddy->stats().managed_bytes, 0u);
    EXPECT_TRUE(log.lines().empty());
}

INSTANTIATE_TEST_SUITE_P(Seeds, BuddyRandomized, ::testing::Values(1u, 42u, 20240601u));

TEST(Buddy, PageCacheServesOrderZeroAndFlushes) {
    CapturedLog log;
    auto buddy = make_buddy(test_options(log.logger()));
    ASSERT_TRUE(buddy);
    void* a = buddy->alloc_pages(0);
    ASSERT_NE(a, nullptr);
    // The refill parked a batch of pages in this thread's cache.
    EXPECT_EQ(buddy->stats().thread_cached_bytes, buddy->options().page_cache_batch * kPageSize);
    EXPECT_EQ(buddy->stats().allocated_bytes, kPageSize);
    buddy->free_pages(a);
    EXPECT_EQ(buddy->alloc_pages(0), a) << "the cache is LIFO: the hot page comes back";
    buddy->free_pages(a);
    buddy->drain_thread_cache();
    EXPECT_EQ(buddy->stats().thread_cached_bytes, 0u);
    expect_fully_coalesced(*buddy);
}

TEST(Buddy, PageCacheSpillsWhenFull) {
    CapturedLog log;
    auto buddy = make_buddy(test_options(log.logger()));
    ASSERT_TRUE(buddy);
    std::vector<void*> pages;
    for (int i = 0; i < 300; ++i) pages.push_back(buddy->alloc_pages(0));
    for (void* page : pages) buddy->free_pages(page);
    EXPECT_LE(buddy->stats().thread_cached_bytes, buddy->options().page_cache_high * kPageSize);
    buddy->drain_thread_cache();
    expect_fully_coalesced(*buddy);
}

TEST(Buddy, TwoThreadsWithCrossThreadFrees) {
    CapturedLog log;
    auto buddy = make_buddy(test_options(log.logger()));
    ASSERT_TRUE(buddy);
    std::mutex handoff_mutex;
    std::vector<std::pair<void*, unsigned>> handoff;  // allocated on one thread, freed on the other
    auto worker = [&](std::uint64_t seed) {
        std::mt19937_64 rng(seed);
        std::vector<std::pair<void*, unsigned>> mine;
        for (int step = 0; step < 20000; ++step) {
            const unsigned r = static_cast<unsigned>(rng() % 100);
            if (r < 45 || mine.empty()) {
                const unsigned order = rng() % 8 == 0 ? static_cast<unsigned>(rng() % 6) : 0u;
                void* block = buddy->alloc_pages(order);
                ASSERT_NE(block, nullptr);
                ASSERT_EQ(reinterpret_cast<std::uintptr_t>(block) % order_bytes(order), 0u);
                std::memset(block, static_cast<int>(seed), order_bytes(order));
                mine.emplace_back(block, order);
            } else if (r < 70) {
                std::lock_guard lock(handoff_mutex);
                handoff.push_back(mine.back());
                mine.pop_back();
            } else if (r < 85) {
                std::pair<void*, unsigned> theirs{nullptr, 0};
                {
                    std::lock_guard lock(handoff_mutex);
                    if (!handoff.empty()) {
                        theirs = handoff.back();
                        handoff.pop_back();
                    }
                }
                if (theirs.first != nullptr) buddy->free_pages(theirs.first);
            } else {
                auto [block, order] = mine.back();
                mine.pop_back();
                const auto* bytes = static_cast<unsigned char*>(block);
                ASSERT_EQ(bytes[0], static_cast<unsigned char>(seed));
                ASSERT_EQ(bytes[order_bytes(order) - 1], static_cast<unsigned char>(seed));
                buddy->free_pages(block);
            }
        }
        for (auto [block, order] : mine) buddy->free_pages(block);
    };
    std::thread first(worker, 7);
    std::thread second(worker, 9);
    first.join();
    second.join();
    for (auto [block, order] : handoff) buddy->free_pages(block);
    buddy->drain_thread_cache();
    // Thread exit flushed the workers' caches.
    const BuddyStats stats = buddy->stats();
    EXPECT_EQ(stats.thread_cached_bytes, 0u);
    EXPECT_EQ(stats.allocated_bytes, 0u);
    EXPECT_EQ(stats.invalid_frees, 0u);
    expect_fully_coalesced(*buddy);
}

TEST(Buddy, ThreadOutlivingTheAllocatorIsSafe) {
    CapturedLog log;
    auto buddy = make_buddy(test_options(log.logger()));
    ASSERT_TRUE(buddy);
    std::mutex mutex;
    std::condition_variable cv;
    int phase = 0;
    std::thread worker([&] {
        buddy->free_pages(buddy->alloc_pages(0));  // leaves pages in this thread's cache
        {
            std::unique_lock lock(mutex);
            phase = 1;
            cv.notify_all();
            cv.wait(lock, [&] { return phase == 2; });
        }
        // The first allocator is gone; a new one works from the same thread.
        void* page = buddy->alloc_pages(0);
        EXPECT_NE(page, nullptr);
        buddy->free_pages(page);
    });
    {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return phase == 1; });
        buddy.reset();
        buddy = make_buddy(test_options(log.logger()));
        phase = 2;
        cv.notify_all();
    }
    worker.join();
    EXPECT_EQ(buddy->stats().allocated_bytes, 0u);
}

TEST(Buddy, TwoAllocatorsAreIndependent) {
    CapturedLog log;
    auto first = make_buddy(test_options(log.logger()));
    auto second = make_buddy(test_options(log.logger()));
    ASSERT_TRUE(first && second);
    void* a = first->alloc_pages(0);
    void* b = second->alloc_pages(0);
    EXPECT_NE(first->region_of(a), nullptr);
    EXPECT_EQ(first->region_of(b), nullptr);
    EXPECT_EQ(second->region_of(a), nullptr);
    EXPECT_FALSE(first->try_free_pages(b).ok());
    second->free_pages(b);
    first->free_pages(a);
}

TEST(Buddy, GrowsByRegionsAndShrinksFreeOnes) {
    CapturedLog log;
    auto buddy = make_buddy(test_options(log.logger()));
    ASSERT_TRUE(buddy);
    EXPECT_EQ(buddy->stats().regions, 0u) << "no memory is mapped before it is needed";
    void* a = buddy->alloc_pages(10);  // one whole 4 MiB region
    void* b = buddy->alloc_pages(10);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(buddy->stats().regions, 2u);
    EXPECT_NE(buddy->region_of(a), buddy->region_of(b));
    void* big = buddy->alloc_pages(12);  // 16 MiB: a region of its own size
    ASSERT_NE(big, nullptr);
    EXPECT_EQ(buddy->region_of(big)->length(), order_bytes(12));
    buddy->free_pages(a);
    buddy->free_pages(big);
    EXPECT_EQ(buddy->shrink(), order_bytes(10) + order_bytes(12));
    EXPECT_EQ(buddy->stats().regions, 1u);
    EXPECT_EQ(buddy->region_of(a), nullptr) << "released memory is not found any more";
    buddy->free_pages(b);
    EXPECT_EQ(buddy->shrink(), order_bytes(10));
    const BuddyStats stats = buddy->stats();
    EXPECT_EQ(stats.regions_added, 3u);
    EXPECT_EQ(stats.regions_released, 3u);
}

class RecordingListener : public RegionListener {
public:
    Status region_added(Region& region) override {
        if (fail) return Error(EPERM, "IOMMU refused the mapping");
        region.set_dma_base(next_iova);
        next_iova += region.length();
        ++added;
        return {};
    }
    void region_removing(Region& region) noexcept override {
        EXPECT_TRUE(region.dma_base().has_value());
        region.clear_dma_base();
        ++removed;
    }
    bool fail = false;
    std::uint64_t next_iova = 0x100000000;
    int added = 0;
    int removed = 0;
};

TEST(Buddy, ListenerMapsRegionsBeforeUseAndTranslates) {
    CapturedLog log;
    RecordingListener listener;
    BuddyOptions options = test_options(log.logger());
    options.listener = &listener;
    auto buddy = make_buddy(options);
    ASSERT_TRUE(buddy);
    auto* block = static_cast<std::byte*>(buddy->alloc_pages(2));
    ASSERT_NE(block, nullptr);
    EXPECT_EQ(listener.added, 1);
    const Region* region = buddy->region_of(block + 5000);
    ASSERT_NE(region, nullptr);
    ASSERT_TRUE(region->dma_base().has_value());
    EXPECT_EQ(buddy->dma_address_of(block + 5000),
              *region->dma_base() + static_cast<std::uint64_t>(block + 5000 - region->cpu_base()));
    EXPECT_EQ(buddy->dma_address_of(&listener), std::nullopt);
    buddy->free_pages(block);
    EXPECT_EQ(buddy->shrink(), options.region_size);
    EXPECT_EQ(listener.removed, 1);
    // The destructor also tells the listener.
    ASSERT_NE(buddy->alloc_pages(3), nullptr);
    buddy.reset();
    EXPECT_EQ(listener.removed, 2);
}

TEST(Buddy, FailingListenerFailsTheAllocationAndAddsNothing) {
    CapturedLog log;
    RecordingListener listener;
    listener.fail = true;
    BuddyOptions options = test_options(log.logger());
    options.listener = &listener;
    auto buddy = make_buddy(options);
    ASSERT_TRUE(buddy);
    EXPECT_EQ(buddy->alloc_pages(1), nullptr);
    auto result = buddy->try_alloc_pages(1);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code(), EPERM);
    EXPECT_NE(result.error().message().find("IOMMU refused"), std::string::npos);
    EXPECT_EQ(buddy->stats().regions, 0u);
    listener.fail = false;
    void* page = buddy->alloc_pages(1);
    EXPECT_NE(page, nullptr);
    buddy->free_pages(page);
}

TEST(Buddy, BadInputIsRefusedWithAReason) {
    CapturedLog log;
    BuddyOptions options = test_options(log.logger());
    options.max_managed = options.region_size;
    auto buddy = make_buddy(options);
    ASSERT_TRUE(buddy);

    auto too_big = buddy->try_alloc_pages(kMaxOrder + 1);
    ASSERT_FALSE(too_big.ok());
    EXPECT_EQ(too_big.error().code(), EINVAL);
    EXPECT_EQ(buddy->alloc_pages(kMaxOrder + 1), nullptr);

    void* block = buddy->alloc_pages(1);
    ASSERT_NE(block, nullptr);
    int on_stack = 0;
    EXPECT_FALSE(buddy->try_free_pages(nullptr).ok());
    EXPECT_FALSE(buddy->try_free_pages(&on_stack).ok());
    auto interior = buddy->try_free_pages(static_cast<std::byte*>(block) + kPageSize);
    ASSERT_FALSE(interior.ok());
    EXPECT_NE(interior.error().message().find("inside a block"), std::string::npos);
    auto unaligned = buddy->try_free_pages(static_cast<std::byte*>(block) + 8);
    EXPECT_FALSE(unaligned.ok());
    EXPECT_TRUE(buddy->try_free_pages(block).ok());
    auto twice = buddy->try_free_pages(block);
    ASSERT_FALSE(twice.ok());
    EXPECT_NE(twice.error().message().find("double free"), std::string::npos);

    // The noexcept free logs and counts instead of failing.
    buddy->free_pages(block);
    buddy->free_pages(&on_stack);
    EXPECT_EQ(buddy->stats().invalid_frees, 2u);
    EXPECT_EQ(log.count_containing("double free"), 1u);

    // Exhaustion: max_managed allows a single region.
    void* all = buddy->alloc_pages(10);
    ASSERT_NE(all, nullptr);
    auto exhausted = buddy->try_alloc_pages(0);
    ASSERT_FALSE(exhausted.ok());
    EXPECT_EQ(exhausted.error().code(), ENOMEM);
    EXPECT_NE(exhausted.error().message().find("max_managed"), std::string::npos);
    EXPECT_EQ(buddy->alloc_pages(0), nullptr);
    buddy->free_pages(all);
    EXPECT_NE(buddy->alloc_pages(0), nullptr);
}

TEST(Buddy, BadOptionsAreRefused) {
    BuddyOptions odd_region_options;
    odd_region_options.region_size = 3 << 20;
    auto odd_region = BuddyAllocator::create(std::make_unique<AnonymousSource>(), odd_region_options);
    ASSERT_FALSE(odd_region.ok());
    EXPECT_EQ(odd_region.error().code(), EINVAL);
    BuddyOptions odd_space_options;
    odd_space_options.address_space = 3u << 20;
    auto odd_space = BuddyAllocator::create(std::make_unique<AnonymousSource>(), odd_space_options);
    EXPECT_FALSE(odd_space.ok());
    EXPECT_FALSE(BuddyAllocator::create(nullptr).ok());
}

TEST(Buddy, BuddyinfoCountsFreeBlocksPerOrder) {
    CapturedLog log;
    auto buddy = make_buddy(test_options(log.logger()));
    ASSERT_TRUE(buddy);
    void* block = buddy->alloc_pages(8);  // splits order 10 into 8 + 8 + 9
    ASSERT_NE(block, nullptr);
    auto info = buddy->buddyinfo();
    ASSERT_EQ(info.size(), 1u);
    EXPECT_EQ(info[0].free_blocks[8], 1u);
    EXPECT_EQ(info[0].free_blocks[9], 1u);
    EXPECT_EQ(info[0].free_blocks[10], 0u);
    EXPECT_NE(buddy->format_buddyinfo().find("region 1 (4 MiB, 4 KiB pages)"), std::string::npos);
    buddy->free_pages(block);
}

}  // namespace
}  // namespace dmakit::mem
