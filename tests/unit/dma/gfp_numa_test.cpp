// Gfp flags and NUMA placement through the DMA API: atomic alloc_coherent
// and DmaPool never map anything new, DMA32 placement via the pool zone (and
// via the mask under strict), and memory from the device's node on a fake
// two-node machine.
#include "dma_test_fixture.hpp"
#include "../mem/mem_test_support.hpp"

#include <dmakit/dma/pool.hpp>
#include <dmakit/mem/numa.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

namespace dmakit::dma {
namespace {

using mem::Gfp;
using testing::TestContextOptions;
using mem::gfp_atomic;
using mem::gfp_kernel;

constexpr std::uint64_t kFourGiB = std::uint64_t{1} << 32;

std::size_t count_containing(testing::CapturedLog& log, std::string_view text) {
    std::lock_guard lock(log.mutex);
    std::size_t n = 0;
    for (const auto& line : log.lines) n += line.find(text) != std::string::npos;
    return n;
}

class GfpDmaTest : public testing::DmaTest {};

TEST_F(GfpDmaTest, AtomicCoherentAllocationMapsNothingAndFailsCleanlyWhenThePoolIsEmpty) {
    // Empty pool: nothing to take, nothing mapped, the failure logged once.
    auto none = device_->alloc_coherent(4096, gfp_atomic);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code(), ENOMEM);
    EXPECT_EQ(backend_maps(), 0u);
    EXPECT_EQ(count_containing(log_, "alloc_coherent of 4096 bytes"), 1u);
    auto quiet = device_->alloc_coherent(4096, gfp_atomic | Gfp::no_warn);
    EXPECT_FALSE(quiet.ok());
    EXPECT_EQ(count_containing(log_, "alloc_coherent of 4096 bytes"), 1u);

    // One region (mapped once), then only atomic buffers from it.
    { auto warm = device_->alloc_coherent(4096); ASSERT_TRUE(warm.ok()); }
    context_->pages().drain_thread_cache();
    const std::size_t maps = backend_maps();
    ASSERT_EQ(maps, 1u);
    std::vector<CoherentBuffer> buffers;
    for (;;) {
        auto buffer = device_->alloc_coherent(64 * 1024, gfp_atomic | Gfp::no_warn);
        if (!buffer.ok()) {
            EXPECT_EQ(buffer.error().code(), ENOMEM);
            break;
        }
        EXPECT_TRUE(device_can_write(buffer->dma(), buffer->size()));
        buffers.push_back(std::move(buffer).value());
    }
    EXPECT_EQ(buffers.size(), 64u);  // the whole 4 MiB region
    EXPECT_EQ(backend_maps(), maps);

    auto pool = DmaPool::create("atomic", *device_, 512, 0, 4096);
    ASSERT_TRUE(pool.ok());
    auto block = (*pool)->alloc(gfp_atomic | Gfp::no_warn);
    EXPECT_FALSE(block.ok()) << "the pool region is all in coherent buffers";
    EXPECT_EQ(backend_maps(), maps);
    buffers.clear();
    auto now = (*pool)->zalloc(gfp_atomic);
    ASSERT_TRUE(now.ok()) << now.error();
    EXPECT_EQ(backend_maps(), maps);
    EXPECT_TRUE((*pool)->free(now->cpu).ok());
}

// Device address space with room for one 4 MiB region below 4 GiB, and
// plenty above.
TestContextOptions split_address_space() {
    TestContextOptions options;
    options.backend.usable_ranges = {{0x400000, 0x7fffff}, {kFourGiB, 0x7fffffffff}};
    return options;
}

TEST_F(GfpDmaTest, Dma32OnAPoolMappedAboveFourGiBSaysWhatToDoThenGrowsBelow) {
    TestContextOptions options = split_address_space();
    options.context.pool_dma_mask = dma_bit_mask(39);
    make_context(options);
    ASSERT_TRUE(device_->set_mask_and_coherent(dma_bit_mask(39)).ok());
    // A foreign 4 MiB buffer takes the room below 4 GiB, so the pool goes above.
    void* foreign = std::aligned_alloc(4096, 4 << 20);
    ASSERT_NE(foreign, nullptr);
    auto foreign_dma = device_->map_single(foreign, 4 << 20, DmaDirection::to_device);
    ASSERT_TRUE(foreign_dma.ok()) << foreign_dma.error();
    EXPECT_LT(foreign_dma->value(), kFourGiB);
    auto high = device_->alloc_coherent(4096);
    ASSERT_TRUE(high.ok());
    EXPECT_GE(high->dma().value(), kFourGiB);

    // DMA32 with all pool memory above 4 GiB: atomic is refused and says
    // what to do; gfp_kernel finds no room below 4 GiB and says so too.
    const std::size_t maps = backend_maps();
    auto refused = device_->alloc_coherent(4096, gfp_atomic | Gfp::dma32);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), ENOMEM);
    EXPECT_NE(refused.error().message().find("below 4 GiB device address"), std::string::npos)
        << refused.error();
    EXPECT_NE(refused.error().message().find("pool_dma_mask = dma_bit_mask(32)"), std::string::npos)
        << refused.error();
    auto no_room = device_->alloc_coherent(4096, gfp_kernel | Gfp::dma32);
    ASSERT_FALSE(no_room.ok());
    EXPECT_NE(no_room.error().message().find("no free IOVA range of 4194304 bytes below mask 0xffffffff"),
              std::string::npos)
        << no_room.error();
    EXPECT_NE(no_room.error().message().find("unmap what lies there"), std::string::npos);
    EXPECT_EQ(backend_maps(), maps);
    EXPECT_EQ(context_->pages().stats().regions, 1u) << "a failed DMA32 growth kept its region";

    // Room again below 4 GiB: gfp_kernel grows a DMA32 region there.
    EXPECT_TRUE(device_->unmap_single(*foreign_dma, 4 << 20, DmaDirection::to_device).ok());
    std::free(foreign);
    auto low = device_->alloc_coherent(4096, gfp_kernel | Gfp::dma32);
    ASSERT_TRUE(low.ok()) << low.error();
    EXPECT_LT(low->dma().value() + 4096, kFourGiB);
    EXPECT_EQ(backend_maps(), maps + 1);
    auto again = device_->alloc_coherent(8192, gfp_atomic | Gfp::dma32);
    ASSERT_TRUE(again.ok());
    EXPECT_LT(again->dma().value(), kFourGiB);
    // Ordinary allocations keep to the normal zone while it has room.
    auto normal = device_->alloc_coherent(4096, gfp_atomic);
    ASSERT_TRUE(normal.ok());
    EXPECT_GE(normal->dma().value(), kFourGiB);
    EXPECT_NE(context_->pages().format_buddyinfo().find("zone    DMA32"), std::string::npos)
        << context_->pages().format_buddyinfo();

    // DmaPool: a DMA32 pool keeps below 4 GiB; another pool refuses dma32.
    auto pool32 = DmaPool::create("low", *device_, 256, 0, 0, Gfp::dma32);
    ASSERT_TRUE(pool32.ok()) << pool32.error();
    auto block = (*pool32)->alloc(gfp_kernel | Gfp::dma32);
    ASSERT_TRUE(block.ok()) << block.error();
    EXPECT_LT(block->dma.value(), kFourGiB);
    EXPECT_TRUE((*pool32)->free(block->cpu).ok());
    auto plain = DmaPool::create("plain", *device_, 256, 0, 0);
    ASSERT_TRUE(plain.ok());
    auto wrong = (*plain)->alloc(gfp_kernel | Gfp::dma32);
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.error().code(), EINVAL);
    EXPECT_NE(wrong.error().message().find("DmaPool::create(..., Gfp::dma32)"), std::string::npos);
    EXPECT_FALSE(DmaPool::create("odd", *device_, 256, 0, 0, Gfp::zero).ok());
}

TEST_F(GfpDmaTest, StrictPolicyPlacesDma32ByMaskAndRefusesAtomic) {
    TestContextOptions options = split_address_space();
    options.context.policy = IommuPolicy::strict;
    make_context(options);
    ASSERT_TRUE(device_->set_mask_and_coherent(dma_bit_mask(39)).ok());
    // 8 MiB fits only above 4 GiB: DMA32 (the map's mask) cannot have it.
    auto high = device_->alloc_coherent(8 << 20);
    ASSERT_TRUE(high.ok());
    EXPECT_GE(high->dma().value(), kFourGiB);
    auto refused = device_->alloc_coherent(8 << 20, gfp_kernel | Gfp::dma32);
    EXPECT_FALSE(refused.ok());
    auto low = device_->alloc_coherent(4096, gfp_kernel | Gfp::dma32);
    ASSERT_TRUE(low.ok()) << low.error();
    EXPECT_LT(low->dma().value(), kFourGiB);

    const std::size_t maps = backend_maps();
    auto atomic = device_->alloc_coherent(4096, gfp_atomic);
    ASSERT_FALSE(atomic.ok());
    EXPECT_NE(atomic.error().message().find("IommuPolicy::strict"), std::string::npos);
    EXPECT_EQ(backend_maps(), maps);

    // A strict DmaPool maps each new slab: atomic only from mapped slabs.
    auto pool = DmaPool::create("strict", *device_, 512, 0, 4096);
    ASSERT_TRUE(pool.ok());
    auto none = (*pool)->alloc(gfp_atomic);
    ASSERT_FALSE(none.ok());
    EXPECT_NE(none.error().message().find("on_new_slab"), std::string::npos) << none.error();
    EXPECT_EQ(backend_maps(), maps);
    auto first = (*pool)->alloc();
    ASSERT_TRUE(first.ok());
    auto second = (*pool)->alloc(gfp_atomic);
    ASSERT_TRUE(second.ok()) << second.error();
    EXPECT_EQ(backend_maps(), maps + 1);
    EXPECT_TRUE((*pool)->free(first->cpu).ok());
    EXPECT_TRUE((*pool)->free(second->cpu).ok());
}

class NumaDmaTest : public testing::DmaTest {
protected:
    void SetUp() override {
        TestContextOptions options;
        options.context.pages.topology = &topology_;
        options.source = [this] {
            auto source = std::make_unique<mem::testing::CountingSource>();
            source_ = source.get();
            return source;
        };
        make_context(std::move(options));
    }
    [[nodiscard]] int node_of(const void* p) const { return context_->pages().region_of(p)->numa_node(); }

    mem::NumaTopology topology_ = mem::NumaTopology::from_list("0-1").value();
    mem::testing::CountingSource* source_ = nullptr;
};

TEST_F(NumaDmaTest, MemoryComesFromTheDevicesNodeAndTheNodeCanBeOverridden) {
    EXPECT_EQ(device_->numa_node(), -1);  // no sysfs here: no preference
    ASSERT_TRUE(device_->set_numa_node(1).ok());
    auto on1 = device_->alloc_coherent(8192);
    ASSERT_TRUE(on1.ok());
    EXPECT_EQ(node_of(on1->cpu()), 1);
    auto pool = DmaPool::create("node1", *device_, 64, 0, 0);
    ASSERT_TRUE(pool.ok());
    auto block = (*pool)->alloc();
    ASSERT_TRUE(block.ok());
    EXPECT_EQ(node_of(block->cpu), 1);

    ASSERT_TRUE(device_->set_numa_node(0).ok());
    auto on0 = device_->alloc_coherent(8192);
    ASSERT_TRUE(on0.ok());
    EXPECT_EQ(node_of(on0->cpu()), 0);
    EXPECT_EQ(source_->nodes(), (std::vector<int>{1, 0}));

    const std::string info = context_->pages().format_buddyinfo();
    EXPECT_NE(info.find("Node 0, zone    DMA32"), std::string::npos) << info;
    EXPECT_NE(info.find("Node 1, zone    DMA32"), std::string::npos) << info;

    auto bad = device_->set_numa_node(4);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code(), EINVAL);
    EXPECT_EQ(bad.error().message(),
              "0000:00:04.0: NUMA node 4 does not exist; this machine has node(s) 0-1 (pass -1 "
              "for no preference)");
    EXPECT_EQ(device_->numa_node(), 0) << "a refused node changed the device";
    EXPECT_TRUE((*pool)->free(block->cpu).ok());
}

}  // namespace
}  // namespace dmakit::dma
