#include <dmakit/drivers/nvme/prp.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <vector>

namespace dmakit::nvme {
namespace {

constexpr std::uint64_t kPage = 4096;

// Hands out page-sized host buffers with made-up, page-aligned device
// addresses 0xF0000000, 0xF0001000, ... and checks every page comes back.
class TestPagePool final : public PrpListAllocator {
public:
    explicit TestPagePool(std::size_t limit = 64, std::uint64_t page = kPage) : limit_(limit), page_(page) {}
    ~TestPagePool() override = default;

    Result<PrpListPage> allocate() override {
        if (live_ >= limit_) return Error(ENOMEM, "test pool empty");
        auto& mem = pages_.emplace_back(std::make_unique<std::uint64_t[]>(page_ / 8));
        ++live_;
        return PrpListPage{mem.get(), 0xf0000000u + (pages_.size() - 1) * page_ + misalign_};
    }
    void release(PrpListPage) noexcept override { --live_; }

    [[nodiscard]] std::size_t live() const { return live_; }
    [[nodiscard]] std::size_t handed_out() const { return pages_.size(); }
    [[nodiscard]] const std::uint64_t* page(std::size_t i) const { return pages_[i].get(); }
    std::uint64_t misalign_ = 0;

private:
    std::size_t limit_;
    std::uint64_t page_;
    std::size_t live_ = 0;
    std::vector<std::unique_ptr<std::uint64_t[]>> pages_;
};

Result<PrpChain> build(std::vector<DmaSegment> segs, PrpListAllocator* pool = nullptr,
                       std::uint64_t max = no_transfer_limit) {
    return build_prp(segs, kPage, max, pool);
}

TEST(Prp, OnePage) {
    auto c = build({{0x10000, 4096}}).value();
    EXPECT_EQ(c.data().prp1, 0x10000u);
    EXPECT_EQ(c.data().prp2, 0u);
    // An offset start that stays within its page.
    c = build({{0x10200, 0xe00}}).value();
    EXPECT_EQ(c.data().prp1, 0x10200u);
    EXPECT_EQ(c.data().prp2, 0u);
    EXPECT_TRUE(c.list_pages().empty());
}

TEST(Prp, TwoPages) {
    auto c = build({{0x10000, 8192}}).value();
    EXPECT_EQ(c.data().prp1, 0x10000u);
    EXPECT_EQ(c.data().prp2, 0x11000u);
    // 4 KiB starting at offset 0x200 crosses into a second page.
    c = build({{0x10200, 4096}}).value();
    EXPECT_EQ(c.data().prp1, 0x10200u);
    EXPECT_EQ(c.data().prp2, 0x11000u);
    // Two discontiguous pages.
    c = build({{0x10000, 4096}, {0x80000, 100}}).value();
    EXPECT_EQ(c.data().prp1, 0x10000u);
    EXPECT_EQ(c.data().prp2, 0x80000u);
}

TEST(Prp, ListOfThreeEntries) {
    TestPagePool pool;
    // 0x10800 + 0x2000 ends at 0x12800: pages 0x10000, 0x11000, 0x12000.
    auto c = build({{0x10800, 0x2000}}, &pool).value();
    EXPECT_EQ(c.data().prp1, 0x10800u);
    EXPECT_EQ(c.data().prp2, 0xf0000000u);
    ASSERT_EQ(c.list_pages().size(), 1u);
    EXPECT_EQ(pool.page(0)[0], 0x11000u);
    EXPECT_EQ(pool.page(0)[1], 0x12000u);
    c.reset();
    EXPECT_EQ(pool.live(), 0u);
}

TEST(Prp, ScatteredSegments) {
    TestPagePool pool;
    // first: offset 0xc00 to page end; middle: 2 pages; last: 0x10 bytes.
    auto c = build({{0x7c00, 0x400}, {0x40000, 0x2000}, {0x90000, 0x10}}, &pool).value();
    EXPECT_EQ(c.data().prp1, 0x7c00u);
    EXPECT_EQ(c.data().prp2, 0xf0000000u);
    EXPECT_EQ(pool.page(0)[0], 0x40000u);
    EXPECT_EQ(pool.page(0)[1], 0x41000u);
    EXPECT_EQ(pool.page(0)[2], 0x90000u);
    EXPECT_EQ(prp_shape(std::vector<DmaSegment>{{0x7c00, 0x400}, {0x40000, 0x2000}, {0x90000, 0x10}}, kPage).entries,
              4u);
}

TEST(Prp, ExactlyOneFullListPage) {
    TestPagePool pool;
    // 513 pages: PRP1 + 512 list entries fill one list page with no chain pointer.
    auto c = build({{0x100000, 513 * kPage}}, &pool).value();
    ASSERT_EQ(c.list_pages().size(), 1u);
    for (std::uint64_t i = 0; i < 512; ++i) ASSERT_EQ(pool.page(0)[i], 0x101000u + i * kPage) << i;
}

TEST(Prp, ChainedLists) {
    TestPagePool pool;
    // 514 pages: 513 listed; page A holds 511 entries and a pointer to page B,
    // which holds the last 2.
    auto c = build({{0x100000, 514 * kPage}}, &pool).value();
    ASSERT_EQ(c.list_pages().size(), 2u);
    EXPECT_EQ(c.data().prp1, 0x100000u);
    EXPECT_EQ(c.data().prp2, 0xf0000000u);
    const std::uint64_t* a = pool.page(0);
    const std::uint64_t* b = pool.page(1);
    EXPECT_EQ(a[0], 0x101000u);
    EXPECT_EQ(a[510], 0x101000u + 510 * kPage);  // page index 511 of the transfer
    EXPECT_EQ(a[511], 0xf0001000u);              // chain pointer to list page B
    EXPECT_EQ(b[0], 0x100000u + 512 * kPage);
    EXPECT_EQ(b[1], 0x100000u + 513 * kPage);
    EXPECT_EQ(prp_shape(std::vector<DmaSegment>{{0x100000, 514 * kPage}}, kPage).list_pages, 2u);
}

TEST(Prp, LastListPageUsesAllSlots) {
    TestPagePool pool;
    // Offset start: 0x100010 + 1023 pages touches 1024 pages; 1023 listed =
    // 511 in A (+ chain pointer) and 512 in B, whose last slot is data, not a pointer.
    auto c = build({{0x100010, 1023 * kPage}}, &pool).value();
    ASSERT_EQ(c.list_pages().size(), 2u);
    EXPECT_EQ(c.data().prp1, 0x100010u);
    EXPECT_EQ(pool.page(0)[510], 0x100000u + 511 * kPage);
    EXPECT_EQ(pool.page(0)[511], 0xf0001000u);
    EXPECT_EQ(pool.page(1)[0], 0x100000u + 512 * kPage);
    EXPECT_EQ(pool.page(1)[511], 0x100000u + 1023 * kPage);
    c = PrpChain{};
    EXPECT_EQ(pool.live(), 0u);
}

TEST(Prp, ThreeListPagesWithOffset) {
    TestPagePool pool;
    // One page more: 1024 listed = 511 (A) + 511 (B) + 2 (C).
    auto c = build({{0x100010, 1024 * kPage}}, &pool).value();
    ASSERT_EQ(c.list_pages().size(), 3u);
    EXPECT_EQ(pool.page(0)[511], 0xf0001000u);
    EXPECT_EQ(pool.page(1)[0], 0x100000u + 512 * kPage);
    EXPECT_EQ(pool.page(1)[510], 0x100000u + 1022 * kPage);
    EXPECT_EQ(pool.page(1)[511], 0xf0002000u);
    EXPECT_EQ(pool.page(2)[0], 0x100000u + 1023 * kPage);
    EXPECT_EQ(pool.page(2)[1], 0x100000u + 1024 * kPage);
    EXPECT_EQ(prp_shape(std::vector<DmaSegment>{{0x100010, 1024 * kPage}}, kPage).list_pages, 3u);
}

TEST(Prp, LargerControllerPage) {
    TestPagePool pool(8, 16384);
    // 16 KiB pages: 2048 entries per list page; 3 pages -> 2 listed.
    std::vector<DmaSegment> segs{{0x40000, 3 * 16384}};
    auto c = build_prp(segs, 16384, no_transfer_limit, &pool).value();
    EXPECT_EQ(c.data().prp1, 0x40000u);
    EXPECT_EQ(pool.page(0)[0], 0x44000u);
    EXPECT_EQ(pool.page(0)[1], 0x48000u);
}

TEST(Prp, MoveKeepsOwnership) {
    TestPagePool pool;
    auto c = build({{0x10000, 3 * kPage}}, &pool).value();
    PrpChain moved = std::move(c);
    EXPECT_EQ(pool.live(), 1u);
    EXPECT_TRUE(c.list_pages().empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    moved.reset();
    EXPECT_EQ(pool.live(), 0u);
}

TEST(Prp, RuleViolations) {
    TestPagePool pool;
    // middle segment not page aligned at the start
    EXPECT_EQ(build({{0x10000, 4096}, {0x20010, 4096}}, &pool).error().code(), EINVAL);
    // first segment does not end on a page boundary but is not the last
    auto r = build({{0x10000, 100}, {0x20000, 4096}}, &pool);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("does not end"), std::string::npos) << r.error();
    // first segment offset not dword aligned
    EXPECT_FALSE(build({{0x10002, 100}}).ok());
    // empty segment, empty list, wrap-around
    EXPECT_FALSE(build({{0x10000, 0}}).ok());
    EXPECT_FALSE(build({}).ok());
    EXPECT_FALSE(build({{~0ull - 4095, 8192}}).ok());
    // over MDTS
    r = build({{0x10000, 128 * 1024 + 4096}}, &pool, 128 * 1024);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("MDTS"), std::string::npos);
    EXPECT_TRUE(build({{0x10000, 128 * 1024}}, &pool, 128 * 1024).ok());
    // needs a list but has no allocator
    EXPECT_FALSE(build({{0x10000, 3 * kPage}}).ok());
    // bad page size
    std::vector<DmaSegment> segs{{0x10000, 4096}};
    EXPECT_FALSE(build_prp(segs, 2048, no_transfer_limit, &pool).ok());
    EXPECT_FALSE(build_prp(segs, 6144, no_transfer_limit, &pool).ok());
    EXPECT_EQ(pool.live(), 0u);
}

TEST(Prp, AllocatorFailureReleasesPartialChain) {
    TestPagePool pool(1);  // one page, but the chain needs two
    auto r = build({{0x100000, 514 * kPage}}, &pool);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ENOMEM);
    EXPECT_EQ(pool.handed_out(), 1u);
    EXPECT_EQ(pool.live(), 0u);
}

TEST(Prp, MisalignedListPageIsRejected) {
    TestPagePool pool;
    pool.misalign_ = 8;
    auto r = build({{0x10000, 3 * kPage}}, &pool);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(pool.live(), 0u);
}

}  // namespace
}  // namespace dmakit::nvme
