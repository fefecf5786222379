#include "dma_test_fixture.hpp"

#include <cerrno>
#include <vector>

namespace dmakit::dma::testing {
namespace {

class DmaDebugTest : public DmaTest {
protected:
    void SetUp() override {
        TestContextOptions options;
        options.context.debug = true;
        make_context(options);
        ASSERT_NE(context_->debug(), nullptr);
    }
    [[nodiscard]] std::size_t count(DmaDebug::Problem p) const {
        return context_->debug()->report_count(p);
    }
    [[nodiscard]] bool logged(const std::string& needle) const {
        for (const auto& line : log_.lines) {
            if (line.find(needle) != std::string::npos) return true;
        }
        return false;
    }
    std::vector<unsigned char> heap_ = std::vector<unsigned char>(64 * 1024);
};

TEST_F(DmaDebugTest, CleanUseReportsNothing) {
    auto addr = device_->map_single(heap_.data(), 4096, DmaDirection::from_device);
    ASSERT_TRUE(addr.ok());
    EXPECT_TRUE(device_->sync_single_for_cpu(*addr, 4096, DmaDirection::from_device).ok());
    EXPECT_TRUE(device_->sync_single_for_device(*addr + 1024, 1024, DmaDirection::from_device).ok());
    EXPECT_TRUE(device_->sync_single_range_for_cpu(*addr, 1024, 3072, DmaDirection::from_device).ok());
    ASSERT_TRUE(device_->unmap_single(*addr, 4096, DmaDirection::from_device).ok());
    EXPECT_TRUE(context_->debug()->reports().empty());
    EXPECT_EQ(context_->debug()->live_mappings(), 0U);
}

TEST_F(DmaDebugTest, UnmapOfAnAddressNeverMapped) {
    auto refused = device_->unmap_single(DmaAddr(0x7000000), 4096, DmaDirection::to_device);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), EINVAL);
    EXPECT_EQ(count(DmaDebug::Problem::unmap_never_mapped), 1U);
    EXPECT_TRUE(logged("never mapped"));
}

TEST_F(DmaDebugTest, DoubleUnmap) {
    auto addr = device_->map_single(heap_.data(), 4096, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok());
    ASSERT_TRUE(device_->unmap_single(*addr, 4096, DmaDirection::to_device).ok());
    auto again = device_->unmap_single(*addr, 4096, DmaDirection::to_device);
    ASSERT_FALSE(again.ok()) << "reported and refused";
    EXPECT_EQ(again.error().code(), EINVAL);
    EXPECT_EQ(count(DmaDebug::Problem::double_unmap), 1U);
    EXPECT_EQ(count(DmaDebug::Problem::unmap_never_mapped), 0U);
}

TEST_F(DmaDebugTest, SizeAndDirectionMismatchOnUnmapAreRefusedNamingBothCallSites) {
    auto addr = device_->map_single(heap_.data(), 4096, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok());
    EXPECT_FALSE(device_->unmap_single(*addr, 2048, DmaDirection::to_device).ok());
    EXPECT_EQ(count(DmaDebug::Problem::size_mismatch), 1U);
    EXPECT_FALSE(device_->unmap_single(*addr, 4096, DmaDirection::from_device).ok());
    EXPECT_EQ(count(DmaDebug::Problem::direction_mismatch), 1U);
    auto reports = context_->debug()->reports();
    ASSERT_FALSE(reports.empty());
    EXPECT_NE(reports[0].message.find("debug_test.cpp"), std::string::npos) << reports[0].message;
    EXPECT_NE(reports[0].message.find("made at"), std::string::npos) << reports[0].message;
    EXPECT_TRUE(device_can_read(*addr, 4096)) << "the refused calls left the mapping alone";
    ASSERT_TRUE(device_->unmap_single(*addr, 4096, DmaDirection::to_device).ok());
}

TEST_F(DmaDebugTest, UnmapWithTheWrongCall) {
    auto addr = device_->map_single(heap_.data(), 4096, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok());
    ASSERT_TRUE(device_->unmap_page(*addr, 4096, DmaDirection::to_device).ok());
    EXPECT_EQ(count(DmaDebug::Problem::kind_mismatch), 1U);
}

TEST_F(DmaDebugTest, SyncInTheWrongDirectionAndOutOfRange) {
    auto addr = device_->map_single(heap_.data(), 4096, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok());
    EXPECT_FALSE(device_->sync_single_for_cpu(*addr, 4096, DmaDirection::from_device).ok());
    EXPECT_EQ(count(DmaDebug::Problem::sync_wrong_direction), 1U);
    EXPECT_FALSE(device_->sync_single_for_device(*addr + 2048, 4096, DmaDirection::to_device).ok());
    EXPECT_EQ(count(DmaDebug::Problem::sync_out_of_range), 1U);
    EXPECT_FALSE(device_->sync_single_for_cpu(DmaAddr(0x9000000), 16, DmaDirection::to_device).ok());
    EXPECT_EQ(count(DmaDebug::Problem::sync_never_mapped), 1U);
    ASSERT_TRUE(device_->unmap_single(*addr, 4096, DmaDirection::to_device).ok());
}

TEST_F(DmaDebugTest, BidirectionalMappingAcceptsSyncsBothWays) {
    auto addr = device_->map_single(heap_.data(), 4096, DmaDirection::bidirectional);
    ASSERT_TRUE(addr.ok());
    EXPECT_TRUE(device_->sync_single_for_cpu(*addr, 4096, DmaDirection::from_device).ok());
    EXPECT_TRUE(device_->sync_single_for_device(*addr, 4096, DmaDirection::to_device).ok());
    EXPECT_EQ(count(DmaDebug::Problem::sync_wrong_direction), 0U);
    ASSERT_TRUE(device_->unmap_single(*addr, 4096, DmaDirection::bidirectional).ok());
}

TEST_F(DmaDebugTest, MappingsLiveWhenTheDeviceClosesAreReportedWithTheirCallSite) {
    auto addr = device_->map_single(heap_.data(), 4096, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok());
    auto coherent = device_->alloc_coherent(4096);
    ASSERT_TRUE(coherent.ok());
    coherent->reset();  // freed properly: not a leak
    device_.reset();
    EXPECT_EQ(count(DmaDebug::Problem::leaked_at_close), 1U);
    EXPECT_TRUE(logged("debug_test.cpp"));
    EXPECT_FALSE(device_can_read(*addr, 1)) << "closing the device unmapped what it leaked";
}

TEST_F(DmaDebugTest, OverlappingMappingsAreReportedAndBothKept) {
    auto coherent = device_->alloc_coherent(8192);
    ASSERT_TRUE(coherent.ok());
    auto* cpu = coherent->as<std::byte>();
    auto a = device_->map_single(cpu, 4096, DmaDirection::to_device);
    auto b = device_->map_single(cpu, 4096, DmaDirection::to_device);  // same buffer again
    auto c = device_->map_single(cpu + 2048, 4096, DmaDirection::to_device);
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    EXPECT_EQ(count(DmaDebug::Problem::overlapping_mapping), 2U);
    // Three live records: the second map of one address did not overwrite the first.
    EXPECT_EQ(context_->debug()->live_mappings(), 4U);  // with the coherent buffer
    ASSERT_TRUE(device_->unmap_single(*a, 4096, DmaDirection::to_device).ok());
    ASSERT_TRUE(device_->unmap_single(*b, 4096, DmaDirection::to_device).ok());
    EXPECT_FALSE(device_->unmap_single(*b, 4096, DmaDirection::to_device).ok()) << "a third is one too many";
    ASSERT_TRUE(device_->unmap_single(*c, 4096, DmaDirection::to_device).ok());
    EXPECT_EQ(count(DmaDebug::Problem::double_unmap), 1U);
}

TEST_F(DmaDebugTest, ScatterListEntriesAreTrackedOneByOne) {
    ScatterList list;
    list.add(heap_.data(), 4096);
    list.add(heap_.data() + 4096, 4096);
    auto count_mapped = device_->map_sg(list, DmaDirection::to_device);
    ASSERT_TRUE(count_mapped.ok());
    EXPECT_EQ(context_->debug()->live_mappings(), 2U);
    EXPECT_FALSE(device_->sync_sg_for_cpu(list, DmaDirection::from_device).ok());
    EXPECT_EQ(count(DmaDebug::Problem::sync_wrong_direction), 1U) << "refused at the first entry";
    EXPECT_TRUE(device_->sync_sg_for_cpu(list, DmaDirection::to_device).ok());
    ASSERT_TRUE(device_->unmap_sg(list, DmaDirection::to_device).ok());
    EXPECT_EQ(context_->debug()->live_mappings(), 0U);
}

}  // namespace
}  // namespace dmakit::dma::testing
