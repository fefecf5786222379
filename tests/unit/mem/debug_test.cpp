// Slab debug mode: each detection is reported with the cache and object.
#include "mem_test_support.hpp"

#include <dmakit/internal/asan.hpp>  // DMAKIT_MEM_ASAN: which of the tests below apply
#include <dmakit/mem/kmalloc.hpp>
#include <dmakit/mem/slab.hpp>

#include <gtest/gtest.h>

#include <cstring>

namespace dmakit::mem {
namespace {

using testing::CapturedLog;
using testing::make_buddy;
using testing::test_options;

struct DebugFixture : ::testing::Test {
    CapturedLog log;
    std::unique_ptr<BuddyAllocator> buddy = make_buddy(test_options(log.logger()));
    std::vector<DebugReport> reports;

    std::unique_ptr<SlabCache> make_debug_cache(std::size_t size) {
        SlabCacheOptions options;
        options.debug = true;
        options.debug_options.handler = [this](const DebugReport& report) { reports.push_back(report); };
        auto cache = SlabCache::create(*buddy, "dbg-" + std::to_string(size), size, options);
        EXPECT_TRUE(cache.ok());
        return cache.ok() ? std::move(cache).value() : nullptr;
    }
};

TEST_F(DebugFixture, DoubleFreeIsDetected) {
    auto cache = make_debug_cache(48);
    ASSERT_TRUE(cache);
    void* object = cache->alloc();
    ASSERT_NE(object, nullptr);
    cache->free(object);
    EXPECT_TRUE(reports.empty());
    cache->free(object);
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_EQ(reports[0].event, DebugEvent::double_free);
    EXPECT_EQ(reports[0].cache, "dbg-48");
    EXPECT_EQ(reports[0].object, object);
    EXPECT_NE(reports[0].message.find("dbg-48"), std::string::npos);
    EXPECT_EQ(log.count_containing("double free"), 1u) << "detections are logged too";
    EXPECT_EQ(cache->info().active_objects, 0u) << "the second free changed nothing";
}

TEST_F(DebugFixture, InvalidFreeIsDetected) {
    auto cache = make_debug_cache(64);
    ASSERT_TRUE(cache);
    auto* object = static_cast<std::byte*>(cache->alloc());
    cache->free(object + 1);
    int on_stack = 0;
    cache->free(&on_stack);
    ASSERT_EQ(reports.size(), 2u);
    EXPECT_EQ(reports[0].event, DebugEvent::invalid_free);
    EXPECT_NE(reports[0].message.find("start of an object"), std::string::npos);
    EXPECT_EQ(reports[1].event, DebugEvent::invalid_free);
    cache->free(object);
    EXPECT_EQ(reports.size(), 2u);
}

TEST_F(DebugFixture, RedZoneOverwriteIsDetectedOnFree) {
    auto cache = make_debug_cache(40);
    ASSERT_TRUE(cache);
    auto* object = static_cast<unsigned char*>(cache->alloc());
    std::memset(object, 1, 40);  // the whole object is fine
    cache->free(object);
    EXPECT_TRUE(reports.empty());
    object = static_cast<unsigned char*>(cache->alloc());
    object[40] = 0;  // one byte past the end
    cache->free(object);
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_EQ(reports[0].event, DebugEvent::red_zone_overwritten);
    EXPECT_NE(reports[0].message.find("0 bytes after the end of the 40-byte object"), std::string::npos)
        << reports[0].message;
    object = static_cast<unsigned char*>(cache->alloc());
    object[-1] = 0;  // underflow
    cache->free(object);
    ASSERT_EQ(reports.size(), 2u);
    EXPECT_EQ(reports[1].event, DebugEvent::red_zone_overwritten);
    EXPECT_NE(reports[1].message.find("before the object"), std::string::npos);
}

TEST_F(DebugFixture, WriteAfterFreeIsDetectedOnTheNextAlloc) {
#if DMAKIT_MEM_ASAN
    GTEST_SKIP() << "under ASan the write itself is caught (see AsanCatchesUseAfterFree)";
#else
    auto cache = make_debug_cache(64);
    ASSERT_TRUE(cache);
    auto* object = static_cast<unsigned char*>(cache->alloc());
    cache->free(object);
    object[10] = 0;  // deliberate use after free
    auto* again = static_cast<unsigned char*>(cache->alloc());
    ASSERT_EQ(again, object) << "debug caches hand out the lowest free object";
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_EQ(reports[0].event, DebugEvent::modified_after_free);
    EXPECT_NE(reports[0].message.find("byte 10"), std::string::npos);
    cache->free(again);
#endif
}

TEST_F(DebugFixture, AllocatorWideSwitchTurnsDebugOn) {
    CapturedLog other_log;
    BuddyOptions options = test_options(other_log.logger());
    options.slab_debug = true;
    auto debug_buddy = make_buddy(options);
    ASSERT_TRUE(debug_buddy);
    auto kmalloc = Kmalloc::create(*debug_buddy);
    ASSERT_TRUE(kmalloc.ok());
    EXPECT_TRUE((*kmalloc)->cache_for(64).debug());
    SlabCacheOptions opt_out;
    opt_out.debug = false;
    auto plain = SlabCache::create(*debug_buddy, "plain", 64, opt_out);
    ASSERT_TRUE(plain.ok());
    EXPECT_FALSE((*plain)->debug()) << "a cache can opt out";
    EXPECT_FALSE(Kmalloc::create(*buddy).value()->cache_for(64).debug());
}

TEST_F(DebugFixture, ReactionWithoutHandlerCanContinue) {
    SlabCacheOptions options;
    options.debug = true;
    options.debug_options.abort_on_detection = false;
    auto cache = SlabCache::create(*buddy, "noabort", 32, options);
    ASSERT_TRUE(cache.ok());
    void* object = (*cache)->alloc();
    (*cache)->free(object);
    auto again = (*cache)->try_free(object);
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.error().message().find("double free"), std::string::npos);
    EXPECT_EQ(log.count_containing("'noabort': double free"), 1u);
}

using DebugDeathTest = DebugFixture;

TEST_F(DebugDeathTest, DefaultReactionAborts) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    SlabCacheOptions options;
    options.debug = true;
    auto cache = SlabCache::create(*buddy, "fatal", 32, options);
    ASSERT_TRUE(cache.ok());
    void* object = (*cache)->alloc();
    (*cache)->free(object);
    EXPECT_DEATH((*cache)->free(object), "");
}

#if DMAKIT_MEM_ASAN
TEST_F(DebugDeathTest, AsanCatchesUseAfterFree) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    auto cache = SlabCache::create(*buddy, "asan", 64);
    ASSERT_TRUE(cache.ok());
    auto* object = static_cast<volatile unsigned char*>((*cache)->alloc());
    (*cache)->free(const_cast<unsigned char*>(object));
    EXPECT_DEATH(object[3] = 1, "use-after-poison");
}
#endif

}  // namespace
}  // namespace dmakit::mem
