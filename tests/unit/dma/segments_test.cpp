#include <dmakit/dma/segments.hpp>

#include <gtest/gtest.h>

#include <random>

namespace dmakit::dma {
namespace {

std::vector<DmaSegment> shape(std::vector<DmaSegment> in, std::size_t max, std::uint64_t boundary) {
    return shape_segments(in, SegmentLimits{max, boundary});
}

TEST(ShapeSegments, MergesContiguousPieces) {
    auto out = shape({{DmaAddr(0x10000), 4096}, {DmaAddr(0x11000), 4096}, {DmaAddr(0x20000), 512}},
                     65536, 0xffffffff);
    ASSERT_EQ(out.size(), 2U);
    EXPECT_EQ(out[0], (DmaSegment{DmaAddr(0x10000), 8192}));
    EXPECT_EQ(out[1], (DmaSegment{DmaAddr(0x20000), 512}));
}

TEST(ShapeSegments, SplitsAtTheMaximumSegmentSize) {
    auto out = shape({{DmaAddr(0x100000), 10000}}, 4096, 0xffffffff);
    ASSERT_EQ(out.size(), 3U);
    EXPECT_EQ(out[0], (DmaSegment{DmaAddr(0x100000), 4096}));
    EXPECT_EQ(out[1], (DmaSegment{DmaAddr(0x101000), 4096}));
    EXPECT_EQ(out[2], (DmaSegment{DmaAddr(0x102000), 1808}));
}

TEST(ShapeSegments, NeverCrossesTheBoundaryEvenWhenContiguous) {
    auto out = shape({{DmaAddr(0xff00), 0x100}, {DmaAddr(0x10000), 0x100}}, 65536, 0xffff);
    ASSERT_EQ(out.size(), 2U) << "contiguous, but the merge would cross 0x10000";
    auto split = shape({{DmaAddr(0xff00), 0x200}}, 65536, 0xffff);
    ASSERT_EQ(split.size(), 2U);
    EXPECT_EQ(split[0], (DmaSegment{DmaAddr(0xff00), 0x100}));
    EXPECT_EQ(split[1], (DmaSegment{DmaAddr(0x10000), 0x100}));
}

TEST(ShapeSegments, RandomInputsKeepBytesOrderAndLimits) {
    std::mt19937_64 rng(42);
    for (int round = 0; round < 500; ++round) {
        std::vector<DmaSegment> in;
        std::uint64_t addr = (rng() % 1024) * 512;
        std::size_t total = 0;
        for (int i = 0; i < 1 + static_cast<int>(rng() % 12); ++i) {
            std::size_t len = 1 + rng() % 20000;
            in.push_back({DmaAddr(addr), len});
            total += len;
            addr += len + ((rng() % 3 == 0) ? 4096 : 0);  // sometimes a gap
        }
        const std::size_t max = 512 + rng() % 16384;
        const std::uint64_t boundary = (std::uint64_t{1} << (12 + rng() % 6)) - 1;
        auto out = shape(in, max, boundary);
        std::size_t out_total = 0;
        std::uint64_t cursor = in.front().addr.value();
        std::size_t piece = 0;
        std::uint64_t piece_left = in[0].length;
        for (const auto& s : out) {
            EXPECT_LE(s.length, max);
            EXPECT_EQ(s.addr.value() / (boundary + 1), (s.addr.value() + s.length - 1) / (boundary + 1));
            // Segments walk the input in order.
            while (piece_left == 0) {
                ++piece;
                cursor = in[piece].addr.value();
                piece_left = in[piece].length;
            }
            EXPECT_EQ(s.addr.value(), cursor);
            std::uint64_t left = s.length;
            while (left > 0) {
                std::uint64_t take = std::min(left, piece_left);
                left -= take;
                piece_left -= take;
                cursor += take;
                if (left > 0) {
                    ++piece;
                    ASSERT_LT(piece, in.size());
                    ASSERT_EQ(in[piece].addr.value(), cursor) << "merged across a gap";
                    piece_left = in[piece].length;
                }
            }
            out_total += s.length;
        }
        EXPECT_EQ(out_total, total);
    }
}

}  // namespace
}  // namespace dmakit::dma
