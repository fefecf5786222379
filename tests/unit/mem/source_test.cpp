// Page sources: the 4 KiB fallback (with its one warning), bad requests, and
// real 2 MiB hugepages when the test can reserve them.
#include "mem_test_support.hpp"

#include <dmakit/mem/hugepage_source.hpp>
#include <dmakit/support/text_file.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace dmakit::mem {
namespace {

using testing::CapturedLog;

// A fake /sys/kernel/mm/hugepages with the given 2 MiB pool counters.
class FakeHugepageSysfs {
public:
    FakeHugepageSysfs(std::size_t total, std::size_t free) {
        char pattern[] = "/tmp/dmakit-hugepages-XXXXXX";
        dir_ = ::mkdtemp(pattern);
        std::filesystem::create_directories(dir_ + "/hugepages-2048kB");
        std::ofstream(dir_ + "/hugepages-2048kB/nr_hugepages") << total << "\n";
        std::ofstream(dir_ + "/hugepages-2048kB/free_hugepages") << free << "\n";
    }
    ~FakeHugepageSysfs() { std::filesystem::remove_all(dir_); }
    [[nodiscard]] const std::string& dir() const { return dir_; }

private:
    std::string dir_;
};

TEST(AnonymousSource, BacksRegionsWithLockedSmallPages) {
    CapturedLog log;
    auto buddy = testing::make_buddy(testing::test_options(log.logger()));
    ASSERT_TRUE(buddy);
    void* block = buddy->alloc_pages(3);
    ASSERT_NE(block, nullptr);
    const Region* region = buddy->region_of(block);
    ASSERT_NE(region, nullptr);
    EXPECT_EQ(region->page_size(), kPageSize);
    EXPECT_EQ(region->contiguous_bytes(), kPageSize);
    EXPECT_FALSE(region->dma_base().has_value()) << "unset until a DMA layer maps it";
    buddy->free_pages(block);
}

TEST(HugepageSource, FallsBackToSmallPagesAndWarnsOnce) {
    CapturedLog log;
    FakeHugepageSysfs sysfs(0, 0);
    HugepageSourceOptions options;
    options.logger = &log.logger();
    options.sysfs_dir = sysfs.dir();
    auto source = HugepageSource::create(options);
    ASSERT_TRUE(source.ok());
    auto owned = std::make_unique<HugepageSource>(std::move(source).value());
    HugepageSource* raw = owned.get();
    BuddyOptions buddy_options = testing::test_options(log.logger());
    auto buddy = BuddyAllocator::create(std::move(owned), buddy_options);
    ASSERT_TRUE(buddy.ok());
    void* a = (*buddy)->alloc_pages(10);
    void* b = (*buddy)->alloc_pages(10);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ((*buddy)->region_of(a)->page_size(), kPageSize);
    EXPECT_EQ(raw->fallback_regions(), 2u);
    EXPECT_EQ(log.count_containing("falling back to 4 KiB pages"), 1u) << "warns once, not per region";
    EXPECT_EQ(log.count_containing("dmakit hugepages --reserve"), 1u);
    EXPECT_EQ(log.count_containing("/proc/sys/vm/nr_hugepages"), 1u);
    (*buddy)->free_pages(a);
    (*buddy)->free_pages(b);
}

TEST(HugepageSource, RequestLargerThanTheReservedPoolFailsWithAHint) {
    CapturedLog log;
    FakeHugepageSysfs sysfs(1, 1);
    HugepageSourceOptions options;
    options.allow_fallback = false;
    options.sysfs_dir = sysfs.dir();
    auto source = HugepageSource::create(options);
    ASSERT_TRUE(source.ok());
    auto buddy = BuddyAllocator::create(std::make_unique<HugepageSource>(std::move(source).value()),
                                        testing::test_options(log.logger()));
    ASSERT_TRUE(buddy.ok());
    auto block = (*buddy)->try_alloc_pages(0);  // needs a 4 MiB region = 2 hugepages
    ASSERT_FALSE(block.ok());
    EXPECT_EQ(block.error().code(), ENOMEM);
    const std::string& message = block.error().message();
    EXPECT_NE(message.find("needs 2 free 2 MiB hugepages, 1 of 1 are free"), std::string::npos) << message;
    EXPECT_NE(message.find("nr_hugepages"), std::string::npos) << message;
    EXPECT_EQ((*buddy)->stats().regions, 0u);
}

TEST(HugepageSource, RejectsUnsupportedPageSizes) {
    HugepageSourceOptions options;
    options.page_size = 4 << 20;
    auto source = HugepageSource::create(options);
    ASSERT_FALSE(source.ok());
    EXPECT_EQ(source.error().code(), EINVAL);
}

// Reserves `pages` free 2 MiB hugepages for the test and restores the
// system's setting afterwards.
class HugepageReservation {
public:
    static constexpr const char* kPath = "/proc/sys/vm/nr_hugepages";

    explicit HugepageReservation(std::size_t pages) {
        auto pool = read_hugepage_pool(kHugePage2M);
        if (!pool.ok()) {
            reason_ = "2 MiB hugepages unavailable: " + dmakit::to_string(pool.error());
            return;
        }
        if (pool->free >= pages) {
            ok_ = true;
            return;
        }
        if (::geteuid() != 0) {
            reason_ = "needs root to reserve " + std::to_string(pages) +
                      " hugepages (only " + std::to_string(pool->free) + " free)";
            return;
        }
        original_ = pool->total;
        const std::size_t wanted = pool->total + pages - pool->free;
        if (!write_text_file(kPath, std::to_string(wanted)).ok()) {
            reason_ = "could not write " + std::string(kPath);
            return;
        }
        restore_ = true;
        auto after = read_hugepage_pool(kHugePage2M);
        ok_ = after.ok() && after->free >= pages;
        if (!ok_) reason_ = "the kernel could not reserve " + std::to_string(pages) + " hugepages";
    }
    ~HugepageReservation() {
        if (restore_) (void)write_text_file(kPath, std::to_string(original_));
    }
    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] const std::string& reason() const { return reason_; }

private:
    bool ok_ = false;
    bool restore_ = false;
    std::size_t original_ = 0;
    std::string reason_;
};

TEST(HugepageSource, Real2MiBHugepages) {
    HugepageReservation reservation(4);
    if (!reservation.ok()) GTEST_SKIP() << reservation.reason();
    CapturedLog log;
    HugepageSourceOptions options;
    options.allow_fallback = false;
    options.logger = &log.logger();
    auto source = HugepageSource::create(options);
    ASSERT_TRUE(source.ok());
    auto buddy = BuddyAllocator::create(std::make_unique<HugepageSource>(std::move(source).value()),
                                        testing::test_options(log.logger()));
    ASSERT_TRUE(buddy.ok());
    auto block = (*buddy)->try_alloc_pages(9);
    ASSERT_TRUE(block.ok()) << block.error();
    const Region* region = (*buddy)->region_of(*block);
    ASSERT_NE(region, nullptr);
    EXPECT_EQ(region->page_size(), kHugePage2M);
    EXPECT_EQ(region->contiguous_bytes(), kHugePage2M);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(*block) % kHugePage2M, 0u);
    std::memset(*block, 0xab, kHugePage2M);
    (*buddy)->free_pages(*block);
    EXPECT_TRUE(log.lines().empty());
    EXPECT_EQ((*buddy)->shrink(), std::size_t{4} << 20);
}

}  // namespace
}  // namespace dmakit::mem
