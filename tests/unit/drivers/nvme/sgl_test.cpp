// SGL construction (NVMe 1.4 §4.4) and the PRP/SGL choice, on made-up device
// addresses and host pages, without a controller.
#include <dmakit/drivers/nvme/sgl.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <vector>

namespace dmakit::nvme {
// Named, not anonymous: the unit programs compile as unity files (tests/meson.build),
// where another file's helpers of the same names share the translation unit.
namespace sgl_test {

constexpr std::uint64_t kPage = 4096;
constexpr SglSupport kSgl{true, false, true};

// Page-sized host buffers with device addresses 0xF0000000, 0xF0001000, ...
class TestPagePool final : public PrpListAllocator {
public:
    explicit TestPagePool(std::size_t limit = 64) : limit_(limit) {}
    Result<PrpListPage> allocate() override {
        if (live_ >= limit_) return Error(ENOMEM, "test pool empty");
        auto& mem = pages_.emplace_back(std::make_unique<SglDescriptor[]>(kPage / 16));
        ++live_;
        return PrpListPage{mem.get(), 0xf0000000u + (pages_.size() - 1) * kPage};
    }
    void release(PrpListPage) noexcept override { --live_; }
    [[nodiscard]] std::size_t live() const { return live_; }
    [[nodiscard]] const SglDescriptor* page(std::size_t i) const { return pages_[i].get(); }

private:
    std::size_t limit_;
    std::size_t live_ = 0;
    std::vector<std::unique_ptr<SglDescriptor[]>> pages_;
};

Result<DataChain> build(const std::vector<DmaSegment>& segs, PrpListAllocator* pool = nullptr,
                        SglSupport rules = kSgl, std::uint64_t max = no_transfer_limit) {
    return build_sgl(segs, kPage, max, rules, pool);
}

// n segments of 512 bytes at 0x10000, 0x10400, ... (gaps: PRPs cannot say this).
std::vector<DmaSegment> scattered(std::size_t n) {
    std::vector<DmaSegment> v;
    for (std::size_t i = 0; i < n; ++i) v.push_back({0x10000 + i * 0x400, 512});
    return v;
}

TEST(Sgl, DescriptorLayoutInTheCommand) {
    SglDescriptor d;
    d.addr = 0x1122334455667788ull;
    d.length = 0x1000;
    d.id = 0x30;
    const DataPointer p = sgl1(d);
    EXPECT_EQ(p.prp1, 0x1122334455667788ull);
    EXPECT_EQ(p.prp2, 0x30000000'00001000ull);  // length in bytes 35:32 of the command, id in byte 39
    EXPECT_EQ(sgl1_of(p).type(), sgl_type::last_segment);
    EXPECT_EQ(sgl1_of(p).length, 0x1000u);
}

TEST(Sgl, OneSegmentIsADataBlockInTheCommand) {
    auto c = build({{0x12345, 1000}});  // any start, any length
    ASSERT_TRUE(c.ok()) << c.error();
    EXPECT_TRUE(c->sgl());
    const SglDescriptor d = sgl1_of(c->data());
    EXPECT_EQ(d.type(), sgl_type::data_block);
    EXPECT_EQ(d.addr, 0x12345u);
    EXPECT_EQ(d.length, 1000u);
    EXPECT_TRUE(c->list_pages().empty());
}

TEST(Sgl, SeveralSegmentsGoInOneLastSegment) {
    TestPagePool pool;
    auto c = build(scattered(3), &pool);
    ASSERT_TRUE(c.ok()) << c.error();
    ASSERT_EQ(c->list_pages().size(), 1u);
    const SglDescriptor d = sgl1_of(c->data());
    EXPECT_EQ(d.type(), sgl_type::last_segment);
    EXPECT_EQ(d.addr, 0xf0000000u);
    EXPECT_EQ(d.length, 3u * 16);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(pool.page(0)[i].type(), sgl_type::data_block);
        EXPECT_EQ(pool.page(0)[i].addr, 0x10000u + i * 0x400u);
        EXPECT_EQ(pool.page(0)[i].length, 512u);
    }
}

TEST(Sgl, FullPageHasNoPointer) {
    TestPagePool pool;
    auto c = build(scattered(256), &pool);  // exactly one page of descriptors
    ASSERT_TRUE(c.ok()) << c.error();
    ASSERT_EQ(c->list_pages().size(), 1u);
    EXPECT_EQ(sgl1_of(c->data()).length, 4096u);
    EXPECT_EQ(pool.page(0)[255].type(), sgl_type::data_block);
    EXPECT_EQ(sgl_list_pages(256, kPage), 1u);
}

TEST(Sgl, LongListsChainSegments) {
    TestPagePool pool;
    // 600 descriptors: 255 + pointer, 255 + pointer, 90.
    auto c = build(scattered(600), &pool);
    ASSERT_TRUE(c.ok()) << c.error();
    ASSERT_EQ(c->list_pages().size(), 3u);
    EXPECT_EQ(sgl_list_pages(600, kPage), 3u);
    const SglDescriptor first = sgl1_of(c->data());
    EXPECT_EQ(first.type(), sgl_type::segment);
    EXPECT_EQ(first.length, 4096u);
    const SglDescriptor& a_next = pool.page(0)[255];
    EXPECT_EQ(a_next.type(), sgl_type::segment);
    EXPECT_EQ(a_next.addr, 0xf0001000u);
    EXPECT_EQ(a_next.length, 4096u);
    const SglDescriptor& b_next = pool.page(1)[255];
    EXPECT_EQ(b_next.type(), sgl_type::last_segment);
    EXPECT_EQ(b_next.addr, 0xf0002000u);
    EXPECT_EQ(b_next.length, 90u * 16);
    EXPECT_EQ(pool.page(1)[0].addr, 0x10000u + 255 * 0x400u);
    EXPECT_EQ(pool.page(2)[89].addr, 0x10000u + 599 * 0x400u);
    *c = DataChain{};
    EXPECT_EQ(pool.live(), 0u);
}

TEST(Sgl, BitBucketsSkipBytesOfARead) {
    TestPagePool pool;
    std::vector<SglPiece> pieces{{0x10000, 512, false}, {0, 1024, true}, {0x20000, 512, false}};
    auto c = build_sgl(pieces, kPage, no_transfer_limit, kSgl, &pool);
    ASSERT_TRUE(c.ok()) << c.error();
    EXPECT_EQ(pool.page(0)[1].type(), sgl_type::bit_bucket);
    EXPECT_EQ(pool.page(0)[1].length, 1024u);
    EXPECT_EQ(pool.page(0)[1].addr, 0u);
    // Not offered by the controller: refused with what to do instead.
    auto r = build_sgl(pieces, kPage, no_transfer_limit, SglSupport{true, false, false}, &pool);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ENOTSUP);
    // Only bit buckets moves nothing.
    std::vector<SglPiece> none{{0, 512, true}};
    EXPECT_EQ(build_sgl(none, kPage, no_transfer_limit, kSgl, &pool).error().code(), EINVAL);
    EXPECT_EQ(pool.live(), 1u);  // only the chain's own page
    c->reset();
    EXPECT_EQ(pool.live(), 0u);
}

TEST(Sgl, RuleViolations) {
    TestPagePool pool;
    EXPECT_EQ(build({}, &pool).error().code(), EINVAL);
    EXPECT_EQ(build({{0x1000, 0}}, &pool).error().code(), EINVAL);
    EXPECT_EQ(build({{~0ull - 10, 100}}, &pool).error().code(), EINVAL);
    EXPECT_EQ(build({{0x1000, 1ull << 32}}, &pool).error().code(), EINVAL);  // a descriptor's length is 32 bits
    // Dword alignment when SGLS says 10b.
    const SglSupport aligned{true, true, false};
    EXPECT_EQ(build({{0x1002, 512}}, &pool, aligned).error().code(), EINVAL);
    EXPECT_EQ(build({{0x1000, 510}}, &pool, aligned).error().code(), EINVAL);
    EXPECT_TRUE(build({{0x1004, 512}}, &pool, aligned).ok());
    // Above MDTS.
    auto r = build({{0x1000, 8192}}, &pool, kSgl, 4096);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("MDTS"), std::string::npos);
    // A list without a page source.
    EXPECT_EQ(build(scattered(2)).error().code(), EINVAL);
    // No SGL support at all.
    auto n = build({{0x1000, 512}}, &pool, SglSupport{});
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().code(), ENOTSUP);
    EXPECT_NE(n.error().message().find("SGLS"), std::string::npos);
    EXPECT_EQ(pool.live(), 0u);
}

TEST(Sgl, PageSourceRunningDryReleasesWhatWasTaken) {
    TestPagePool pool(2);
    auto r = build(scattered(600), &pool);  // needs 3 pages
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ENOMEM);
    EXPECT_EQ(pool.live(), 0u);
}

TEST(Sgl, SupportFromIdentify) {
    EXPECT_FALSE(SglSupport::from_sgls(0).supported);
    EXPECT_FALSE(SglSupport::from_sgls(1u << 16).bit_bucket);  // bit bucket without SGLs means nothing
    EXPECT_TRUE(SglSupport::from_sgls(1).supported);
    EXPECT_FALSE(SglSupport::from_sgls(1).dword_aligned);
    EXPECT_TRUE(SglSupport::from_sgls(2).dword_aligned);
    EXPECT_FALSE(SglSupport::from_sgls(3).supported);  // 11b is reserved
    EXPECT_TRUE(SglSupport::from_sgls(1 | 1u << 16).bit_bucket);
}

TEST(Sgl, PolicyChoosesByShape) {
    const std::vector<DmaSegment> one{{0x10000, 65536}};
    const std::vector<DmaSegment> many = scattered(4);
    const std::vector<DmaSegment> odd_start{{0x10002, 512}};
    EXPECT_FALSE(*use_sgl(DataTransfer::automatic, kSgl, one));
    EXPECT_TRUE(*use_sgl(DataTransfer::automatic, kSgl, many));
    EXPECT_TRUE(*use_sgl(DataTransfer::automatic, kSgl, odd_start));
    EXPECT_FALSE(*use_sgl(DataTransfer::automatic, SglSupport{}, many));  // PRP is the fallback
    EXPECT_FALSE(*use_sgl(DataTransfer::automatic, SglSupport{true, true, false}, odd_start));
    EXPECT_FALSE(*use_sgl(DataTransfer::prp, kSgl, many));
    EXPECT_TRUE(*use_sgl(DataTransfer::sgl, kSgl, one));
    auto r = use_sgl(DataTransfer::sgl, SglSupport{}, one);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ENOTSUP);
    EXPECT_NE(r.error().message().find("DataTransfer::prp"), std::string::npos);
}

}  // namespace sgl_test
}  // namespace dmakit::nvme
