// The RAII handles over the raw DMA calls: StreamingMapping (map), 
// MappedScatterList (map of a ScatterList) and PoolBlock (DmaPool::alloc_block).
// The test plays the device through the test backend's translate(): a mapping
// a handle ended must be unreachable, and no handle may unmap or free twice.
#include "dma_test_fixture.hpp"

#include <dmakit/dma/pool.hpp>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

namespace dmakit::dma::testing {
namespace {

using HandlesTest = DmaTest;
using StrictHandlesTest = StrictDmaTest;

constexpr auto from_device = DmaDirection::from_device;
constexpr auto to_device = DmaDirection::to_device;

std::size_t lines_containing(CapturedLog& log, const std::string& needle) {
    std::lock_guard lock(log.mutex);
    return static_cast<std::size_t>(std::count_if(log.lines.begin(), log.lines.end(), [&](const std::string& line) {
        return line.find(needle) != std::string::npos;
    }));
}

// ---- StreamingMapping ------------------------------------------------------

TEST_F(HandlesTest, StreamingMappingIsGoneWhenTheHandleIs) {
    std::vector<unsigned char> heap(16384, 0x11);
    DmaAddr addr;
    {
        auto mapping = device_->map(heap.data() + 100, 5000, from_device);
        ASSERT_TRUE(mapping.ok()) << mapping.error();
        addr = mapping->dma();
        EXPECT_EQ(mapping->size(), 5000U);
        EXPECT_EQ(mapping->direction(), from_device);
        EXPECT_EQ(mapping->cpu(), heap.data() + 100);
        EXPECT_EQ(device_view(addr, 5000, iommu::Access::write), heap.data() + 100);
        EXPECT_EQ(device_->live_mappings(), 1U);
    }
    EXPECT_FALSE(device_can_write(addr, 1)) << "the device still reaches a mapping whose handle is gone";
    EXPECT_FALSE(device_can_read(addr, 1));
    EXPECT_EQ(device_->live_mappings(), 0U);
    EXPECT_EQ(backend_unmaps(), 1U);
    EXPECT_EQ(lines_containing(log_, "could not unmap"), 0U);
}

TEST_F(StrictHandlesTest, PoolMemoryMappingIsGoneWhenTheHandleIs) {
    auto buffer = context_->pages().try_alloc_pages(0);
    ASSERT_TRUE(buffer.ok()) << buffer.error();
    DmaAddr addr;
    {
        auto mapping = device_->map(*buffer, 4096, to_device);
        ASSERT_TRUE(mapping.ok()) << mapping.error();
        addr = mapping->dma();
        EXPECT_TRUE(device_can_read(addr, 4096));
    }
    EXPECT_FALSE(device_can_read(addr, 1));
    context_->pages().free_pages(*buffer);
}

TEST_F(HandlesTest, MovedFromStreamingMappingIsEmptyAndUnmapsNothing) {
    std::vector<unsigned char> heap(16384);
    auto made = device_->map(heap.data(), 4096, from_device);
    ASSERT_TRUE(made.ok()) << made.error();
    StreamingMapping first = std::move(made).value();
    StreamingMapping second = std::move(first);
    EXPECT_FALSE(first.valid());  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(first.size(), 0U);
    EXPECT_TRUE(second.valid());
    const DmaAddr addr = second.dma();

    // Neither unmap nor sync through the empty handle reaches the device.
    auto refused = first.unmap();
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), EINVAL);
    EXPECT_EQ(first.sync_for_cpu().error().code(), EINVAL);
    EXPECT_TRUE(device_can_write(addr, 4096)) << "the moved-to handle's mapping was touched";
    EXPECT_EQ(device_->live_mappings(), 1U);

    // Assigning over a live handle ends that handle's mapping, and only it.
    auto other = device_->map(heap.data() + 8192, 4096, from_device);
    ASSERT_TRUE(other.ok());
    const DmaAddr other_addr = other->dma();
    second = std::move(other).value();
    EXPECT_FALSE(device_can_write(addr, 1)) << "the overwritten handle's mapping survived";
    EXPECT_TRUE(device_can_write(other_addr, 4096));
    EXPECT_EQ(device_->live_mappings(), 1U);
    EXPECT_EQ(backend_unmaps(), 1U);
}

TEST_F(HandlesTest, ExplicitUnmapThenDestructionUnmapsOnce) {
    std::vector<unsigned char> heap(16384);
    auto keep = device_->map_single(heap.data() + 8192, 4096, to_device);  // must survive
    ASSERT_TRUE(keep.ok());
    {
        auto mapping = device_->map(heap.data(), 4096, to_device);
        ASSERT_TRUE(mapping.ok());
        const DmaAddr addr = mapping->dma();
        ASSERT_TRUE(mapping->unmap().ok());
        EXPECT_FALSE(mapping->valid());
        EXPECT_FALSE(device_can_read(addr, 1));
        EXPECT_EQ(backend_unmaps(), 1U);
        auto again = mapping->unmap();
        ASSERT_FALSE(again.ok()) << "a second unmap through the handle was accepted";
        EXPECT_EQ(again.error().code(), EINVAL);
    }
    EXPECT_EQ(backend_unmaps(), 1U) << "the destructor unmapped again";
    EXPECT_EQ(device_->live_mappings(), 1U);
    EXPECT_TRUE(device_can_read(*keep, 4096));
    EXPECT_EQ(lines_containing(log_, "could not unmap"), 0U);
    ASSERT_TRUE(device_->unmap_single(*keep, 4096, to_device).ok());
}

TEST_F(HandlesTest, MappingUnmappedBehindTheHandlesBackIsLoggedNotUnmappedTwice) {
    std::vector<unsigned char> heap(16384);
    auto keep = device_->map_single(heap.data() + 8192, 4096, to_device);
    ASSERT_TRUE(keep.ok());
    {
        auto mapping = device_->map(heap.data(), 4096, to_device);
        ASSERT_TRUE(mapping.ok());
        ASSERT_TRUE(device_->unmap_single(mapping->dma(), 4096, to_device).ok());
    }
    EXPECT_EQ(lines_containing(log_, "could not unmap"), 1U);
    EXPECT_EQ(lines_containing(log_, "[EINVAL]"), 1U);
    EXPECT_EQ(lines_containing(log_, "handles_test.cpp"), 1U) << "the warning names where map() was called";
    EXPECT_EQ(backend_unmaps(), 1U);
    EXPECT_TRUE(device_can_read(*keep, 4096)) << "the refused unmap changed another mapping";
    ASSERT_TRUE(device_->unmap_single(*keep, 4096, to_device).ok());
}

TEST_F(HandlesTest, ReleasedStreamingMappingStaysMappedForTheRawUnmap) {
    std::vector<unsigned char> heap(16384);
    StreamingMapping::Raw raw;
    {
        auto mapping = device_->map(heap.data() + 12, 3000, from_device);
        ASSERT_TRUE(mapping.ok());
        raw = mapping->release();
        EXPECT_FALSE(mapping->valid());
    }
    EXPECT_EQ(raw.length, 3000U);
    EXPECT_EQ(raw.dir, from_device);
    EXPECT_TRUE(device_can_write(raw.addr, 3000)) << "release() unmapped";
    ASSERT_TRUE(device_->unmap_single(raw.addr, raw.length, raw.dir).ok());
    EXPECT_FALSE(device_can_write(raw.addr, 1));
}

TEST_F(HandlesTest, StreamingMappingSyncsReachTheDevicesChecks) {
    std::vector<unsigned char> heap(16384);
    auto mapping = device_->map(heap.data(), 8192, from_device);
    ASSERT_TRUE(mapping.ok());
    EXPECT_TRUE(mapping->sync_for_cpu().ok());
    EXPECT_TRUE(mapping->sync_for_device().ok());
    EXPECT_TRUE(mapping->sync_range_for_cpu(4096, 4096).ok());
    EXPECT_TRUE(mapping->sync_range_for_device(0, 1).ok());
    // Past the end: the device's own range check refuses it.
    auto past = mapping->sync_range_for_cpu(4096, 4097);
    ASSERT_FALSE(past.ok());
    EXPECT_EQ(past.error().code(), EINVAL);
    EXPECT_NE(past.error().message().find("sync_for_cpu"), std::string::npos) << past.error();
    // Unmapped behind its back: the device no longer knows the address.
    ASSERT_TRUE(device_->unmap_single(mapping->dma(), 8192, from_device).ok());
    EXPECT_EQ(mapping->sync_for_device().error().code(), EINVAL);
    (void)mapping->release();
}

TEST_F(HandlesTest, FailedMapGivesAnErrorNotAHandle) {
    auto mapping = device_->map(nullptr, 0, to_device);
    ASSERT_FALSE(mapping.ok());
    EXPECT_EQ(mapping.error().code(), EINVAL);
    EXPECT_EQ(device_->live_mappings(), 0U);
}

// ---- MappedScatterList -----------------------------------------------------

TEST_F(HandlesTest, MappedScatterListOwnsTheListAndUnmapsItWhenGone) {
    std::vector<unsigned char> heap(64 * 1024);
    std::vector<DmaAddr> addrs;
    {
        ScatterList list;
        list.add(heap.data(), 4096);
        list.add(heap.data() + 16384, 8192);
        auto mapped = device_->map(std::move(list), from_device);
        ASSERT_TRUE(mapped.ok()) << mapped.error();
        EXPECT_EQ(mapped->entries().size(), 2U);
        ASSERT_FALSE(mapped->segments().empty());
        // Entries can merge into one segment across two IOMMU mappings, which
        // translate() does not cross: probe each segment's first and last byte.
        for (const DmaSegment& segment : mapped->segments()) {
            addrs.push_back(segment.addr);
            addrs.push_back(segment.addr + (segment.length - 1));
        }
        for (DmaAddr addr : addrs) EXPECT_TRUE(device_can_write(addr, 1));
        EXPECT_EQ(device_->live_mappings(), 2U);
        EXPECT_TRUE(mapped->sync_for_cpu().ok());
        EXPECT_TRUE(mapped->sync_for_device().ok());

        MappedScatterList moved = std::move(mapped).value();
        EXPECT_TRUE(moved.valid());
    }
    for (DmaAddr addr : addrs) EXPECT_FALSE(device_can_write(addr, 1));
    EXPECT_EQ(device_->live_mappings(), 0U);
    EXPECT_EQ(backend_unmaps(), 2U) << "one unmap per entry, exactly once";
    EXPECT_EQ(lines_containing(log_, "could not unmap"), 0U);
}

TEST_F(HandlesTest, FailedScatterListMapLeavesTheListWithTheCaller) {
    std::vector<unsigned char> heap(16384);
    ScatterList list;
    list.add(heap.data(), 4096);
    list.add(heap.data() + 8192, 0);  // refused: zero length
    auto mapped = device_->map(std::move(list), to_device);
    ASSERT_FALSE(mapped.ok());
    EXPECT_EQ(list.entries().size(), 2U) << "the list was taken by a failed map";  // NOLINT(bugprone-use-after-move)
    EXPECT_FALSE(list.mapped());
    EXPECT_EQ(device_->live_mappings(), 0U);
}

TEST_F(HandlesTest, MappedScatterListExplicitUnmapAndRelease) {
    std::vector<unsigned char> heap(64 * 1024);
    ScatterList list;
    list.add(heap.data(), 4096);
    auto mapped = device_->map(std::move(list), to_device);
    ASSERT_TRUE(mapped.ok());
    const DmaAddr addr = mapped->segments()[0].addr;
    ASSERT_TRUE(mapped->unmap().ok());
    EXPECT_FALSE(device_can_read(addr, 1));
    EXPECT_EQ(mapped->unmap().error().code(), EINVAL);
    EXPECT_EQ(mapped->sync_for_cpu().error().code(), EINVAL);
    mapped = MappedScatterList();
    EXPECT_EQ(backend_unmaps(), 1U);

    ScatterList second;
    second.add(heap.data() + 32768, 4096);
    auto again = device_->map(std::move(second), to_device);
    ASSERT_TRUE(again.ok());
    ScatterList back = again->release();
    EXPECT_FALSE(again->valid());
    ASSERT_TRUE(back.mapped());
    EXPECT_TRUE(device_can_read(back.segments()[0].addr, 4096));
    ASSERT_TRUE(device_->unmap_sg(back, to_device).ok());
    EXPECT_EQ(backend_unmaps(), 2U);
}

// ---- PoolBlock -------------------------------------------------------------

TEST_F(HandlesTest, PoolBlockGoesBackToItsPool) {
    auto pool = DmaPool::create("blocks", *device_, 256, 64, 4096);
    ASSERT_TRUE(pool.ok()) << pool.error();
    {
        auto block = (*pool)->zalloc_block();
        ASSERT_TRUE(block.ok()) << block.error();
        EXPECT_EQ(block->size(), 256U);
        EXPECT_EQ(device_view(block->dma(), 256), block->cpu());
        auto bytes = block->bytes();
        EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; }));
        EXPECT_EQ((*pool)->info().active_objects, 1U);

        PoolBlock moved = std::move(block).value();
        PoolBlock target;
        target = std::move(moved);
        EXPECT_FALSE(moved.valid());  // NOLINT(bugprone-use-after-move)
        EXPECT_EQ(moved.size(), 0U);
        EXPECT_EQ((*pool)->info().active_objects, 1U);
    }
    EXPECT_EQ((*pool)->info().active_objects, 0U) << "the block was not returned";
    EXPECT_EQ((*pool)->invalid_frees(), 0U) << "a block was freed twice";
}

TEST_F(HandlesTest, PoolBlockExplicitFreeThenDestructionFreesOnce) {
    auto pool = DmaPool::create("blocks", *device_, 64, 8, 0);
    ASSERT_TRUE(pool.ok());
    {
        auto block = (*pool)->alloc_block();
        ASSERT_TRUE(block.ok());
        ASSERT_TRUE(block->free().ok());
        EXPECT_EQ((*pool)->info().active_objects, 0U);
        EXPECT_EQ(block->free().error().code(), EINVAL);
    }
    EXPECT_EQ((*pool)->invalid_frees(), 0U) << "the destructor freed again";
    EXPECT_EQ(lines_containing(log_, "PoolBlock"), 0U);

    void* raw = nullptr;
    {
        auto block = (*pool)->alloc_block();
        ASSERT_TRUE(block.ok());
        raw = block->release();
    }
    EXPECT_EQ((*pool)->info().active_objects, 1U) << "release() freed";
    ASSERT_TRUE((*pool)->free(raw).ok());
}

TEST_F(HandlesTest, PoolBlockFreedBehindItsBackIsLoggedAndRefused) {
    auto pool = DmaPool::create("blocks", *device_, 64, 8, 0);
    ASSERT_TRUE(pool.ok());
    auto keep = (*pool)->alloc_block();
    ASSERT_TRUE(keep.ok());
    {
        auto block = (*pool)->alloc_block();
        ASSERT_TRUE(block.ok());
        ASSERT_TRUE((*pool)->free(block->cpu()).ok());
    }
    EXPECT_EQ(lines_containing(log_, "its destructor could not free: DMA pool 'blocks'"), 1U);
    EXPECT_EQ((*pool)->invalid_frees(), 1U);
    EXPECT_EQ((*pool)->info().active_objects, 1U) << "the refused free changed the other block";
}

}  // namespace
}  // namespace dmakit::dma::testing
