// The tool's hugepage sysfs reader, with a writer that plays a kernel short
// of memory.
#include "hugepages.hpp"

#include "fake_sysfs.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

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
    ASSERT_TRUE(pools.ok()) << pools.error();
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

TEST(Hugepages, ShortReservationIsRolledBack) {
    testing::FakeSysfs fake;
    fake.add_hugepages(2048, 3, 3, 0, 0, {{3, 3}});
    // A kernel short of memory: asked for more than 5 pages it ends up with 5;
    // asked for fewer, it gives what is asked.
    std::vector<std::string> writes;
    HugepageSysfs sysfs(fake.root(), fake.proc_root(), [&](const std::string& path, std::string_view value) -> Status {
        writes.emplace_back(value);
        const std::uint64_t asked = std::stoull(std::string(value));
        std::ofstream(path, std::ios::trunc) << std::min<std::uint64_t>(asked, 5) << "\n";
        return {};
    });
    auto got = sysfs.reserve(2048, std::nullopt, 12);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().code(), ENOMEM);
    EXPECT_EQ(got.error().message().rfind("asked for 12 2M hugepages, the kernel gave 5; put the pool back to 3", 0),
              0u)
        << got.error();
    EXPECT_EQ(writes, (std::vector<std::string>{"12", "3"}));
    EXPECT_EQ(fake.read("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"), "3\n");
    EXPECT_NE(shortfall_message(2048, 1, 12, 5, 3).find("on node 1"), std::string::npos);

    auto fits = sysfs.reserve(2048, std::nullopt, 4);
    ASSERT_TRUE(fits.ok()) << fits.error();
    EXPECT_EQ(*fits, 4u);
}

TEST(Hugepages, ReserveIsBoundedByWhatTheMachineCanSpare) {
    testing::FakeSysfs fake;
    fake.add_hugepages(2048, 10, 10, 0, 0);
    fake.add_hugepages(1048576, 0, 0, 0, 0);
    // 4 GiB total, 1 GiB available: the system keeps max(256 MiB, 128 MiB),
    // so 768 MiB are spare: 384 more 2M pages, none of 1G.
    fake.set_meminfo(4ull << 20, 1ull << 20);
    std::vector<std::string> writes;
    HugepageSysfs sysfs(fake.root(), fake.proc_root(), [&](const std::string& path, std::string_view value) -> Status {
        writes.emplace_back(value);
        std::ofstream(path, std::ios::trunc) << value << "\n";  // a kernel with memory to give
        return {};
    });
    for (std::uint64_t count : {std::uint64_t{395}, UINT64_MAX}) {
        auto got = sysfs.reserve(2048, std::nullopt, count);
        ASSERT_FALSE(got.ok());
        EXPECT_EQ(got.error().code(), ENOMEM);
        EXPECT_NE(got.error().message().find("can spare at most 394 (MemAvailable 1024 MiB, 256 MiB kept for the "
                                             "system); ask for 394 or fewer"),
                  std::string::npos)
            << got.error();
    }
    auto big = sysfs.reserve(1048576, std::nullopt, 1);
    ASSERT_FALSE(big.ok());
    EXPECT_NE(big.error().message().find("at most 0"), std::string::npos) << big.error();
    EXPECT_TRUE(writes.empty()) << "nothing may be written when refusing";
    // Shrinking is always allowed, and the bound itself is.
    EXPECT_TRUE(sysfs.reserve(2048, std::nullopt, 394).ok());
    EXPECT_TRUE(sysfs.reserve(2048, std::nullopt, 0).ok());
    EXPECT_EQ(writes, (std::vector<std::string>{"394", "0"}));
}

TEST(Hugepages, ReserveWithoutMeminfoFails) {
    testing::FakeSysfs fake;
    fake.add_hugepages(2048, 0, 0, 0, 0);
    auto got = HugepageSysfs(fake.root(), "/nonexistent/proc").reserve(2048, std::nullopt, 1);
    ASSERT_FALSE(got.ok());
    EXPECT_NE(got.error().message().find("/nonexistent/proc/meminfo"), std::string::npos) << got.error();
}

TEST(Hugepages, ReserveOnMissingNodeFails) {
    testing::FakeSysfs fake;
    fake.add_hugepages(2048, 0, 0, 0, 0, {{0, 0}});
    auto got = HugepageSysfs(fake.root()).reserve(2048, 3, 1);
    ASSERT_FALSE(got.ok());
    EXPECT_NE(got.error().message().find("not available on NUMA node 3"), std::string::npos)
        << got.error();
}

}  // namespace
}  // namespace dmakit::tool
