// The tool's hugepage sysfs reader, with a writer that plays a kernel short
// of memory.
#include "hugepages.hpp"

#include "fake_sysfs.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace dmakit::tool {
namespace {

TEST(Hugepages, ParsesAndFormatsSizes) {
    EXPECT_EQ(parse_hugepage_size("2M"), 2048u);
    EXPECT_EQ(parse_hugepage_size("1G"), 1048576u);
    EXPECT_EQ(parse_hugepage_size("4K"), std::nullopt);
    EXPECT_EQ(parse_hugepage_size(""), std::nullopt);
    EXPECT_EQ(format_hugepage_size(2048), "2M");
    EXPECT_EQ(format_hugepage_size(1048576), "1G");
    EXPECT_EQ(format_hugepage_size(64), "64K");
}

TEST(Hugepages, ReadsPoolsAndNodes) {
    testing::FakeSysfs fake;
    fake.add_hugepages(1048576, 2, 1, 0, 0, {{1, 1}, {1, 0}});
    fake.add_hugepages(2048, 512, 500, 3, 1, {{256, 250}, {256, 250}});
    auto pools = HugepageSysfs(fake.root()).read();
    ASSERT_TRUE(pools.ok()) << pools.error().message();
    ASSERT_EQ(pools->size(), 2u);
    const auto& small = (*pools)[0];
    EXPECT_EQ(small.size_kb, 2048u);
    EXPECT_EQ(small.total, 512u);
    EXPECT_EQ(small.free, 500u);
    EXPECT_EQ(small.reserved, 3u);
    EXPECT_EQ(small.surplus, 1u);
    ASSERT_EQ(small.nodes.size(), 2u);
    EXPECT_EQ(small.nodes[1].node, 1);
    EXPECT_EQ(small.nodes[1].total, 256u);
    EXPECT_EQ((*pools)[1].nodes[1].free, 0u);
}

TEST(Hugepages, ReserveReportsWhatTheKernelGave) {
    testing::FakeSysfs fake;
    fake.add_hugepages(2048, 0, 0, 0, 0, {{0, 0}});
    // A kernel short of memory: whatever is asked, it ends up with 5 pages.
    HugepageSysfs sysfs(fake.root(), [](const std::string& path, std::string_view) -> Status {
        std::ofstream(path, std::ios::trunc) << "5\n";
        return {};
    });
    auto got = sysfs.reserve(2048, std::nullopt, 12);
    ASSERT_TRUE(got.ok()) << got.error().message();
    EXPECT_EQ(*got, 5u);
    EXPECT_EQ(shortfall_message(2048, std::nullopt, 12, 5).rfind("asked for 12 2M hugepages, the kernel gave 5", 0),
              0u);
    EXPECT_NE(shortfall_message(2048, 1, 12, 5).find("on node 1"), std::string::npos);
}

TEST(Hugepages, ReserveOnMissingNodeFails) {
    testing::FakeSysfs fake;
    fake.add_hugepages(2048, 0, 0, 0, 0, {{0, 0}});
    auto got = HugepageSysfs(fake.root()).reserve(2048, 3, 1);
    ASSERT_FALSE(got.ok());
    EXPECT_NE(got.error().message().find("not available on NUMA node 3"), std::string::npos)
        << got.error().message();
}

}  // namespace
}  // namespace dmakit::tool
