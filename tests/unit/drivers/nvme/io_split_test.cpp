// Splitting a request into commands: chunk size and segment slicing.
#include <dmakit/drivers/nvme/io_split.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

namespace dmakit::nvme {
namespace {

TEST(IoSplit, ChunkIsMdtsInWholePagesAndBlocks) {
    EXPECT_EQ(*split_chunk(512 * 1024, 512, 4096), 512u * 1024);
    EXPECT_EQ(*split_chunk(8192, 4096, 4096), 8192u);
    EXPECT_EQ(*split_chunk(100000, 512, 4096), 98304u);  // a cap that is not a page multiple rounds down
    EXPECT_EQ(split_chunk(8192, 16384, 4096).error().code(), EINVAL);  // a block bigger than the limit
    // No MDTS: NLB's 65536 blocks.
    EXPECT_EQ(*split_chunk(no_transfer_limit, 512, 4096), 65536u * 512);
    EXPECT_EQ(split_chunk(2048, 512, 4096).error().code(), EINVAL);
}

TEST(IoSplit, SlicesCutInsideAndAcrossSegments) {
    const std::vector<DmaSegment> segs{{0x10200, 0xe00}, {0x20000, 0x2000}, {0x40000, 0x1000}};
    std::vector<DmaSegment> out;
    ASSERT_TRUE(slice_segments(segs, 0, 0x1000, out).ok());
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].addr, 0x10200u);
    EXPECT_EQ(out[0].len, 0xe00u);
    EXPECT_EQ(out[1].addr, 0x20000u);
    EXPECT_EQ(out[1].len, 0x200u);
    out.clear();
    ASSERT_TRUE(slice_segments(segs, 0x1000, 0x2e00, out).ok());
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].addr, 0x20200u);  // starts at the buffer's own page offset: still PRP-valid
    EXPECT_EQ(out[0].len, 0x1e00u);
    EXPECT_EQ(out[1].addr, 0x40000u);
    EXPECT_EQ(out[1].len, 0x1000u);
    out.clear();
    EXPECT_EQ(slice_segments(segs, 0x3000, 0x1000, out).error().code(), EINVAL);  // past the end
    EXPECT_EQ(slice_segments(segs, 0, 0, out).error().code(), EINVAL);
}

}  // namespace
}  // namespace dmakit::nvme
