// One DmaDevice, its context and its DMA pools shared by several threads, as
// the drivers share them between queues: map/unmap and syncs of pool and
// foreign memory (the LiveMappings table, the IOMMU domain and its IOVA
// cache in strict mode), the registration cache taking hits while other
// threads register and unregister, and DmaPool blocks freed on any thread.
// Also run under ThreadSanitizer (docs/testing.md).
#include "dma_test_fixture.hpp"

#include <concurrency.hpp>
#include <dmakit/dma/pool.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <vector>

namespace dmakit::dma::testing {
namespace {

using dmakit::testing::concurrency_seed;
using dmakit::testing::Handoff;
using dmakit::testing::kConcurrentThreads;
using dmakit::testing::run_concurrently;

constexpr std::size_t kPage = 4096;
constexpr int kSteps = 600;

DmaDirection random_direction(std::mt19937_64& rng) {
    constexpr DmaDirection kDirections[] = {DmaDirection::to_device, DmaDirection::from_device,
                                            DmaDirection::bidirectional};
    return kDirections[rng() % 3];
}

struct Mapped {
    DmaAddr addr;
    std::size_t length;
    DmaDirection dir;
    bool pool_memory;
};

// Each thread maps pieces of its own coherent (pool) buffer and of its own
// heap buffer (foreign memory: an exact IOMMU mapping per map), syncs them,
// and unmaps them in random order; a second unmap of pool memory must be
// refused (its device address is this thread's alone, so the refusal cannot
// depend on another thread).
void map_and_unmap_from_threads(DmaDevice& device, std::uint64_t seed, std::atomic<int>& failures,
                                std::atomic<std::size_t>& refused_double_unmaps) {
    run_concurrently(seed, kConcurrentThreads, [&](unsigned, std::mt19937_64& rng) {
        auto coherent = device.alloc_coherent(16 * kPage);
        if (!coherent.ok()) {
            ++failures;
            return;
        }
        std::vector<std::byte> heap(17 * kPage);
        std::vector<Mapped> live;
        for (int step = 0; step < kSteps; ++step) {
            if (live.empty() || rng() % 100 < 55) {
                const bool pool_memory = rng() % 2 == 0;
                const std::size_t length = 1 + rng() % (2 * kPage);
                std::byte* base = pool_memory ? coherent->as<std::byte>() : heap.data();
                std::byte* cpu = base + rng() % (14 * kPage);
                const DmaDirection dir = random_direction(rng);
                auto addr = device.map_single(cpu, length, dir);
                if (!addr.ok()) {
                    ++failures;
                    continue;
                }
                live.push_back({*addr, length, dir, pool_memory});
                continue;
            }
            const std::size_t pick = rng() % live.size();
            const Mapped mapping = live[pick];
            if (!device.sync_single_for_cpu(mapping.addr, mapping.length, mapping.dir).ok() ||
                !device.sync_single_for_device(mapping.addr, mapping.length, mapping.dir).ok()) {
                ++failures;
            }
            live[pick] = live.back();
            live.pop_back();
            if (!device.unmap_single(mapping.addr, mapping.length, mapping.dir).ok()) ++failures;
            const bool alone = std::none_of(live.begin(), live.end(), [&](const Mapped& other) {
                return other.addr == mapping.addr;
            });
            if (mapping.pool_memory && alone && rng() % 4 == 0) {
                if (device.unmap_single(mapping.addr, mapping.length, mapping.dir).ok()) {
                    ++failures;
                } else {
                    ++refused_double_unmaps;
                }
            }
        }
        for (const Mapped& mapping : live) {
            if (!device.unmap_single(mapping.addr, mapping.length, mapping.dir).ok()) ++failures;
        }
    });
}

using ConcurrentDmaDevice = DmaTest;

TEST_F(ConcurrentDmaDevice, MapUnmapAndSyncFromThreadsInPoolPolicy) {
    const std::uint64_t seed = concurrency_seed();
    // Brings the pool region in (mapped once, for the context's life) first.
    auto resident = device_->alloc_coherent(kPage);
    ASSERT_TRUE(resident.ok());
    const std::size_t domain_mappings = context_->domain().mapping_count();
    std::atomic<int> failures{0};
    std::atomic<std::size_t> refused{0};
    map_and_unmap_from_threads(*device_, seed, failures, refused);
    EXPECT_EQ(failures.load(), 0);
    EXPECT_GT(refused.load(), 0u);
    EXPECT_EQ(device_->live_mappings(), 0u);
    EXPECT_EQ(context_->domain().mapping_count(), domain_mappings)
        << "every exact mapping was torn down at its unmap";
}

using ConcurrentStrictDmaDevice = StrictDmaTest;

TEST_F(ConcurrentStrictDmaDevice, MapUnmapAndSyncFromThreadsShareTheIovaCache) {
    const std::uint64_t seed = concurrency_seed();
    std::atomic<int> failures{0};
    std::atomic<std::size_t> refused{0};
    map_and_unmap_from_threads(*device_, seed, failures, refused);
    EXPECT_EQ(failures.load(), 0);
    EXPECT_GT(refused.load(), 0u);
    EXPECT_EQ(device_->live_mappings(), 0u);
    EXPECT_EQ(context_->domain().mapping_count(), 0u)
        << "strict: the coherent buffers are freed and nothing else stays mapped";
}

TEST_F(ConcurrentDmaDevice, RegistrationHitsWhileOtherThreadsRegisterAndUnregister) {
    const std::uint64_t seed = concurrency_seed();
    std::vector<std::byte> shared(64 * kPage);
    auto registration =
        context_->registrations().register_memory(shared.data(), shared.size(), device_->mask());
    ASSERT_TRUE(registration.ok()) << registration.error();
    std::atomic<int> failures{0};
    run_concurrently(seed, kConcurrentThreads, [&](unsigned thread, std::mt19937_64& rng) {
        std::vector<std::byte> own(8 * kPage);
        for (int step = 0; step < kSteps; ++step) {
            if (thread % 2 == 0) {
                // Registration churn on memory of its own.
                auto mine = context_->registrations().register_memory(own.data(), own.size(),
                                                                      device_->mask());
                if (!mine.ok()) {
                    ++failures;
                    continue;
                }
                const DmaDirection dir = random_direction(rng);
                auto addr = device_->map_single(own.data() + rng() % kPage, 64, dir);
                if (!addr.ok() || addr->value() < mine->dma().value() ||
                    !device_->unmap_single(*addr, 64, dir).ok()) {
                    ++failures;
                }
                mine->reset();
                continue;
            }
            const std::size_t length = 1 + rng() % kPage;
            std::byte* cpu = shared.data() + rng() % (60 * kPage);
            const DmaDirection dir = random_direction(rng);
            auto addr = device_->map_single(cpu, length, dir);
            if (!addr.ok()) {
                ++failures;
                continue;
            }
            const auto expected = context_->registrations().lookup(cpu, length);
            if (!expected || *expected != *addr) ++failures;
            if (!device_->unmap_single(*addr, length, dir).ok()) ++failures;
        }
    });
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(device_->live_mappings(), 0u);
    EXPECT_EQ(context_->registrations().stats().registrations, 1u);
    registration->reset();
    EXPECT_EQ(context_->registrations().stats().registrations, 0u);
    EXPECT_EQ(context_->registrations().stats().extents, 0u);
}

TEST_F(ConcurrentDmaDevice, PoolBlocksFreedOnAnyThread) {
    const std::uint64_t seed = concurrency_seed();
    auto created = DmaPool::create("concurrent", *device_, 512, 64, 4096);
    ASSERT_TRUE(created.ok()) << created.error();
    DmaPool& pool = **created;
    struct Held {
        DmaPool::Block block;
        unsigned char mark;
    };
    Handoff<Held> handoff;
    std::atomic<int> failures{0}, torn{0};
    std::atomic<std::size_t> double_frees{0};
    const auto intact = [&](const Held& held) {
        const auto* bytes = static_cast<const unsigned char*>(held.block.cpu);
        return bytes[0] == held.mark && bytes[511] == held.mark;
    };
    run_concurrently(seed, kConcurrentThreads, [&](unsigned thread, std::mt19937_64& rng) {
        std::vector<Held> mine;
        for (int step = 0; step < kSteps * 4; ++step) {
            const unsigned r = rng() % 100;
            if (r < 45 || mine.empty()) {
                auto block = pool.alloc();
                if (!block.ok()) {
                    ++failures;
                    continue;
                }
                mine.push_back({*block, static_cast<unsigned char>(thread + 1)});
                std::memset(block->cpu, mine.back().mark, 512);
            } else if (r < 65) {
                handoff.put(mine.back());
                mine.pop_back();
            } else if (r < 80) {
                if (auto theirs = handoff.take()) {
                    if (!intact(*theirs)) ++torn;
                    if (!pool.free(theirs->block.cpu).ok()) ++failures;
                }
            } else {
                const Held held = mine.back();
                mine.pop_back();
                if (!intact(held)) ++torn;
                if (!pool.free(held.block.cpu).ok()) ++failures;
                if (rng() % 8 == 0) {
                    ++double_frees;
                    if (pool.free(held.block.cpu).ok()) ++failures;
                }
            }
        }
        for (const Held& held : mine) {
            if (!pool.free(held.block.cpu).ok()) ++failures;
        }
    });
    for (const Held& held : handoff.take_all()) {
        if (!pool.free(held.block.cpu).ok()) ++failures;
    }
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(torn.load(), 0) << "a block was handed to two owners";
    EXPECT_GT(double_frees.load(), 0u);
    EXPECT_EQ(pool.invalid_frees(), double_frees.load());
}

}  // namespace
}  // namespace dmakit::dma::testing
