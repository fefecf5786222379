// Gfp flags on the buddy, slab and kmalloc allocators: an atomic allocation
// never grows the pool (counted at the page source, and with a seccomp
// filter that kills the process on any system call), fails cleanly on an
// empty pool and leaves the pool intact; zero and no_warn.
#include "mem_test_support.hpp"

#include <dmakit/mem/buddy.hpp>
#include <dmakit/mem/gfp.hpp>
#include <dmakit/mem/kmalloc.hpp>
#include <dmakit/mem/slab.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace dmakit::mem {
namespace {

using testing::CapturedLog;
using testing::CountingSource;
using testing::expect_fully_coalesced;
using testing::test_options;

struct Pool {
    CountingSource* source = nullptr;
    std::unique_ptr<BuddyAllocator> buddy;  // declared first: outlives the two below
    std::unique_ptr<SlabCache> cache;
    std::unique_ptr<Kmalloc> kmalloc;
};

// One 4 MiB region at most: an atomic allocation can drain it.
Pool make_pool(const Logger& logger, std::size_t max_managed = std::size_t{4} << 20) {
    BuddyOptions options = test_options(logger);
    options.max_managed = max_managed;
    auto source = std::make_unique<CountingSource>();
    Pool pool;
    pool.source = source.get();
    auto buddy = BuddyAllocator::create(std::move(source), options);
    EXPECT_TRUE(buddy.ok()) << buddy.error();
    pool.buddy = std::move(buddy).value();
    return pool;
}

// A pool with room to grow (so growth would show), a slab cache and kmalloc.
Pool make_pool_with_allocators(const Logger& logger, const char* cache_name, std::size_t size) {
    Pool pool = make_pool(logger, std::size_t{64} << 20);
    pool.cache = SlabCache::create(*pool.buddy, cache_name, size).value();
    pool.kmalloc = Kmalloc::create(*pool.buddy).value();
    return pool;
}

// Fills the pool with one region, then gives it all back.
void warm(BuddyAllocator& buddy) {
    void* page = buddy.alloc_pages(0, gfp_kernel);
    ASSERT_NE(page, nullptr);
    buddy.free_pages(page);
    buddy.drain_thread_cache();
}

TEST(Gfp, AtomicBuddyAllocationNeverGrowsAndFailsCleanlyWhenEmpty) {
    CapturedLog log;
    Pool pool = make_pool(log.logger(), std::size_t{64} << 20);
    BuddyAllocator& buddy = *pool.buddy;

    // Empty pool: an atomic allocation fails without asking the source.
    auto none = buddy.try_alloc_pages(0, gfp_atomic);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code(), ENOMEM);
    EXPECT_NE(none.error().message().find("atomic allocation (no Gfp::may_grow) may not grow"),
              std::string::npos)
        << none.error();
    EXPECT_EQ(pool.source->maps(), 0);
    EXPECT_EQ(buddy.alloc_pages(3, gfp_atomic), nullptr);
    EXPECT_EQ(pool.source->maps(), 0);

    warm(buddy);
    ASSERT_EQ(pool.source->maps(), 1);
    const std::size_t managed = buddy.stats().managed_bytes;

    // Drain the region with atomic allocations of mixed orders.
    std::vector<void*> blocks;
    for (unsigned order : {0u, 3u, 0u, 5u, 1u}) {
        for (;;) {
            void* block = buddy.alloc_pages(order, gfp_atomic | Gfp::no_warn);
            if (block == nullptr) break;
            blocks.push_back(block);
        }
    }
    EXPECT_EQ(pool.source->maps(), 1) << "an atomic allocation grew the pool";
    EXPECT_EQ(buddy.stats().managed_bytes, managed);
    EXPECT_EQ(buddy.stats().free_bytes, 0u);
    for (unsigned order = 0; order <= 3; ++order) {
        auto failed = buddy.try_alloc_pages(order, gfp_atomic);
        ASSERT_FALSE(failed.ok());
        EXPECT_EQ(failed.error().code(), ENOMEM);
    }
    EXPECT_EQ(pool.source->maps(), 1);

    // The pool is intact: everything goes back and coalesces.
    for (void* block : blocks) buddy.free_pages(block);
    buddy.drain_thread_cache();
    EXPECT_EQ(buddy.stats().invalid_frees, 0u);
    EXPECT_EQ(buddy.stats().free_bytes, managed);
    expect_fully_coalesced(buddy);

    // gfp_kernel (the default) still grows.
    void* big = buddy.alloc_pages(10);
    EXPECT_NE(big, nullptr);
    buddy.free_pages(big);
}

TEST(Gfp, NoWarnSilencesTheFailureAndTheDefaultLogsIt) {
    CapturedLog log;
    Pool pool = make_pool(log.logger());
    EXPECT_EQ(pool.buddy->alloc_pages(2, gfp_atomic | Gfp::no_warn), nullptr);
    auto quiet = pool.buddy->try_alloc_pages(2, gfp_atomic | Gfp::no_warn);
    EXPECT_FALSE(quiet.ok());
    EXPECT_TRUE(log.lines().empty()) << log.lines().front();

    EXPECT_EQ(pool.buddy->alloc_pages(2, gfp_atomic), nullptr);
    ASSERT_EQ(log.lines().size(), 1u);
    EXPECT_NE(log.lines()[0].find("page allocator: no free order-2 block"), std::string::npos)
        << log.lines()[0];

    // A gfp_kernel failure (the pool may not grow past max_managed) is logged too.
    void* fill = pool.buddy->alloc_pages(10);
    ASSERT_NE(fill, nullptr);
    EXPECT_EQ(pool.buddy->alloc_pages(10), nullptr);
    EXPECT_EQ(log.count_containing("max_managed"), 1u);
    EXPECT_EQ(pool.buddy->alloc_pages(10, gfp_kernel | Gfp::no_warn), nullptr);
    EXPECT_EQ(log.count_containing("max_managed"), 1u);
    pool.buddy->free_pages(fill);
}

TEST(Gfp, ZeroFlagZeroesPagesSlabObjectsAndKmalloc) {
    CapturedLog log;
    Pool pool = make_pool(log.logger());
    BuddyAllocator& buddy = *pool.buddy;
    // The same page comes back through the page cache: dirty it first.
    for (unsigned order : {0u, 2u}) {
        auto* dirty = static_cast<unsigned char*>(buddy.alloc_pages(order));
        ASSERT_NE(dirty, nullptr);
        std::memset(dirty, 0xab, order_bytes(order));
        buddy.free_pages(dirty);
        auto* clean = static_cast<unsigned char*>(buddy.alloc_pages(order, gfp_kernel | Gfp::zero));
        ASSERT_EQ(clean, dirty) << "the test wants the dirtied block back";
        for (std::size_t i = 0; i < order_bytes(order); ++i) ASSERT_EQ(clean[i], 0) << i;
        buddy.free_pages(clean);
    }

    auto cache = SlabCache::create(buddy, "gfp-zero", 200);
    ASSERT_TRUE(cache.ok());
    auto* object = static_cast<unsigned char*>((*cache)->alloc());
    ASSERT_NE(object, nullptr);
    std::memset(object, 0xcd, 200);
    (*cache)->free(object);
    auto* again = static_cast<unsigned char*>((*cache)->alloc(gfp_atomic | Gfp::zero));
    ASSERT_EQ(again, object);
    for (std::size_t i = 0; i < 200; ++i) ASSERT_EQ(again[i], 0) << i;
    (*cache)->free(again);

    auto kmalloc = Kmalloc::create(buddy);
    ASSERT_TRUE(kmalloc.ok());
    auto* text = static_cast<unsigned char*>((*kmalloc)->kmalloc(100));
    ASSERT_NE(text, nullptr);
    std::memset(text, 0xee, 100);
    (*kmalloc)->kfree(text);
    auto* zeroed = static_cast<unsigned char*>((*kmalloc)->kzalloc(100, gfp_atomic));
    ASSERT_EQ(zeroed, text);
    for (std::size_t i = 0; i < 100; ++i) ASSERT_EQ(zeroed[i], 0) << i;
    (*kmalloc)->kfree(zeroed);
}

TEST(Gfp, AtomicSlabAndKmallocUseOnlyThePoolAndFailCleanly) {
    CapturedLog log;
    Pool pool = make_pool_with_allocators(log.logger(), "gfp-atomic", 512);
    BuddyAllocator& buddy = *pool.buddy;
    SlabCache* cache = pool.cache.get();
    Kmalloc* kmalloc = pool.kmalloc.get();
    warm(buddy);
    ASSERT_EQ(pool.source->maps(), 1);

    // Atomic allocations may make slabs from free buddy pages, never grow.
    std::vector<void*> objects;
    while (void* object = cache->alloc(gfp_atomic | Gfp::no_warn)) objects.push_back(object);
    std::vector<void*> small;
    while (void* object = kmalloc->kmalloc(64, gfp_atomic | Gfp::no_warn)) small.push_back(object);
    EXPECT_GT(objects.size(), 1000u);
    EXPECT_EQ(pool.source->maps(), 1) << "an atomic slab allocation grew the pool";
    EXPECT_TRUE(log.lines().empty());

    auto failed = cache->try_alloc(gfp_atomic);
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.error().code(), ENOMEM);
    EXPECT_NE(failed.error().message().find("slab cache 'gfp-atomic'"), std::string::npos)
        << failed.error();
    EXPECT_EQ(log.count_containing("slab cache 'gfp-atomic'"), 1u);
    auto failed_kmalloc = kmalloc->try_kmalloc(3000, gfp_atomic | Gfp::no_warn);
    EXPECT_FALSE(failed_kmalloc.ok());
    EXPECT_EQ(kmalloc->kmalloc(std::size_t{1} << 20, gfp_atomic | Gfp::no_warn), nullptr);
    EXPECT_EQ(pool.source->maps(), 1);

    // Intact: every object goes back, every slab empties.
    for (void* object : objects) EXPECT_TRUE(cache->try_free(object).ok());
    for (void* object : small) EXPECT_TRUE(kmalloc->try_kfree(object).ok());
    cache->drain_thread_cache();
    kmalloc->drain_thread_caches();
    EXPECT_EQ(cache->info().active_objects, 0u);
    cache->shrink();
    for (std::size_t size : Kmalloc::kClassSizes) kmalloc->cache_for(size).shrink();
    buddy.drain_thread_cache();
    EXPECT_EQ(buddy.stats().free_bytes, buddy.stats().managed_bytes);
    expect_fully_coalesced(buddy);
}

TEST(Gfp, Dma32IsRefusedWhereNoZoneCanSatisfyIt) {
    CapturedLog log;
    Pool pool = make_pool(log.logger());
    // No DMA mapper: no region has a device address, so none is DMA32.
    auto page = pool.buddy->try_alloc_pages(0, gfp_kernel | Gfp::dma32);
    ASSERT_FALSE(page.ok());
    EXPECT_NE(page.error().message().find("no device address"), std::string::npos)
        << page.error();
    EXPECT_EQ(pool.buddy->stats().managed_bytes, 0u) << "the useless region was kept";

    auto kmalloc = Kmalloc::create(*pool.buddy);
    ASSERT_TRUE(kmalloc.ok());
    auto small = (*kmalloc)->try_kmalloc(64, gfp_kernel | Gfp::dma32);
    ASSERT_FALSE(small.ok());
    EXPECT_EQ(small.error().code(), EINVAL);
    EXPECT_NE(small.error().message().find("SlabCacheOptions::page_flags = Gfp::dma32"),
              std::string::npos)
        << small.error();
    EXPECT_EQ((*kmalloc)->kmalloc(64, gfp_kernel | Gfp::dma32), nullptr);

    SlabCacheOptions bad;
    bad.page_flags = Gfp::zero;
    EXPECT_EQ(SlabCache::create(*pool.buddy, "bad-zone", 64, bad).error().code(), EINVAL);
}

// ---- a real system-call counter: seccomp ------------------------------------

// Sanitizer runtimes make system calls of their own in the child (an
// AddressSanitizer build was seen to call sigaltstack, 131, in a child that
// did nothing, and then die of SIGSYS): the seccomp proof runs in the plain
// builds; the counting page source above runs in all.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerRuntime = true;
#else
constexpr bool kSanitizerRuntime = false;
#endif

// Exit status of a child that made a forbidden system call; its number is
// in *trapped_call (shared with the parent).
constexpr int kTrapped = 99;
volatile long* trapped_call = nullptr;

// exit_group itself: sanitizer runtimes wrap _exit with work of their own.
[[noreturn]] void exit_now(int status) {
    ::syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

void on_sigsys(int, siginfo_t* info, void*) {
    *trapped_call = info->si_syscall;
    exit_now(kTrapped);
}

struct ChildResult {
    int status = 0;
    long call = -1;  // the system call that trapped, or -1
};

// Runs `body` in a forked child under a seccomp filter that traps any system
// call but exit/exit_group: the child then exits with kTrapped and the call's
// number. Returns what happened.
template <typename Body>
ChildResult run_without_system_calls(Body&& body) {
    void* shared = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return {-1, -1};
    trapped_call = static_cast<volatile long*>(shared);
    *trapped_call = -1;
    const pid_t pid = ::fork();
    if (pid == 0) {
        struct sigaction action = {};
        action.sa_sigaction = on_sigsys;
        action.sa_flags = SA_SIGINFO;
        if (::sigaction(SIGSYS, &action, nullptr) != 0) exit_now(90);
        struct sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 2, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog program = {static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) exit_now(91);
        if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) exit_now(92);
        exit_now(body());
    }
    ChildResult result;
    ::waitpid(pid, &result.status, 0);
    result.call = *trapped_call;
    ::munmap(shared, 4096);
    return result;
}

TEST(GfpSeccomp, AtomicAllocationsMakeNoSystemCall) {
    if (kSanitizerRuntime) GTEST_SKIP() << "the sanitizer runtime makes system calls of its own";
    CapturedLog log;
    Pool pool = make_pool_with_allocators(log.logger(), "seccomp", 256);
    BuddyAllocator& buddy = *pool.buddy;
    SlabCache* cache = pool.cache.get();
    Kmalloc* kmalloc = pool.kmalloc.get();
    // Warm this thread's caches (their first use allocates bookkeeping).
    cache->free(cache->alloc());
    kmalloc->kfree(kmalloc->kmalloc(64));
    warm(buddy);

    std::vector<void*> pages;
    pages.reserve(4096);  // in the parent: the child's pushes need no heap growth
    const ChildResult child = run_without_system_calls([&]() -> int {
        for (unsigned order : {0u, 1u, 4u}) {
            for (int i = 0; i < 20; ++i) {
                void* page = buddy.alloc_pages(order, gfp_atomic | Gfp::zero);
                if (page == nullptr) return 1;
                pages.push_back(page);
            }
        }
        for (int i = 0; i < 500; ++i) {
            void* object = cache->alloc(gfp_atomic);
            void* small = kmalloc->kmalloc(64, gfp_atomic);
            if (object == nullptr || small == nullptr) return 2;
            pages.push_back(object);
            kmalloc->kfree(small);
        }
        // Drain the pool atomically: every failure is a clean null.
        while (void* page = buddy.alloc_pages(0, gfp_atomic | Gfp::no_warn)) pages.push_back(page);
        if (buddy.alloc_pages(5, gfp_atomic | Gfp::no_warn) != nullptr) return 3;
        return 0;
    });
    ASSERT_TRUE(WIFEXITED(child.status)) << "killed by signal " << WTERMSIG(child.status);
    EXPECT_EQ(child.call, -1) << "an atomic allocation made system call " << child.call;
    EXPECT_EQ(WEXITSTATUS(child.status), 0);
}

TEST(GfpSeccomp, TheFilterCatchesAnAllocationThatGrows) {
    // The counter can fail: a gfp_kernel allocation that must grow the pool
    // (mmap) is trapped.
    if (kSanitizerRuntime) GTEST_SKIP() << "the sanitizer runtime makes system calls of its own";
    CapturedLog log;
    Pool pool = make_pool(log.logger(), std::size_t{64} << 20);
    warm(*pool.buddy);
    const ChildResult child = run_without_system_calls([&]() -> int {
        void* fill = pool.buddy->alloc_pages(10);   // the whole first region
        void* grow = pool.buddy->alloc_pages(10);   // needs a new one
        return fill != nullptr && grow != nullptr ? 0 : 1;
    });
    ASSERT_TRUE(WIFEXITED(child.status));
    EXPECT_EQ(WEXITSTATUS(child.status), kTrapped);
    EXPECT_EQ(child.call, SYS_mmap) << "the growth's first system call is the region's mmap";
}

}  // namespace
}  // namespace dmakit::mem
