// Leak tracking in the DMA layer: coherent buffers, DmaPool blocks and
// streaming mappings (IOVA ranges) record their call sites.
#include "dma_test_fixture.hpp"

#include <dmakit/dma/pool.hpp>
#include <dmakit/mem/leak_tracker.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace dmakit::dma::testing {
namespace {

class DmaLeakTest : public DmaTest {
protected:
    void SetUp() override {
        TestContextOptions options;
        options.context.pages.leak_check = true;
        make_context(options);
        ASSERT_NE(context_->leak_tracker(), nullptr);
    }
    [[nodiscard]] mem::LeakReport report() const { return context_->leak_tracker()->report_leaks(); }
};

TEST_F(DmaLeakTest, CoherentBuffersArePagesRecordedAsCoherent) {
    auto buffer = device_->alloc_coherent(6000); const std::uint32_t line = __LINE__;
    ASSERT_TRUE(buffer.ok()) << buffer.error();
    const mem::LeakReport live = report();
    ASSERT_EQ(live.sites.size(), 1U);
    EXPECT_EQ(live.sites[0].kind, mem::AllocKind::dma_coherent);
    EXPECT_EQ(live.sites[0].line, line);
    EXPECT_EQ(live.sites[0].bytes, 8192U);
    buffer = Error(EINVAL, "dropped");  // frees the buffer
    EXPECT_TRUE(report().empty());
}

TEST_F(DmaLeakTest, PoolBlocksAreRecordedAsDmaPool) {
    auto pool = DmaPool::create("prp", *device_, 64, 64, 4096).value();
    auto block = pool->alloc(); const std::uint32_t line = __LINE__;
    ASSERT_TRUE(block.ok());
    const mem::LeakReport live = report();
    ASSERT_EQ(live.sites.size(), 1U);
    EXPECT_EQ(live.sites[0].kind, mem::AllocKind::dma_pool);
    EXPECT_EQ(live.sites[0].owner, "dma-prp");
    EXPECT_EQ(live.sites[0].line, line);
    ASSERT_TRUE(pool->free(block->cpu).ok());
    EXPECT_TRUE(report().empty());
}

TEST_F(DmaLeakTest, StreamingMappingsAreIovaAllocations) {
    std::vector<std::byte> foreign(3 * 4096);
    auto addr = device_->map_single(foreign.data(), 5000, DmaDirection::to_device);
    const std::uint32_t single_line = __LINE__ - 1;
    ASSERT_TRUE(addr.ok()) << addr.error();
    ScatterList list;
    list.add(foreign.data(), 100);
    list.add(foreign.data() + 8192, 200);
    auto mapped = device_->map_sg(list, DmaDirection::from_device); const std::uint32_t sg_line = __LINE__;
    ASSERT_TRUE(mapped.ok()) << mapped.error();

    const mem::LeakReport live = report();
    EXPECT_EQ(live.count, 3U);
    ASSERT_EQ(live.sites.size(), 2U);
    EXPECT_EQ(live.sites[0].kind, mem::AllocKind::dma_map);
    EXPECT_EQ(live.sites[0].line, single_line);
    EXPECT_EQ(live.sites[0].bytes, 5000U);
    EXPECT_EQ(live.sites[0].owner, device_->name());
    EXPECT_EQ(live.sites[1].line, sg_line);
    EXPECT_EQ(live.sites[1].count, 2U);
    EXPECT_EQ(live.sites[1].bytes, 300U);

    // A refused unmap changes nothing in the records.
    EXPECT_FALSE(device_->unmap_single(*addr, 4999, DmaDirection::to_device).ok());
    EXPECT_EQ(report().count, 3U);
    ASSERT_TRUE(device_->unmap_single(*addr, 5000, DmaDirection::to_device).ok());
    ASSERT_TRUE(device_->unmap_sg(list, DmaDirection::from_device).ok());
    EXPECT_TRUE(report().empty());
}

TEST_F(DmaLeakTest, MappingsLeftAtDeviceCloseStayInTheReportAsReleased) {
    std::vector<std::byte> foreign(4096);
    auto addr = device_->map_single(foreign.data(), 64, DmaDirection::bidirectional);
    ASSERT_TRUE(addr.ok());
    device_.reset();
    const mem::LeakReport live = report();
    ASSERT_EQ(live.sites.size(), 1U);
    EXPECT_EQ(live.sites[0].kind, mem::AllocKind::dma_map);
    EXPECT_EQ(live.sites[0].released, 1U);
}

}  // namespace
}  // namespace dmakit::dma::testing
