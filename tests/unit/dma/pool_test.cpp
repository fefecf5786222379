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
    ASSERT_TRUE(pool.ok()) << pool.error();
    std::vector<DmaPool::Block> blocks;
    std::set<std::uint64_t> seen;
    for (int i = 0; i < 2000; ++i) {
        auto block = (*pool)->zalloc();
        ASSERT_TRUE(block.ok()) << block.error();
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
    ASSERT_TRUE(pool.ok()) << pool.error();
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

// Allocates `count` blocks (several slabs' worth) and checks no address comes
// twice, nor any of `held`; frees them.
void expect_distinct_blocks(DmaPool& pool, int count, std::size_t boundary,
                            const std::vector<void*>& held = {}) {
    std::set<void*> seen(held.begin(), held.end());
    std::vector<void*> blocks;
    for (int i = 0; i < count; ++i) {
        auto block = pool.alloc();
        ASSERT_TRUE(block.ok()) << block.error();
        ASSERT_TRUE(seen.insert(block->cpu).second) << "block handed out twice";
        const std::uint64_t start = block->dma.value();
        ASSERT_EQ(start / boundary, (start + pool.block_size() - 1) / boundary)
            << "crosses a " << boundary << "-byte boundary";
        blocks.push_back(block->cpu);
    }
    for (void* cpu : blocks) ASSERT_TRUE(pool.free(cpu).ok());
}

TEST_F(DmaPoolTest, BoundedPoolDoubleFreeIsRefused) {
    // NVMe PRP-list pages: a double free must never give one page to two commands.
    auto pool = DmaPool::create("prp-list", *device_, 4096, 4096, 4096);
    ASSERT_TRUE(pool.ok()) << pool.error();
    ASSERT_FALSE((*pool)->info().debug);
    auto block = (*pool)->alloc();
    ASSERT_TRUE(block.ok());
    ASSERT_TRUE((*pool)->free(block->cpu).ok());
    auto again = (*pool)->free(block->cpu);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code(), EINVAL);
    EXPECT_NE(again.error().message().find("DMA pool 'prp-list'"), std::string::npos);
    EXPECT_NE(again.error().message().find("double free"), std::string::npos);
    EXPECT_EQ((*pool)->invalid_frees(), 1U);

    auto live = (*pool)->alloc();
    ASSERT_TRUE(live.ok());
    auto inside = (*pool)->free(static_cast<std::byte*>(live->cpu) + 512);
    ASSERT_FALSE(inside.ok());
    EXPECT_EQ(inside.error().code(), EINVAL);
    EXPECT_EQ((*pool)->invalid_frees(), 2U);
    EXPECT_EQ((*pool)->info().active_objects, 1U);
    expect_distinct_blocks(**pool, 300, 4096, {live->cpu});
    ASSERT_TRUE((*pool)->free(live->cpu).ok());
    EXPECT_EQ((*pool)->info().active_objects, 0U);
}

TEST_F(DmaPoolTest, DebugBoundedPoolsKeepTheBoundaryAndRefuseBadFrees) {
    TestContextOptions options;
    options.context.pages.slab_debug = true;
    make_context(options);
    struct Shape {
        std::size_t size, align, boundary;
        bool red_zones;
    };
    for (const Shape& shape : {Shape{24, 8, 4096, true}, Shape{4096, 4096, 4096, true},
                               Shape{8192, 8192, 8192, false}}) {
        const std::string name = "dbg-" + std::to_string(shape.size);
        auto pool = DmaPool::create(name, *device_, shape.size, shape.align, shape.boundary);
        ASSERT_TRUE(pool.ok()) << pool.error();
        const mem::SlabInfo info = (*pool)->info();
        EXPECT_TRUE(info.debug) << name;
        EXPECT_EQ(info.stride > info.object_size, shape.red_zones) << name;
        auto block = (*pool)->alloc();
        ASSERT_TRUE(block.ok()) << block.error();
        ASSERT_TRUE((*pool)->free(block->cpu).ok());
        const std::size_t before = log_.lines.size();
        auto again = (*pool)->free(block->cpu);  // reported and refused, not fatal
        ASSERT_FALSE(again.ok()) << name;
        EXPECT_EQ(again.error().code(), EINVAL);
        EXPECT_GT(log_.lines.size(), before) << "the detection is logged";
        EXPECT_EQ((*pool)->invalid_frees(), 1U);
        expect_distinct_blocks(**pool, 100, shape.boundary);
    }
}

}  // namespace
}  // namespace dmakit::dma::testing
