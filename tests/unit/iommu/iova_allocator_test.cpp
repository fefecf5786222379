#include <dmakit/iommu/iova_allocator.hpp>

#include <gtest/gtest.h>

#include <bit>
#include <cerrno>
#include <map>
#include <random>
#include <vector>

namespace dmakit::iommu {
namespace {

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;
constexpr std::uint64_t kGiB = 1024 * kMiB;
constexpr std::uint64_t k4K = 4 * kKiB;

// QEMU intel-iommu: 39-bit space with the x86 MSI window cut out.
const std::vector<IovaRange> kVtdRanges{{0, 0xfedfffff}, {0xfef00000, 0x7fffffffff}};

IovaAllocator make(std::vector<IovaRange> ranges, std::uint64_t granule = k4K) {
    auto a = IovaAllocator::create(std::move(ranges), granule);
    EXPECT_TRUE(a.ok()) << (a.ok() ? "" : dmakit::to_string(a.error()));
    return std::move(a).value();
}

bool inside(const std::vector<IovaRange>& ranges, std::uint64_t start, std::uint64_t last) {
    for (const auto& r : ranges) {
        if (start >= r.start && last <= r.last) return true;
    }
    return false;
}

TEST(IovaAllocator, TrimsRangesAndSkipsPageZero) {
    auto a = make({{0, 0x2fff}, {0x5001, 0x9ffe}});
    // [0x1000,0x2fff] and [0x6000,0x8fff]
    ASSERT_EQ(a.usable_ranges().size(), 2u);
    EXPECT_EQ(a.usable_ranges()[0], (IovaRange{0x1000, 0x2fff}));
    EXPECT_EQ(a.usable_ranges()[1], (IovaRange{0x6000, 0x8fff}));
    EXPECT_EQ(a.free_bytes(), 0x2000u + 0x3000u);
}

TEST(IovaAllocator, MergesOverlappingAndFullSpace) {
    auto a = make({{0x10000, 0x1ffff}, {0x18000, 0x2ffff}, {0x30000, 0x3ffff}});
    ASSERT_EQ(a.usable_ranges().size(), 1u);
    EXPECT_EQ(a.usable_ranges()[0], (IovaRange{0x10000, 0x3ffff}));

    auto full = make({{0, ~std::uint64_t{0}}});
    EXPECT_EQ(full.free_bytes(), ~std::uint64_t{0} - k4K + 1);
    auto top = full.allocate(std::uint64_t{1} << 62, ~std::uint64_t{0});
    ASSERT_TRUE(top.ok());
    EXPECT_EQ(*top, std::uint64_t{1} << 62);  // the smallest free block that fits
}

TEST(IovaAllocator, RejectsBadInput) {
    EXPECT_FALSE(IovaAllocator::create({{0, 0xffff}}, 3000).ok());
    EXPECT_FALSE(IovaAllocator::create({{0, 0x0fff}}, k4K).ok());  // only page 0
    EXPECT_FALSE(IovaAllocator::create({{0x2000, 0x1000}}, k4K).ok());
    auto a = make(kVtdRanges);
    EXPECT_EQ(a.allocate(0, ~0ull).error().code(), EINVAL);
    EXPECT_EQ(a.allocate(k4K, ~0ull, 3 * k4K).error().code(), EINVAL);
    EXPECT_EQ(a.free(0x1234000).error().code(), EINVAL);
}

TEST(IovaAllocator, AlignsToSizeAndRespectsMask) {
    auto a = make(kVtdRanges);
    auto two_meg = a.allocate(2 * kMiB, ~0ull);
    ASSERT_TRUE(two_meg.ok());
    EXPECT_EQ(*two_meg % (2 * kMiB), 0u);
    auto odd = a.allocate(3 * k4K, ~0ull);
    ASSERT_TRUE(odd.ok());
    EXPECT_EQ(*odd % (4 * k4K), 0u);
    EXPECT_EQ(a.block_size(*odd), 4 * k4K);
    auto low = a.allocate(64 * kKiB, 0xffffffff);  // 32-bit device
    ASSERT_TRUE(low.ok());
    EXPECT_LE(*low + 64 * kKiB - 1, 0xffffffffu);
    EXPECT_TRUE(inside(kVtdRanges, *low, *low + 64 * kKiB - 1));
    auto aligned = a.allocate(k4K, ~0ull, 1 * kGiB);
    ASSERT_TRUE(aligned.ok());
    EXPECT_EQ(*aligned % kGiB, 0u);
}

TEST(IovaAllocator, NeverHandsOutTheMsiWindow) {
    // Only the space around the MSI window is below this mask.
    auto a = make(kVtdRanges);
    std::vector<std::uint64_t> got;
    for (;;) {
        auto r = a.allocate(kMiB, 0xffffffff);
        if (!r.ok()) break;
        EXPECT_TRUE(*r + kMiB - 1 < 0xfee00000 || *r > 0xfeefffff) << std::hex << *r;
        got.push_back(*r);
    }
    // 4 GiB - 1 MiB (window) - the first MiB (page 0 makes it unusable for 1 MiB blocks).
    EXPECT_EQ(got.size(), 4096u - 2u);
}

TEST(IovaAllocator, ExhaustionIsACleanErrorAndRecovers) {
    auto a = make({{0x100000, 0x1fffff}});  // 1 MiB
    std::vector<std::uint64_t> got;
    for (int i = 0; i < 256; ++i) {
        auto r = a.allocate(k4K, ~0ull);
        ASSERT_TRUE(r.ok()) << i;
        got.push_back(*r);
    }
    auto full = a.allocate(k4K, ~0ull);
    ASSERT_FALSE(full.ok());
    EXPECT_EQ(full.error().code(), ENOMEM);
    EXPECT_NE(full.error().message().find("no free IOVA range of 4096 bytes below mask 0xffffffffffffffff"),
              std::string::npos)
        << full.error();
    EXPECT_EQ(a.free_bytes(), 0u);
    ASSERT_TRUE(a.free(got[17]).ok());
    auto again = a.allocate(k4K, ~0ull);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, got[17]);
    EXPECT_TRUE(a.free(got[17]).ok());
    EXPECT_EQ(a.free(got[17]).error().code(), EINVAL);  // double free
}

TEST(IovaAllocator, MaskBelowEverythingFails) {
    auto a = make({{0x100000000, 0x1ffffffff}});
    auto r = a.allocate(k4K, 0xffffffff);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("below mask 0xffffffff"), std::string::npos);
}

TEST(IovaAllocator, ReserveCarvesFreeSpaceAndRefusesLiveAllocations) {
    auto a = make({{0x100000, 0x4fffff}});  // 4 MiB
    auto r = a.allocate(kMiB, ~0ull);
    ASSERT_TRUE(r.ok());
    const std::uint64_t before = a.free_bytes();
    EXPECT_EQ(a.reserve({*r + 0x1000, *r + 0x1fff}).error().code(), EBUSY);
    EXPECT_EQ(a.free_bytes(), before);
    // Reserve a window somewhere free, then allocate everything: nothing lands in it.
    const IovaRange hole = *r == 0x100000 ? IovaRange{0x280000, 0x2bffff}
                                          : IovaRange{0x180000, 0x1bffff};
    ASSERT_TRUE(a.reserve(hole).ok());
    EXPECT_EQ(a.free_bytes(), before - 0x40000);
    for (;;) {
        auto x = a.allocate(k4K, ~0ull);
        if (!x.ok()) break;
        EXPECT_TRUE(*x > hole.last || *x + k4K - 1 < hole.start) << std::hex << *x;
    }
    EXPECT_EQ(a.free_bytes(), 0u);
}

// Randomised sequences: every property at every step, then full reuse.
class IovaAllocatorRandom : public ::testing::TestWithParam<unsigned> {};

TEST_P(IovaAllocatorRandom, PropertiesHold) {
    std::mt19937_64 rng(GetParam());
    const auto ranges = kVtdRanges;
    auto a = make(ranges);
    const std::uint64_t initial_free = a.free_bytes();
    const std::size_t initial_blocks = a.free_block_count();
    const std::uint64_t masks[] = {~0ull, 0xffffffff, 0x3fffffff, 0xfffffff, 0xffffff};

    std::map<std::uint64_t, std::uint64_t> live;  // start -> block bytes
    std::uint64_t failures = 0;
    for (int step = 0; step < 20000; ++step) {
        const bool do_alloc = live.empty() || (rng() % 100) < 60;
        if (do_alloc) {
            // Sizes 1 byte .. 8 MiB, skewed small.
            const unsigned shift = static_cast<unsigned>(rng() % 24);
            const std::uint64_t size = 1 + rng() % (std::uint64_t{1} << shift);
            const std::uint64_t mask = masks[rng() % std::size(masks)];
            const std::uint64_t align = (rng() % 8 == 0) ? (k4K << (rng() % 10)) : 0;
            auto r = a.allocate(size, mask, align);
            if (!r.ok()) {
                EXPECT_EQ(r.error().code(), ENOMEM);
                ++failures;
                continue;
            }
            const std::uint64_t block = *a.block_size(*r);
            const std::uint64_t start = *r;
            const std::uint64_t last = start + block - 1;
            ASSERT_GE(block, size);
            ASSERT_TRUE(std::has_single_bit(block));
            ASSERT_EQ(start % block, 0u) << "aligned to its size";
            if (align) {
                ASSERT_EQ(start % align, 0u);
            }
            ASSERT_LE(last, mask) << "below the mask";
            ASSERT_GE(start, k4K) << "never page 0";
            ASSERT_TRUE(inside(ranges, start, last)) << std::hex << start;
            auto next = live.lower_bound(start);
            if (next != live.end()) {
                ASSERT_GT(next->first, last) << "no overlap";
            }
            if (next != live.begin()) {
                auto prev = std::prev(next);
                ASSERT_LT(prev->first + prev->second - 1, start) << "no overlap";
            }
            live.emplace(start, block);
        } else {
            auto it = live.begin();
            std::advance(it, static_cast<long>(rng() % live.size()));
            ASSERT_TRUE(a.free(it->first).ok());
            live.erase(it);
        }
        std::uint64_t used = 0;
        for (const auto& [s, b] : live) used += b;
        ASSERT_EQ(a.free_bytes() + used, initial_free);
        ASSERT_EQ(a.allocation_count(), live.size());
    }
    for (const auto& [s, b] : live) ASSERT_TRUE(a.free(s).ok());
    EXPECT_EQ(a.free_bytes(), initial_free);
    EXPECT_EQ(a.free_block_count(), initial_blocks) << "buddies coalesce back fully";
    // The largest block is available again.
    auto big = a.allocate(std::uint64_t{1} << 38, ~0ull);
    ASSERT_TRUE(big.ok());
    EXPECT_EQ(*big, std::uint64_t{1} << 38);
}

TEST_P(IovaAllocatorRandom, ExhaustAndRecoverUnderSmallMask) {
    std::mt19937_64 rng(GetParam() * 7919u + 1);
    auto a = make(kVtdRanges);
    const std::uint64_t mask = 0xffffff;  // 16 MiB: small enough to exhaust
    std::vector<std::uint64_t> got;
    for (;;) {
        auto r = a.allocate(k4K << (rng() % 6), mask);
        if (!r.ok()) {
            EXPECT_EQ(r.error().code(), ENOMEM);
            break;
        }
        got.push_back(*r);
    }
    // A 4 KiB block still fits only if fragments remain: drain them.
    for (auto r = a.allocate(k4K, mask); r.ok(); r = a.allocate(k4K, mask)) got.push_back(*r);
    EXPECT_EQ(a.largest_free_below(mask), 0u);
    std::shuffle(got.begin(), got.end(), rng);
    for (std::uint64_t s : got) ASSERT_TRUE(a.free(s).ok());
    // Whole 8 MiB block under the mask again (16 MiB minus page 0 region).
    auto r = a.allocate(8 * kMiB, mask);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 8 * kMiB);
}

INSTANTIATE_TEST_SUITE_P(Seeds, IovaAllocatorRandom, ::testing::Values(1u, 2u, 3u, 42u, 1234u));

}  // namespace
}  // namespace dmakit::iommu
