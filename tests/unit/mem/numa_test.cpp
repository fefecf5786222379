// NUMA: the node list parser, and the buddy allocator's per-node free lists
// on an injected two-node topology (the host may have one node; the page
// source pretends to place memory where it is asked).
#include "mem_test_support.hpp"

#include <dmakit/mem/buddy.hpp>
#include <dmakit/mem/numa.hpp>
#include <dmakit/mem/slab.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace dmakit::mem {
namespace {

using testing::CapturedLog;
using testing::CountingSource;
using testing::test_options;

TEST(NumaTopology, ParsesTheKernelsNodeLists) {
    auto one = NumaTopology::from_list("0");
    ASSERT_TRUE(one.ok());
    EXPECT_FALSE(one->multi_node());
    auto mixed = NumaTopology::from_list("0-1,3");
    ASSERT_TRUE(mixed.ok()) << mixed.error();
    EXPECT_EQ(mixed->nodes(), (std::vector<int>{0, 1, 3}));
    EXPECT_TRUE(mixed->multi_node());
    EXPECT_EQ(mixed->to_string(), "0-1,3");
    for (const char* bad : {"", "a", "2-1", "0-", "-1", "0,,1", "0-99"}) {
        auto parsed = NumaTopology::from_list(bad);
        EXPECT_FALSE(parsed.ok()) << bad;
        if (!parsed.ok()) {
            EXPECT_EQ(parsed.error().code(), EINVAL) << bad;
        }
    }
    auto missing = mixed->check_node(2, "test");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().message(),
              "test: NUMA node 2 does not exist; this machine has node(s) 0-1,3 (pass -1 for no "
              "preference)");
    EXPECT_TRUE(mixed->check_node(-1, "test").ok());
}

TEST(NumaTopology, ReadsAFakeSysfsAndTreatsAMissingFileAsOneNode) {
    const std::filesystem::path root =
        std::filesystem::temp_directory_path() / ("dmakit-numa-" + std::to_string(::getpid()));
    std::filesystem::create_directories(root / "devices/system/node");
    auto none = NumaTopology::from_sysfs(root.string());
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none->nodes(), std::vector<int>{0});
    std::ofstream(root / "devices/system/node/online") << "0-1\n";
    auto two = NumaTopology::from_sysfs(root.string());
    ASSERT_TRUE(two.ok()) << two.error();
    EXPECT_EQ(two->nodes(), (std::vector<int>{0, 1}));
    std::ofstream(root / "devices/system/node/online") << "zero\n";
    auto bad = NumaTopology::from_sysfs(root.string());
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message().find("devices/system/node/online"), std::string::npos);
    std::filesystem::remove_all(root);
}

struct TwoNodes {
    CapturedLog log;
    NumaTopology topology = NumaTopology::from_list("0-1").value();
    CountingSource* source = nullptr;
    std::unique_ptr<BuddyAllocator> buddy;

    explicit TwoNodes(std::size_t max_managed = 0) {
        BuddyOptions options = test_options(log.logger());
        options.topology = &topology;
        options.max_managed = max_managed;
        auto owned = std::make_unique<CountingSource>();
        source = owned.get();
        buddy = BuddyAllocator::create(std::move(owned), options).value();
    }
    [[nodiscard]] int node_of(const void* p) const { return buddy->region_of(p)->numa_node(); }
};

TEST(NumaBuddy, AllocationsComeFromTheAskedNodeAndBuddyinfoReportsPerNode) {
    TwoNodes machine;
    BuddyAllocator& buddy = *machine.buddy;
    auto on1 = buddy.try_alloc_pages(0, gfp_kernel, 1);
    ASSERT_TRUE(on1.ok()) << on1.error();
    EXPECT_EQ(machine.node_of(*on1), 1);
    auto on0 = buddy.try_alloc_pages(2, gfp_kernel, 0);
    ASSERT_TRUE(on0.ok());
    EXPECT_EQ(machine.node_of(*on0), 0);
    EXPECT_EQ(machine.source->nodes(), (std::vector<int>{1, 0}));
    // Node 1 still has free memory: no growth for a second node-1 block.
    auto again1 = buddy.try_alloc_pages(3, gfp_kernel, 1);
    ASSERT_TRUE(again1.ok());
    EXPECT_EQ(machine.node_of(*again1), 1);
    EXPECT_EQ(machine.source->maps(), 2);

    const std::string info = buddy.format_buddyinfo();
    EXPECT_NE(info.find("Node 0, zone   Normal"), std::string::npos) << info;
    EXPECT_NE(info.find("Node 1, zone   Normal"), std::string::npos) << info;
    EXPECT_LT(info.find("Node 0,"), info.find("Node 1,")) << info;
    int node1_regions = 0;
    for (const RegionBuddyInfo& region : buddy.buddyinfo()) node1_regions += region.numa_node == 1;
    EXPECT_EQ(node1_regions, 1);

    buddy.free_pages(*on1);
    buddy.free_pages(*on0);
    buddy.free_pages(*again1);
    buddy.drain_thread_cache();
    testing::expect_fully_coalesced(buddy);
}

TEST(NumaBuddy, AtomicFallsBackToAnotherNodeAndGrowthPrefersTheAskedOne) {
    TwoNodes machine;
    BuddyAllocator& buddy = *machine.buddy;
    void* first = buddy.try_alloc_pages(0, gfp_kernel, 0).value();  // one region, node 0
    // Atomic for node 1: node 1 has nothing, node 0 has free blocks.
    auto atomic = buddy.try_alloc_pages(1, gfp_atomic, 1);
    ASSERT_TRUE(atomic.ok()) << atomic.error();
    EXPECT_EQ(machine.node_of(*atomic), 0);
    EXPECT_EQ(machine.source->maps(), 1);
    // With leave to grow, node 1 gets its own region instead.
    auto grown = buddy.try_alloc_pages(1, gfp_kernel, 1);
    ASSERT_TRUE(grown.ok());
    EXPECT_EQ(machine.node_of(*grown), 1);
    EXPECT_EQ(machine.source->maps(), 2);
    // No preference (-1): any node, no growth while memory is free.
    auto any = buddy.try_alloc_pages(4);
    ASSERT_TRUE(any.ok());
    EXPECT_EQ(machine.source->maps(), 2);
    for (void* p : {first, *atomic, *grown, *any}) buddy.free_pages(p);
}

TEST(NumaBuddy, GrowthFailureOnTheNodeFallsBackToFreeMemoryElsewhere) {
    TwoNodes machine(std::size_t{4} << 20);  // room for one region only
    BuddyAllocator& buddy = *machine.buddy;
    void* first = buddy.try_alloc_pages(0, gfp_kernel, 0).value();
    auto elsewhere = buddy.try_alloc_pages(0, gfp_kernel, 1);
    ASSERT_TRUE(elsewhere.ok()) << elsewhere.error();
    EXPECT_EQ(machine.node_of(*elsewhere), 0);
    buddy.free_pages(first);
    buddy.free_pages(*elsewhere);
}

TEST(NumaBuddy, ANodeThatDoesNotExistIsRefusedAndChangesNothing) {
    TwoNodes machine;
    auto bad = machine.buddy->try_alloc_pages(0, gfp_kernel, 2);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code(), EINVAL);
    EXPECT_NE(bad.error().message().find("NUMA node 2 does not exist; this machine has node(s) 0-1"),
              std::string::npos)
        << bad.error();
    EXPECT_EQ(machine.source->maps(), 0);
    EXPECT_EQ(machine.log.count_containing("NUMA node 2"), 1u);

    SlabCacheOptions options;
    options.numa_node = 7;
    auto cache = SlabCache::create(*machine.buddy, "far", 64, options);
    ASSERT_FALSE(cache.ok());
    EXPECT_NE(cache.error().message().find("slab cache 'far': NUMA node 7 does not exist"),
              std::string::npos);

    // One node: node 1 does not exist either, node 0 is fine and asks the
    // source for no binding (nothing to choose from).
    CapturedLog log;
    NumaTopology single;
    BuddyOptions one = test_options(log.logger());
    one.topology = &single;
    auto owned = std::make_unique<CountingSource>();
    CountingSource* source = owned.get();
    auto buddy = BuddyAllocator::create(std::move(owned), one).value();
    EXPECT_FALSE(buddy->try_alloc_pages(0, gfp_kernel, 1).ok());
    auto on0 = buddy->try_alloc_pages(0, gfp_kernel, 0);
    ASSERT_TRUE(on0.ok());
    EXPECT_EQ(source->nodes(), std::vector<int>{-1});
    EXPECT_NE(buddy->format_buddyinfo().find("Node 0, zone   Normal"), std::string::npos)
        << buddy->format_buddyinfo();
    buddy->free_pages(*on0);
}

TEST(NumaBuddy, SlabCachesTakeTheirSlabsFromTheirNode) {
    TwoNodes machine;
    SlabCacheOptions options;
    options.numa_node = 1;
    auto cache = SlabCache::create(*machine.buddy, "node1", 128, options);
    ASSERT_TRUE(cache.ok()) << cache.error();
    std::vector<void*> objects;
    for (int i = 0; i < 2000; ++i) objects.push_back((*cache)->alloc());
    for (void* object : objects) {
        ASSERT_NE(object, nullptr);
        ASSERT_EQ(machine.node_of(object), 1);
    }
    for (void* object : objects) (*cache)->free(object);
}

}  // namespace
}  // namespace dmakit::mem
