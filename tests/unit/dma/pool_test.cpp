#include "dma_test_fixture.hpp"

#include <dmakit/dma/pool.hpp>

#include <cerrno>
#include <set>
#include <vector>

namespace dmakit::dma::testing {
namespace {

using DmaPoolTest = DmaTest;

TEST_F(DmaPoolTest, BlocksNeverCrossTheBoundaryAndTranslate) {
    auto pool = DmaPool::create("prp", *device_, 24, 8, 4096);
    ASSERT_TRUE(pool.ok()) << pool.error().message();
    std::vector<DmaPool::Block> blocks;
    std::set<std::uint64_t> seen;
    for (int i = 0; i < 2000; ++i) {
        auto block = (*pool)->zalloc();
        ASSERT_TRUE(block.ok()) << block.error().message();
        const std::uint64_t start = block->dma.value();
        EXPECT_EQ(start / 4096, (start + 23) / 4096) << "crosses a 4 KiB boundary";
        EXPECT_EQ(start % 8, 0U);
        EXPECT_TRUE(seen.insert(start).second) << "two live blocks at one address";
        EXPECT_EQ(device_view(block->dma, 24), block->cpu);
        blocks.push_back(*block);
    }
    EXPECT_EQ((*pool)->info().active_objects, 2000U);
    for (const auto& block : blocks) ASSERT_TRUE((*pool)->free(block.cpu).ok());
    EXPECT_EQ((*pool)->info().active_objects, 0U);
}

TEST_F(DmaPoolTest, PageSizedPrpListBlocks) {
    auto pool = DmaPool::create("prp-list", *device_, 4096, 4096, 4096);
    ASSERT_TRUE(pool.ok()) << pool.error().message();
    auto block = (*pool)->alloc();
    ASSERT_TRUE(block.ok());
    EXPECT_EQ(block->dma.value() % 4096, 0U);
    ASSERT_TRUE((*pool)->free(block->cpu).ok());
}

TEST_F(DmaPoolTest, BadParametersAndForeignFreesAreRefused) {
    EXPECT_EQ(DmaPool::create("zero", *device_, 0, 8, 0).error().code(), EINVAL);
    EXPECT_EQ(DmaPool::create("align", *device_, 64, 12, 0).error().code(), EINVAL);
    EXPECT_EQ(DmaPool::create("boundary", *device_, 8192, 8, 4096).error().code(), EINVAL);
    auto pool = DmaPool::create("ok", *device_, 64, 64, 0);
    ASSERT_TRUE(pool.ok());
    int on_stack = 0;
    auto status = (*pool)->free(&on_stack);
    ASSERT_FALSE(status.ok());
    EXPECT_NE(status.error().message().find("DMA pool 'ok'"), std::string::npos);
    EXPECT_EQ((*pool)->info().active_objects, 0U);
}

}  // namespace
}  // namespace dmakit::dma::testing
