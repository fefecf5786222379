// ThreadCacheOwner: the library's side of the per-thread caches of one
// allocator instance (fast_path.hpp has the arrays and the inline lookup).
//
// Caches belong to an allocator instance, not to the process, so a thread
// keeps one cache per instance it has used:
//   * the inline fast path looks its cache up by ThreadCacheKey; a miss
//     (first use, or the slot taken by another instance) goes to the slow
//     path, whose local() finds or makes the cache and fills the slot;
//   * when a thread exits, each of its caches is flushed back to its owner,
//     if the owner is still alive (checked under the owner's control mutex);
//   * when an owner is destroyed it only marks itself retired; caches of
//     threads that outlive it are freed, without flushing, when those threads
//     exit or register a new cache.
#pragma once

#include <dmakit/mem/fast_path.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace dmakit::mem {

using fast_path::ThreadCache;

namespace detail {
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

    // What the inline fast paths look their cache up by.
    [[nodiscard]] fast_path::ThreadCacheKey key() const noexcept { return key_; }

    // The calling thread's cache for this owner (made on first use); never
    // null. With caching disabled or impossible (allocation failure, thread
    // exit), the `none` cache, which is both empty and full.
    [[nodiscard]] ThreadCache* local() noexcept {
        ThreadCache* cache = key_.find();
        if (cache->capacity != 0) [[likely]] return cache;
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

    fast_path::ThreadCacheKey key_;
    std::uint32_t capacity_;
    std::shared_ptr<detail::ThreadCacheControl> control_;
};

}  // namespace dmakit::mem
