// What the inline fast paths of slab.hpp and buddy.hpp need, and nothing more.
//
// Not an API: installed only because SlabCache::alloc/free and
// BuddyAllocator::alloc_pages/free_pages are inlined into the caller (a slab
// alloc + free pair costs a few ns; a call into the library would add to it).
// Names here may change with any release. The rest of the machinery (who owns
// a cache, thread-exit flushes, locks, the page map) is in the library's
// internal headers, which are not installed.
//
// Fast path: each thread has a plain array of free pointers per allocator
// instance (the kernel's per-cpu lists, rte_mempool's per-lcore cache):
// alloc pops, free pushes, no lock and no atomic read-modify-write. The array
// is found through a thread-local, direct-mapped slot table keyed by a unique
// instance id (ids are never reused, so a stale slot can never match).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace dmakit::mem::fast_path {

// Header of a thread's cache; `capacity` pointer slots follow it in the same
// allocation. Only the owning thread changes a cache. It writes `count` with
// relaxed atomic stores (a plain mov on x86) so stats on another thread may read it.
struct alignas(64) ThreadCache {
    std::uint32_t count = 0;
    std::uint32_t capacity = 0;

    [[nodiscard]] void** items() noexcept { return reinterpret_cast<void**>(this + 1); }
    [[nodiscard]] bool empty() const noexcept { return count == 0; }
    [[nodiscard]] bool full() const noexcept { return count >= capacity; }

    [[nodiscard]] void* pop() noexcept {
        const std::uint32_t n = count - 1;
        set_count(n);
        return items()[n];
    }
    void push(void* item) noexcept {
        const std::uint32_t n = count;
        items()[n] = item;
        set_count(n + 1);
    }
    // Two slots per item, for owners that keep a companion pointer with each
    // (slab caches: the object and its allocated byte). Counts stay even.
    [[nodiscard]] void* pop_pair(void** second) noexcept {
        const std::uint32_t n = count - 2;
        set_count(n);
        *second = items()[n + 1];
        return items()[n];
    }
    void push_pair(void* first, void* second) noexcept {
        const std::uint32_t n = count;
        items()[n] = first;
        items()[n + 1] = second;
        set_count(n + 2);
    }
    void set_count(std::uint32_t n) noexcept {
        std::atomic_ref<std::uint32_t>(count).store(n, std::memory_order_relaxed);
    }
    [[nodiscard]] std::uint32_t count_from_other_thread() noexcept {
        return std::atomic_ref<std::uint32_t>(count).load(std::memory_order_relaxed);
    }
};

inline constexpr std::size_t kThreadCacheSlots = 32;

struct ThreadCacheSlot {
    std::uint64_t owner_id;
    ThreadCache* cache;
};

struct ThreadCacheSlots {
    ThreadCacheSlot slots[kThreadCacheSlots];
    // Empty and full at once (capacity 0): what a lookup that misses returns,
    // so the fast path takes its slow branch with no test of its own.
    ThreadCache none;
};

// Constant-initialized and trivially destructible, so accessing it from an
// inline fast path needs no TLS init wrapper; initial-exec keeps it one
// %fs-relative load (libdmakit is linked, not dlopen'ed, by its users).
extern constinit thread_local ThreadCacheSlots tls_thread_cache_slots
    __attribute__((tls_model("initial-exec")));

// Which slot an allocator instance's caches live in. The library hands it out
// (with the instance's id) and fills the slot on the slow path.
struct ThreadCacheKey {
    std::uint64_t id = 0;
    std::uint32_t slot = 0;  // id % kThreadCacheSlots, precomputed

    // The calling thread's cache for this instance, or the `none` cache when
    // the slot holds another instance's (or nothing): the slow path then
    // finds or makes the real one. Never null.
    [[nodiscard]] ThreadCache* find() const noexcept {
        auto& table = tls_thread_cache_slots;
        const ThreadCacheSlot& entry = table.slots[slot];
        if (entry.owner_id == id) [[likely]] return entry.cache;
        return &table.none;
    }
};

// ASan poisoning of objects and pages that sit in a thread cache, so a use
// after free is reported at the faulting access. The inline paths of a
// translation unit built with -fsanitize=address call into the library (which
// poisons only if it was built with ASan too); elsewhere they are empty.
void asan_poison_cached(const void* p, std::size_t n) noexcept;
void asan_unpoison_cached(const void* p, std::size_t n) noexcept;

inline void poison_if_sanitized([[maybe_unused]] const void* p,
                                [[maybe_unused]] std::size_t n) noexcept {
#if defined(__SANITIZE_ADDRESS__)
    asan_poison_cached(p, n);
#endif
}

inline void unpoison_if_sanitized([[maybe_unused]] const void* p,
                                  [[maybe_unused]] std::size_t n) noexcept {
#if defined(__SANITIZE_ADDRESS__)
    asan_unpoison_cached(p, n);
#endif
}

}  // namespace dmakit::mem::fast_path
