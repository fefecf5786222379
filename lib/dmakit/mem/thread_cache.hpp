// Per-thread, per-allocator caches of pointers (free pages or free objects).
//
// The fast paths of the page allocator (the kernel's per-cpu page lists) and
// of slab caches (SLUB's per-cpu freelist) pop from and push to a plain array
// owned by the calling thread: no lock, no atomic. Caches belong to an
// allocator instance, not to the process, so a thread keeps one cache per
// instance it has used:
//   * lookup is one thread-local, direct-mapped slot table keyed by a unique
//     instance id (ids are never reused, so a stale slot can never match);
//   * when a thread exits, each of its caches is flushed back to its owner,
//     if the owner is still alive (checked under the owner's control mutex);
//   * when an owner is destroyed it only marks itself retired; caches of
//     threads that outlive it are freed, without flushing, when those threads
//     exit or register a new cache.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace dmakit::mem {

// Header of a cache; `capacity` pointer slots follow it in the same allocation.
// Only the owning thread changes a cache. It writes `count` with relaxed
// atomic stores (a plain mov on x86) so stats() on another thread may read it.
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

namespace detail {

inline constexpr std::size_t kThreadCacheSlots = 32;

struct ThreadCacheSlot {
    std::uint64_t owner_id;
    ThreadCache* cache;
};

struct ThreadCacheSlots {
    ThreadCacheSlot slots[kThreadCacheSlots];
};

// Constant-initialized and trivially destructible, so accessing it from an
// inline fast path needs no TLS init wrapper; initial-exec keeps it one
// %fs-relative load (libdmakit is linked, not dlopen'ed, by its users).
extern constinit thread_local ThreadCacheSlots tls_thread_cache_slots
    __attribute__((tls_model("initial-exec")));

struct ThreadCacheControl;

}  // namespace detail

class ThreadCacheOwner {
public:
    // Called to give a cache's contents back to its owner: when a thread
    // exits, or from flush_local(). Runs with the owner's control mutex held.
    using FlushFn = void (*)(void* owner, ThreadCache& cache) noexcept;

    // capacity 0 disables caching: local() then always returns a cache that is
    // both empty and full, which sends every operation down the slow path.
    ThreadCacheOwner(void* owner, FlushFn flush, std::uint32_t capacity);
    ~ThreadCacheOwner();
    ThreadCacheOwner(const ThreadCacheOwner&) = delete;
    ThreadCacheOwner& operator=(const ThreadCacheOwner&) = delete;

    // The calling thread's cache for this owner; never null.
    [[nodiscard]] ThreadCache* local() noexcept {
        auto& slot = detail::tls_thread_cache_slots.slots[slot_];
        if (slot.owner_id == id_) [[likely]] return slot.cache;
        return local_slow();
    }

    // Flushes the calling thread's cache (if it has one) to the owner.
    void flush_local() noexcept;

    // Stops flushes to the owner; call first thing in the owner's destructor.
    void retire() noexcept;

    [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }

    // Bytes of cache arrays currently allocated for this owner (all threads).
    [[nodiscard]] std::size_t metadata_bytes() const noexcept;

    // Items parked in all threads' caches right now (exact when they are idle).
    [[nodiscard]] std::size_t cached_items() const noexcept;

private:
    [[nodiscard]] ThreadCache* local_slow() noexcept;

    std::uint64_t id_;
    std::uint32_t slot_;  // id_ % kThreadCacheSlots, precomputed for the fast path
    std::uint32_t capacity_;
    std::shared_ptr<detail::ThreadCacheControl> control_;
};

}  // namespace dmakit::mem
