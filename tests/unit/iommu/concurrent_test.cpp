// One IommuDomain mapped and unmapped by several threads at once, as the DMA
// layer does in strict mode: small sizes go through the IOVA cache, larger
// ones through the allocator's trees, and a cache flush (refresh) runs
// meanwhile. No two live mappings may overlap, and everything is given back.
// Also run under ThreadSanitizer (docs/testing.md).
#include <concurrency.hpp>
#include <dmakit/iommu/domain.hpp>
#include <dmakit/testing/test_backend.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace dmakit::iommu {
// Named, not anonymous: the unit programs compile as unity files (tests/meson.build),
// where another file's helpers of the same names share the translation unit.
namespace concurrent_test {

using dmakit::testing::concurrency_seed;
using dmakit::testing::kConcurrentThreads;
using dmakit::testing::run_concurrently;

constexpr std::uint64_t k4K = 4096;
constexpr std::size_t kPagesPerThread = 128;

// IOVA ranges live right now; an overlap means one IOVA went to two mappings.
class LiveRanges {
public:
    [[nodiscard]] bool add(std::uint64_t iova, std::uint64_t length) {
        std::lock_guard lock(mutex_);
        auto next = ranges_.lower_bound({iova, 0});
        if (next != ranges_.end() && next->first < iova + length) return false;
        if (next != ranges_.begin() && std::prev(next)->second > iova) return false;
        ranges_.insert({iova, iova + length});
        return true;
    }
    void remove(std::uint64_t iova) {
        std::lock_guard lock(mutex_);
        ranges_.erase(ranges_.lower_bound({iova, 0}));
    }

private:
    std::mutex mutex_;
    std::set<std::pair<std::uint64_t, std::uint64_t>> ranges_;  // [first, end)
};

TEST(ConcurrentIommuDomain, MapAndUnmapFromThreadsNeverShareAnIova) {
    const std::uint64_t seed = concurrency_seed();
    TestBackendConfig config;
    config.record_operations = false;
    auto backend = std::make_unique<TestIommuBackend>(config);
    auto created = IommuDomain::create(std::move(backend));
    ASSERT_TRUE(created.ok()) << created.error();
    IommuDomain& domain = **created;
    const std::uint64_t free_before = domain.free_iova_bytes();
    std::unique_ptr<std::byte, decltype(&std::free)> memory(
        static_cast<std::byte*>(std::aligned_alloc(k4K, kConcurrentThreads * kPagesPerThread * k4K)),
        &std::free);
    ASSERT_TRUE(memory);
    LiveRanges live;
    std::atomic<int> failures{0}, overlaps{0};
    run_concurrently(seed, kConcurrentThreads, [&](unsigned thread, std::mt19937_64& rng) {
        std::byte* mine = memory.get() + thread * kPagesPerThread * k4K;
        std::vector<IommuMapping> held;
        for (int step = 0; step < 1500; ++step) {
            const unsigned r = static_cast<unsigned>(rng() % 100);
            if (held.empty() || r < 50) {
                // 1..64 pages: mostly inside the IOVA cache's sizes, some beyond.
                const std::uint64_t pages = rng() % 8 == 0 ? 1 + rng() % 64 : 1 + rng() % 4;
                const std::byte* cpu = mine + (rng() % (kPagesPerThread - pages + 1)) * k4K;
                const Access access = rng() % 2 == 0 ? Access::read : Access::read_write;
                auto mapping = domain.map(cpu, pages * k4K, access);
                if (!mapping.ok()) {
                    ++failures;
                    continue;
                }
                if (!live.add(mapping->iova, mapping->length)) ++overlaps;
                held.push_back(*mapping);
            } else if (r < 99) {
                const std::size_t pick = rng() % held.size();
                const IommuMapping mapping = held[pick];
                held[pick] = held.back();
                held.pop_back();
                live.remove(mapping.iova);
                if (!domain.unmap(mapping.iova).ok()) ++failures;
            } else {
                // Gives the cached IOVA blocks back while others map.
                if (!domain.refresh().ok()) ++failures;
            }
        }
        for (const IommuMapping& mapping : held) {
            live.remove(mapping.iova);
            if (!domain.unmap(mapping.iova).ok()) ++failures;
        }
    });
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(overlaps.load(), 0) << "an IOVA was given to two live mappings";
    EXPECT_EQ(domain.mapping_count(), 0u);
    EXPECT_EQ(domain.mappings_in_use(), 0u);
    ASSERT_TRUE(domain.refresh().ok());
    EXPECT_EQ(domain.free_iova_bytes(), free_before) << "every IOVA came back";
}

}  // namespace concurrent_test
}  // namespace dmakit::iommu
