// IOVAs never alias a PCI memory window: DomainConfig::reserved and the
// allocator's guarantees over a layout like the QEMU q35 guest's.
#include <dmakit/iommu/domain.hpp>
#include <dmakit/iommu/iova_allocator.hpp>
#include <dmakit/iommu/pci_windows.hpp>
#include <dmakit/testing/test_backend.hpp>

#include "fake_sysfs.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <vector>

namespace dmakit::iommu {
// Named, not anonymous: the unit programs compile as unity files (tests/meson.build),
// where another file's helpers of the same names share the translation unit.
namespace reserved_ranges_test {

constexpr std::uint64_t k4K = 4096;
constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kGiB = 1024 * kMiB;
constexpr std::uint64_t kMask32 = 0xffffffff;

// VT-d in QEMU with aw-bits=39 (the default) and aw-bits=48, minus the MSI window.
const std::vector<IovaRange> kUsable39{{0, 0xfedfffff}, {0xfef00000, 0x7fffffffff}};
const std::vector<IovaRange> kUsable48{{0, 0xfedfffff}, {0xfef00000, 0xffffffffffff}};

// PCI windows as the q35 test guest has them (its /proc/iomem): legacy VGA,
// a bridge window, ECAM, the 32-bit window holding the BARs, BARs (one
// smaller than a page and not page-aligned), the 64-bit window the guest has
// above its RAM, and one far up as a larger q35 machine might have.
const std::vector<IovaRange> kWindows{
    {0x000a0000, 0x000bffff},     {0x80000000, 0xafffffff},    {0xb0000000, 0xbfffffff},
    {0xc0000000, 0xfebfffff},     {0xfe800000, 0xfe81ffff},    {0xfebe0000, 0xfebe3fff},
    {0xfebf1080, 0xfebf10ff},     {0x100000000, 0x8ffffffff},  {0x380000000000, 0x3807ffffffff},
};
// Whether [start, last] touches a window rounded out to 4 KiB (what must stay free).
bool hits_window(std::uint64_t start, std::uint64_t last) {
    for (const IovaRange& w : kWindows) {
        const std::uint64_t w_start = w.start & ~(k4K - 1);
        const std::uint64_t w_last = w.last | (k4K - 1);
        if (start <= w_last && w_start <= last) return true;
    }
    return false;
}

bool inside(const std::vector<IovaRange>& ranges, std::uint64_t start, std::uint64_t last) {
    for (const auto& r : ranges) {
        if (start >= r.start && last <= r.last) return true;
    }
    return false;
}

IovaAllocator reserved_allocator(const std::vector<IovaRange>& usable) {
    auto a = IovaAllocator::create(usable, k4K);
    EXPECT_TRUE(a.ok());
    for (const IovaRange& w : kWindows) EXPECT_TRUE(a->reserve(w).ok());
    return std::move(a).value();
}

TEST(ReservedRanges, ReserveRoundsOutwardToTheGranule) {
    auto a = IovaAllocator::create({{0, 0xffffffff}}, k4K);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(a->reserve({0x10000100, 0x100012ff}).ok());
    const std::vector<IovaRange> expected{{0x1000, 0xfffffff}, {0x10002000, 0xffffffff}};
    EXPECT_EQ(a->usable_ranges(), expected);
    // A range outside everything, and one overlapping an earlier one, are fine.
    EXPECT_TRUE(a->reserve({0x380000000000, 0x3807ffffffff}).ok());
    EXPECT_TRUE(a->reserve({0x10001000, 0x10002fff}).ok());
    EXPECT_EQ(a->usable_ranges().back(), (IovaRange{0x10003000, 0xffffffff}));
}

TEST(ReservedRanges, TheBlockThatCoveredTheNvmeBarNowGoesElsewhere) {
    // Without reservations, the first 4 MiB block below 4 GiB is 0xfe800000,
    // covering the guest's NVMe BAR0 at 0xfebe0000 (issue 9).
    auto bare = IovaAllocator::create(kUsable39, k4K);
    ASSERT_TRUE(bare.ok());
    auto aliased = bare->allocate(4 * kMiB, kMask32);
    ASSERT_TRUE(aliased.ok());
    EXPECT_EQ(*aliased, 0xfe800000u);
    EXPECT_TRUE(hits_window(*aliased, *aliased + 4 * kMiB - 1));

    IovaAllocator a = reserved_allocator(kUsable39);
    auto block = a.allocate(4 * kMiB, kMask32);
    ASSERT_TRUE(block.ok());
    EXPECT_FALSE(hits_window(*block, *block + 4 * kMiB - 1)) << to_hex(*block);
}

TEST(ReservedRanges, PlacementStaysTopDownWithinTheBestFittingOrder) {
    IovaAllocator a = reserved_allocator(kUsable39);
    // 2 MiB blocks below 4 GiB: 0x200000 and 0xfec00000 (between the BARs and
    // the MSI window); the highest first, then the low one, then the top half
    // of the next larger block. Nothing in 0xc0000000-0xfebfffff.
    EXPECT_EQ(*a.allocate(2 * kMiB, kMask32), 0xfec00000u);
    EXPECT_EQ(*a.allocate(2 * kMiB, kMask32), 0x200000u);
    EXPECT_EQ(*a.allocate(2 * kMiB, kMask32), 0x600000u);
}

TEST(ReservedRanges, OnlyOneGibibyteFitsBelowFourGibibytesThenEnomem) {
    IovaAllocator a = reserved_allocator(kUsable39);
    auto first = a.allocate(kGiB, kMask32);
    ASSERT_TRUE(first.ok()) << first.error();
    EXPECT_EQ(*first, 0x40000000u);
    auto second = a.allocate(kGiB, kMask32);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().code(), ENOMEM);
    EXPECT_NE(second.error().message().find("no free IOVA range of 1073741824 bytes below mask "
                                            "0xffffffff"),
              std::string::npos)
        << second.error();
    ASSERT_TRUE(a.free(*first).ok());
    EXPECT_TRUE(a.allocate(kGiB, kMask32).ok());
}

TEST(ReservedRanges, ExhaustingThe32BitSpaceNeverTouchesAWindow) {
    IovaAllocator a = reserved_allocator(kUsable39);
    std::uint64_t handed_out = 0;
    for (;;) {
        auto iova = a.allocate(2 * kMiB, kMask32);
        if (!iova.ok()) {
            EXPECT_EQ(iova.error().code(), ENOMEM);
            break;
        }
        ASSERT_FALSE(hits_window(*iova, *iova + 2 * kMiB - 1)) << to_hex(*iova);
        handed_out += 2 * kMiB;
    }
    // [2 MiB, 2 GiB) (the first 2 MiB hold the VGA window), 0xfec00000-0xfedfffff
    // and, above the MSI window, 0xff000000-0xffffffff.
    EXPECT_EQ(handed_out, (2 * kGiB - 2 * kMiB) + 2 * kMiB + 16 * kMiB);
}

// Thousands of allocations of every size and mask, freed at random, against
// the windows, the usable space, natural alignment, the mask and each other.
class ReservedRangesRandom : public ::testing::TestWithParam<int> {};

TEST_P(ReservedRangesRandom, NoAllocationEverOverlapsAWindow) {
    const bool wide = GetParam() % 2 == 1;
    const std::vector<IovaRange>& usable = wide ? kUsable48 : kUsable39;
    IovaAllocator a = reserved_allocator(usable);
    std::mt19937_64 rng(static_cast<std::uint64_t>(GetParam()));
    const std::uint64_t masks[] = {kMask32, 0xfffffffff, 0x7fffffffff, 0xffffffffffff,
                                   ~std::uint64_t{0}};
    std::map<std::uint64_t, std::uint64_t> live;  // iova -> block bytes
    std::map<unsigned, unsigned> successes;       // log2(size) -> count
    unsigned enomem = 0;
    for (int step = 0; step < 20000; ++step) {
        if (!live.empty() && rng() % 10 < 3) {
            auto it = live.begin();
            std::advance(it, static_cast<long>(rng() % live.size()));
            ASSERT_TRUE(a.free(it->first).ok());
            live.erase(it);
            continue;
        }
        const unsigned log_size = 12 + static_cast<unsigned>(rng() % 19);  // 4 KiB .. 1 GiB
        std::uint64_t size = std::uint64_t{1} << log_size;
        if (rng() % 2 == 0) size -= rng() % (size / 2);  // not a power of two
        const std::uint64_t mask = masks[rng() % std::size(masks)];
        const std::uint64_t align = rng() % 4 == 0 ? std::uint64_t{1} << (12 + rng() % 10) : 0;
        auto iova = a.allocate(size, mask, align);
        if (!iova.ok()) {
            ASSERT_EQ(iova.error().code(), ENOMEM) << iova.error();
            ASSERT_NE(iova.error().message().find("no free IOVA range"), std::string::npos);
            ++enomem;
            continue;
        }
        const std::uint64_t block = *a.block_size(*iova);
        const std::uint64_t last = *iova + (block - 1);
        ASSERT_EQ(block, std::max({std::bit_ceil(size), align, k4K}));
        ASSERT_EQ(*iova % block, 0u) << "not naturally aligned: " << to_hex(*iova);
        ASSERT_LE(last, mask) << to_hex(*iova);
        ASSERT_FALSE(hits_window(*iova, last)) << to_hex(*iova) << "-" << to_hex(last);
        ASSERT_TRUE(inside(usable, *iova, last)) << to_hex(*iova);
        ASSERT_NE(*iova, 0u);
        auto next = live.lower_bound(*iova);
        if (next != live.end()) {
            ASSERT_GT(next->first, last);
        }
        if (next != live.begin()) {
            auto prev = std::prev(next);
            ASSERT_LT(prev->first + (prev->second - 1), *iova);
        }
        live.emplace(*iova, block);
        ++successes[log_size];
    }
    // Every size class was really handed out, including 1 GiB.
    for (unsigned log_size = 12; log_size <= 30; ++log_size) {
        EXPECT_GT(successes[log_size], 0u) << "no allocation of 2^" << log_size << " bytes";
    }
    RecordProperty("enomem", static_cast<int>(enomem));
    for (const auto& [iova, block] : live) ASSERT_TRUE(a.free(iova).ok());
    // Everything coalesces back; the windows stay out.
    auto fresh = reserved_allocator(usable);
    EXPECT_EQ(a.free_bytes(), fresh.free_bytes());
    EXPECT_EQ(a.free_block_count(), fresh.free_block_count());
}

INSTANTIATE_TEST_SUITE_P(Seeds, ReservedRangesRandom, ::testing::Range(1, 7));

// The domain: DomainConfig::reserved at create, kept over refresh().
struct DomainFixture {
    explicit DomainFixture(std::vector<IovaRange> usable = kUsable39,
                           std::vector<IovaRange> reserved = kWindows) {
        TestBackendConfig backend_config;
        backend_config.usable_ranges = std::move(usable);
        backend_config.budget = std::nullopt;
        auto owned = std::make_unique<TestIommuBackend>(backend_config);
        backend = owned.get();
        DomainConfig config;
        config.reserved = std::move(reserved);
        auto created = IommuDomain::create(std::move(owned), config);
        EXPECT_TRUE(created.ok()) << (created.ok() ? "" : dmakit::to_string(created.error()));
        domain = std::move(created).value();
    }
    TestIommuBackend* backend = nullptr;
    std::unique_ptr<IommuDomain> domain;
};

// CPU side of the maps: the test backend never touches the memory, only
// checks alignment, so one aligned page stands for buffers of any length.
struct CpuPage {
    CpuPage() : data(std::aligned_alloc(k4K, k4K)) {}
    ~CpuPage() { std::free(data); }
    void* data;
};

void expect_no_window_in_usable(const IommuDomain& domain) {
    for (const IovaRange& r : domain.usable_ranges()) {
        EXPECT_FALSE(hits_window(r.start, r.last)) << to_hex(r.start) << "-" << to_hex(r.last);
    }
}

TEST(ReservedRangesDomain, CreateTakesTheWindowsOut) {
    DomainFixture f(kUsable48);
    expect_no_window_in_usable(*f.domain);
    EXPECT_TRUE(inside(f.domain->usable_ranges(), 0xfec00000, 0xfedfffff));
    EXPECT_TRUE(inside(f.domain->usable_ranges(), 0x3808'0000'0000, 0xffffffffffff));
}

TEST(ReservedRangesDomain, MapsOfEverySizeAvoidTheWindows) {
    DomainFixture f(kUsable48);
    CpuPage page;
    std::mt19937_64 rng(99);
    std::vector<std::uint64_t> live;
    for (int i = 0; i < 3000; ++i) {
        const std::uint64_t length = (std::uint64_t{1} << (12 + rng() % 19)) - (rng() % 2) * k4K;
        const std::uint64_t mask = rng() % 2 == 0 ? kMask32 : ~std::uint64_t{0};
        auto m = f.domain->map(page.data, std::max(length, k4K), Access::read_write,
                               {.dma_mask = mask});
        if (!m.ok()) {
            ASSERT_EQ(m.error().code(), ENOMEM) << m.error();
            continue;
        }
        ASSERT_FALSE(hits_window(m->iova, m->iova + m->length - 1)) << to_hex(m->iova);
        ASSERT_LE(m->iova + m->length - 1, mask);
        live.push_back(m->iova);
        if (live.size() > 200 || rng() % 3 == 0) {
            const std::size_t victim = rng() % live.size();
            ASSERT_TRUE(f.domain->unmap(live[victim]).ok());
            live.erase(live.begin() + static_cast<long>(victim));
        }
    }
    // The backend saw no map inside a window either.
    for (const auto& op : f.backend->operations()) {
        if (op.kind == TestIommuBackend::Operation::Kind::map) {
            ASSERT_FALSE(hits_window(op.iova, op.iova + op.length - 1)) << to_hex(op.iova);
        }
    }
}

TEST(ReservedRangesDomain, RefreshKeepsTheWindowsReserved) {
    DomainFixture f;
    f.backend->set_usable_ranges({{0, 0xfedfffff}, {0xfef00000, 0x7fffffffff}});
    ASSERT_TRUE(f.domain->refresh().ok());
    expect_no_window_in_usable(*f.domain);
    // Shrinking elsewhere is still applied, and the windows stay out.
    f.backend->set_usable_ranges({{0, 0xfedfffff}, {0xfef00000, 0x3fffffffff}});
    ASSERT_TRUE(f.domain->refresh().ok());
    expect_no_window_in_usable(*f.domain);
    EXPECT_EQ(f.domain->usable_ranges().back().last, 0x3fffffffffu);
    CpuPage page;
    auto m = f.domain->map(page.data, 4 * kMiB, Access::read, {.dma_mask = kMask32});
    ASSERT_TRUE(m.ok()) << m.error();
    EXPECT_FALSE(hits_window(m->iova, m->iova + m->length - 1)) << to_hex(m->iova);
}

TEST(ReservedRangesDomain, BadReservationsAreRefusedAtCreate) {
    auto make = [](std::vector<IovaRange> reserved) {
        DomainConfig config;
        config.reserved = std::move(reserved);
        return IommuDomain::create(std::make_unique<TestIommuBackend>(), config);
    };
    auto backwards = make({{0x2000, 0x1000}});
    ASSERT_FALSE(backwards.ok());
    EXPECT_EQ(backwards.error().code(), EINVAL);
    EXPECT_NE(backwards.error().message().find("DomainConfig::reserved"), std::string::npos);
    auto everything = make({{0, ~std::uint64_t{0}}});
    ASSERT_FALSE(everything.ok());
    EXPECT_EQ(everything.error().code(), EINVAL);
    EXPECT_NE(everything.error().message().find("covers every usable IOVA"), std::string::npos)
        << everything.error();
    // Outside the usable space: harmless.
    EXPECT_TRUE(make({{0x380000000000, 0x3807ffffffff}}).ok());
}

TEST(ReservedRangesDomain, PciWindowsBecomeReservedRanges) {
    const std::vector<pci::MemoryWindow> windows{{0xc0000000, 0xfebfffff, "PCI Bus 0000:00"},
                                                 {0xfebe0000, 0xfebe3fff, "0000:00:04.0 BAR 0"}};
    const std::vector<IovaRange> expected{{0xc0000000, 0xfebfffff}, {0xfebe0000, 0xfebe3fff}};
    EXPECT_EQ(to_iova_ranges(windows), expected);
}

TEST(ReservedRangesDomain, ReservePciWindowsAppendsWhatTheMachineHas) {
    dmakit::testing::FakeSysfs fake;
    fake.add_device({"0000:00:03.0", 0x1b36, 0x0010, 0x010802, "vfio-pci", 3, -1});
    fake.write("bus/pci/devices/0000:00:03.0/resource",
               "0x00000000febe0000 0x00000000febe3fff 0x0000000000140204\n"
               "0x000000000000c000 0x000000000000c03f 0x0000000000040101\n");
    const std::string iomem = fake.root() + "/iomem";
    std::ofstream(iomem) << "c0000000-febfffff : PCI Bus 0000:00\n"
                            "  febe0000-febe3fff : 0000:00:03.0\n"
                            "100000000-8ffffffff : PCI Bus 0000:00\n";
    DomainConfig config;
    config.reserved.push_back({0x1000000, 0x1ffffff});  // the caller's own
    const Logger quiet(LogLevel::error);
    ASSERT_TRUE(reserve_pci_windows(config, {iomem, fake.root()}, quiet).ok());
    const std::vector<IovaRange> expected{{0x1000000, 0x1ffffff},
                                          {0xc0000000, 0xfebfffff},
                                          {0xfebe0000, 0xfebe3fff},
                                          {0x100000000, 0x8ffffffff}};
    EXPECT_EQ(config.reserved, expected);

    auto domain = IommuDomain::create(std::make_unique<TestIommuBackend>(), config);
    ASSERT_TRUE(domain.ok()) << domain.error();
    for (const IovaRange& r : (*domain)->usable_ranges()) {
        for (const IovaRange& w : expected) {
            EXPECT_FALSE(r.start <= w.last && w.start <= r.last) << to_hex(r.start);
        }
    }
    // No PCI bus to read: an error, and the config is left as it was.
    DomainConfig untouched;
    auto failed = reserve_pci_windows(untouched, {iomem, fake.root() + "/nowhere"}, quiet);
    EXPECT_FALSE(failed.ok());
    EXPECT_TRUE(untouched.reserved.empty());
}

}  // namespace reserved_ranges_test
}  // namespace dmakit::iommu
