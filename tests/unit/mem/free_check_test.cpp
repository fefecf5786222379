// Frees are checked in every build: a double free, a free of a pointer inside
// an object or of a slot never handed out is refused, counted and logged with
// the cache name, and no object is ever handed to two owners afterwards.
// These caches run with debug off (the release configuration); the thread
// caches are on, so the lock-free fast path is what is exercised.
#include "mem_test_support.hpp"

#include <dmakit/mem/kmalloc.hpp>
#include <dmakit/mem/slab.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <set>
#include <thread>
#include <vector>

namespace dmakit::mem {
namespace {

using testing::CapturedLog;
using testing::make_buddy;
using testing::test_options;

// One 4 MiB region and no more, so "allocate everything" ends.
struct FreeCheckFixture : ::testing::Test {
    CapturedLog log;
    std::unique_ptr<BuddyAllocator> buddy = [this] {
        BuddyOptions options = test_options(log.logger());
        options.max_managed = options.region_size;
        return make_buddy(options);
    }();

    std::unique_ptr<SlabCache> make_cache(std::size_t size, SlabCacheOptions options = {}) {
        options.debug = false;
        auto cache = SlabCache::create(*buddy, "chk-" + std::to_string(size), size,
                                       std::move(options));
        EXPECT_TRUE(cache.ok()) << (cache.ok() ? "" : dmakit::to_string(cache.error()));
        return cache.ok() ? std::move(cache).value() : nullptr;
    }
};

// Allocates until memory runs out, checks no object came twice (nor any of
// `held`, still owned by the test), frees them all.
void expect_every_object_once(SlabCache& cache, const std::vector<void*>& held = {}) {
    std::set<void*> seen(held.begin(), held.end());
    std::vector<void*> objects;
    while (void* object = cache.alloc()) {
        ASSERT_TRUE(seen.insert(object).second) << "object " << object << " handed out twice";
        objects.push_back(object);
    }
    EXPECT_GT(objects.size(), 100u);
    for (void* object : objects) ASSERT_TRUE(cache.try_free(object).ok());
}

TEST_F(FreeCheckFixture, DoubleFreeOnTheFastPathIsRefused) {
    auto cache = make_cache(64);
    ASSERT_TRUE(cache);
    ASSERT_FALSE(cache->debug());
    void* object = cache->alloc();
    ASSERT_NE(object, nullptr);
    cache->free(object);
    const std::size_t active = cache->info().active_objects;
    cache->free(object);  // would sit in the thread cache twice without the check
    EXPECT_EQ(cache->invalid_frees(), 1u);
    EXPECT_EQ(log.count_containing("slab cache 'chk-64': double free of"), 1u);
    auto again = cache->try_free(object);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code(), EINVAL);
    EXPECT_NE(again.error().message().find("chk-64"), std::string::npos);
    EXPECT_NE(again.error().message().find("not allocated"), std::string::npos);
    EXPECT_EQ(cache->invalid_frees(), 2u);
    EXPECT_EQ(cache->info().active_objects, active) << "the refusals changed nothing";
    expect_every_object_once(*cache);
}

TEST_F(FreeCheckFixture, DoubleFreeAfterTheObjectWentBackToItsSlabIsRefused) {
    auto cache = make_cache(256);
    ASSERT_TRUE(cache);
    void* object = cache->alloc();
    ASSERT_NE(object, nullptr);
    cache->free(object);
    cache->drain_thread_cache();  // now free in the slab's bitmap, not in a thread cache
    cache->free(object);
    EXPECT_EQ(cache->invalid_frees(), 1u);
    EXPECT_EQ(cache->info().active_objects, 0u);
    expect_every_object_once(*cache);
}

TEST_F(FreeCheckFixture, FreeOfAPointerInsideAnObjectIsRefused) {
    auto cache = make_cache(64);
    ASSERT_TRUE(cache);
    auto* object = static_cast<std::byte*>(cache->alloc());
    ASSERT_NE(object, nullptr);
    cache->free(object + 8);
    EXPECT_EQ(cache->invalid_frees(), 1u);
    auto status = cache->try_free(object + 63);
    ASSERT_FALSE(status.ok());
    EXPECT_NE(status.error().message().find("start of an object"), std::string::npos);
    EXPECT_EQ(cache->invalid_frees(), 2u);
    // The object is still allocated: the test owns it, nobody else gets it.
    expect_every_object_once(*cache, {object});
    ASSERT_TRUE(cache->try_free(object).ok());
    EXPECT_FALSE(cache->try_free(object).ok());
}

TEST_F(FreeCheckFixture, FreeOfASlotNeverHandedOutIsRefused) {
    auto cache = make_cache(64);
    ASSERT_TRUE(cache);
    void* object = cache->alloc();
    ASSERT_NE(object, nullptr);
    // The last slot of the object's slab: free, in the slab or a thread cache.
    const std::byte* base = cache->slab_base_of(object);
    ASSERT_NE(base, nullptr);
    auto* last = const_cast<std::byte*>(base) + (cache->objects_per_slab() - 1) * cache->stride();
    ASSERT_NE(static_cast<void*>(last), object);
    cache->free(last);
    EXPECT_EQ(cache->invalid_frees(), 1u);
    auto status = cache->try_free(last);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), EINVAL);
    EXPECT_EQ(cache->info().active_objects, 1u);
    expect_every_object_once(*cache, {object});
    cache->free(object);
    EXPECT_EQ(cache->invalid_frees(), 2u);
}

TEST_F(FreeCheckFixture, FreeOfTheSlotPastTheLastIsRefused) {
    SlabCacheOptions options;
    options.align = 32;
    auto cache = make_cache(96, options);
    ASSERT_TRUE(cache);
    void* object = cache->alloc();
    ASSERT_NE(object, nullptr);
    // A 96-byte stride leaves a tail in the slab where one more slot would start.
    const std::size_t past = cache->objects_per_slab() * cache->stride();
    ASSERT_LT(past, cache->slab_bytes());
    auto* tail = const_cast<std::byte*>(cache->slab_base_of(object)) + past;
    cache->free(tail);
    EXPECT_EQ(cache->invalid_frees(), 1u);
    EXPECT_EQ(log.count_containing("start of an object"), 1u);
    expect_every_object_once(*cache, {object});
    cache->free(object);
}

TEST_F(FreeCheckFixture, CrossThreadDoubleFreeIsRefused) {
    auto cache = make_cache(128);
    ASSERT_TRUE(cache);
    void* object = cache->alloc();
    ASSERT_NE(object, nullptr);
    // Freed on another thread than the one that allocated it, then again on
    // this one and on a third thread.
    std::thread([&] { cache->free(object); }).join();
    cache->free(object);
    std::thread([&] { cache->free(object); }).join();
    EXPECT_EQ(cache->invalid_frees(), 2u);
    // And the other way round: allocated on a thread, freed twice here.
    void* theirs = nullptr;
    std::thread([&] { theirs = cache->alloc(); }).join();
    ASSERT_NE(theirs, nullptr);
    cache->free(theirs);
    cache->free(theirs);
    EXPECT_EQ(cache->invalid_frees(), 3u);
    expect_every_object_once(*cache);
}

TEST_F(FreeCheckFixture, RacingTryFreesOfOneObjectLetExactlyOneWin) {
    auto cache = make_cache(64);
    ASSERT_TRUE(cache);
    for (int round = 0; round < 200; ++round) {
        void* object = cache->alloc();
        ASSERT_NE(object, nullptr);
        std::atomic<int> ready{0};
        std::atomic<int> accepted{0};
        auto free_it = [&] {
            ready.fetch_add(1);
            while (ready.load() < 2) {
            }
            if (cache->try_free(object).ok()) accepted.fetch_add(1);
        };
        std::thread other(free_it);
        free_it();
        other.join();
        ASSERT_EQ(accepted.load(), 1) << "round " << round;
    }
    EXPECT_EQ(cache->invalid_frees(), 200u);
    expect_every_object_once(*cache);
}

TEST_F(FreeCheckFixture, KmallocDoubleFreeIsRefused) {
    KmallocOptions options;
    options.debug = false;
    auto kmalloc = Kmalloc::create(*buddy, options);
    ASSERT_TRUE(kmalloc.ok());
    Kmalloc& km = **kmalloc;
    void* object = km.kmalloc(100);  // kmalloc-128
    ASSERT_NE(object, nullptr);
    km.kfree(object);
    km.kfree(object);
    SlabCache& cache = km.cache_for(100);
    EXPECT_EQ(cache.invalid_frees(), 1u);
    EXPECT_EQ(log.count_containing("slab cache 'kmalloc-128': double free of"), 1u);
    auto status = km.try_kfree(object);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), EINVAL);
    EXPECT_EQ(cache.invalid_frees(), 2u);
    EXPECT_EQ(cache.info().active_objects, 0u);
    expect_every_object_once(cache);
}

// ---- slab lifecycle hooks ---------------------------------------------------

struct HookLog {
    struct Call {
        void* base;
        std::size_t bytes;
        std::uint64_t tag;
    };
    std::vector<Call> created;
    std::vector<Call> released;
    std::uint64_t next_tag = 0x1000'0000;
};

SlabCacheOptions hooked(HookLog& hooks) {
    SlabCacheOptions options;
    options.max_empty_slabs = 0;
    options.on_new_slab = [&hooks](void* base, std::size_t bytes) -> Result<std::uint64_t> {
        const std::uint64_t tag = hooks.next_tag;
        hooks.next_tag += 0x100'0000;
        hooks.created.push_back({base, bytes, tag});
        return tag;
    };
    options.on_release_slab = [&hooks](void* base, std::size_t bytes, std::uint64_t tag) {
        hooks.released.push_back({base, bytes, tag});
    };
    return options;
}

TEST_F(FreeCheckFixture, SlabHooksRunOncePerSlabWithItsTag) {
    HookLog hooks;
    auto cache = make_cache(512, hooked(hooks));
    ASSERT_TRUE(cache);
    const std::size_t per_slab = cache->objects_per_slab();
    std::vector<void*> objects;
    for (std::size_t i = 0; i < per_slab * 3; ++i) objects.push_back(cache->alloc());
    ASSERT_EQ(hooks.created.size(), 3u);
    std::set<void*> bases;
    for (const auto& call : hooks.created) {
        EXPECT_EQ(call.bytes, cache->slab_bytes());
        bases.insert(call.base);
    }
    EXPECT_EQ(bases.size(), 3u);
    for (void* object : objects) {
        ASSERT_NE(object, nullptr);
        const std::byte* base = cache->slab_base_of(object);
        ASSERT_NE(base, nullptr);
        const auto tag = cache->slab_tag_of(static_cast<std::byte*>(object) + 17);
        ASSERT_TRUE(tag.has_value());
        bool found = false;
        for (const auto& call : hooks.created) {
            if (call.base == base) {
                EXPECT_EQ(*tag, call.tag);
                found = true;
            }
        }
        EXPECT_TRUE(found) << "slab_base_of names a slab the hook saw";
    }
    int on_stack = 0;
    EXPECT_FALSE(cache->slab_tag_of(&on_stack).has_value());
    EXPECT_EQ(cache->slab_base_of(&on_stack), nullptr);
    auto other = make_cache(64);
    void* foreign = other->alloc();
    EXPECT_FALSE(cache->slab_tag_of(foreign).has_value()) << "a slab of another cache";
    other->free(foreign);

    // Emptying the first slab (max_empty_slabs 0) releases it with its tag.
    const std::byte* first_base = cache->slab_base_of(objects[0]);
    for (void* object : objects) {
        if (cache->slab_base_of(object) == first_base) cache->free(object);
    }
    cache->drain_thread_cache();
    ASSERT_EQ(hooks.released.size(), 1u);
    EXPECT_EQ(hooks.released[0].base, first_base);
    for (const auto& call : hooks.created) {
        if (call.base == first_base) {
            EXPECT_EQ(hooks.released[0].tag, call.tag);
        }
    }
    EXPECT_EQ(hooks.released[0].bytes, cache->slab_bytes());

    // The destructor releases the rest, each once, with the tag it was given.
    cache.reset();
    ASSERT_EQ(hooks.released.size(), 3u);
    for (const auto& created : hooks.created) {
        int matches = 0;
        for (const auto& released : hooks.released) {
            if (released.base == created.base) {
                EXPECT_EQ(released.tag, created.tag);
                ++matches;
            }
        }
        EXPECT_EQ(matches, 1) << "released once";
    }
    other.reset();
    buddy->drain_thread_cache();
    EXPECT_EQ(buddy->stats().allocated_bytes, 0u);
}

TEST_F(FreeCheckFixture, FailingNewSlabHookFailsTheAllocationCleanly) {
    bool refuse = true;
    int releases = 0;
    SlabCacheOptions options;
    options.on_new_slab = [&](void*, std::size_t) -> Result<std::uint64_t> {
        if (refuse) return Error(ENOSPC, "no IOVA space left");
        return std::uint64_t{42};
    };
    options.on_release_slab = [&](void*, std::size_t, std::uint64_t) { ++releases; };
    auto cache = make_cache(64, std::move(options));
    ASSERT_TRUE(cache);
    EXPECT_EQ(cache->alloc(), nullptr);
    auto failed = cache->try_alloc();
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.error().code(), ENOSPC);
    EXPECT_NE(failed.error().message().find("no IOVA space left"), std::string::npos);
    EXPECT_NE(failed.error().message().find("chk-64"), std::string::npos);
    EXPECT_EQ(cache->info().slabs, 0u);
    buddy->drain_thread_cache();
    EXPECT_EQ(buddy->stats().allocated_bytes, 0u) << "the pages went back";
    EXPECT_EQ(releases, 0) << "a refused slab is never released";

    refuse = false;
    void* object = cache->alloc();
    ASSERT_NE(object, nullptr);
    EXPECT_EQ(cache->slab_tag_of(object), std::optional<std::uint64_t>(42));
    cache->free(object);
    cache.reset();
    EXPECT_EQ(releases, 1);
}

}  // namespace
}  // namespace dmakit::mem
