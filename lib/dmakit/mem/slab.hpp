// SlabCache: fixed-size objects carved from buddy pages (kmem_cache_create).
//
// A slab is a block of 2^order pages holding objects_per_slab() objects.
// Which objects are free is a bitmap in the slab's descriptor, kept outside
// the slab (SLUB threads its freelist through the objects; we cannot, since a
// device may write them). Every page of a slab points to the descriptor, so
// free() finds it from the object address in O(1).
//
// Fast path: each thread has its own array of free objects per cache (like
// SLUB's per-cpu freelist or rte_mempool's per-lcore cache): alloc pops, free
// pushes, no lock and no atomic. Misses move a batch between the array and
// the slabs under the cache's lock. An object may be freed on any thread.
// Slabs sit on partial/full/empty lists; beyond max_empty_slabs, empty slabs
// go back to the buddy allocator.
//
// Debug mode (per cache, or BuddyOptions::slab_debug for all) bypasses the
// thread arrays so every free is checked: double free, invalid free, red-zone
// overwrite, write after free. See debug.hpp.
#pragma once

#include <dmakit/mem/asan.hpp>
#include <dmakit/mem/buddy.hpp>
#include <dmakit/mem/debug.hpp>
#include <dmakit/mem/page.hpp>
#include <dmakit/mem/spin_lock.hpp>
#include <dmakit/mem/stats.hpp>
#include <dmakit/mem/thread_cache.hpp>
#include <dmakit/support/result.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace dmakit::mem {

class SlabCache;

// Out-of-band descriptor of one slab; a bitmap of free objects follows it.
class Slab {
public:
    std::byte* base;        // first object slot
    SlabCache* cache;
    Slab* prev;             // links in the cache's partial/full/empty list
    Slab* next;
    std::uint32_t in_use;   // objects out of the slab (with callers or in thread caches)
    std::uint8_t list;      // which list it is on

    [[nodiscard]] std::uint64_t* free_bits() noexcept {
        return reinterpret_cast<std::uint64_t*>(this + 1);
    }
};

struct SlabCacheOptions {
    // Object alignment, a power of two up to 4096.
    std::size_t align = 8;
    // Runs once per object when its slab is created, as kmem_cache_create's
    // ctor: freed objects must be returned in the constructed state.
    std::function<void(void*)> ctor;
    // Debug mode; unset follows BuddyOptions::slab_debug.
    std::optional<bool> debug;
    DebugOptions debug_options;
    // Empty slabs kept for reuse before they go back to the buddy allocator.
    std::uint32_t max_empty_slabs = 2;
    // Objects per thread cache; 0 chooses by object size.
    std::uint32_t thread_cache_size = 0;
};

class SlabCache {
public:
    // Fails with EINVAL for a zero size, a bad alignment or an object too big
    // for a slab (use the page allocator for those).
    [[nodiscard]] static Result<std::unique_ptr<SlabCache>> create(BuddyAllocator& buddy,
                                                                  std::string name,
                                                                  std::size_t object_size,
                                                                  SlabCacheOptions options = {});
    // Gives every slab back to the buddy allocator, which must outlive it.
    ~SlabCache();
    SlabCache(const SlabCache&) = delete;
    SlabCache& operator=(const SlabCache&) = delete;

    // An object, or null when memory is exhausted (try_alloc says why).
    [[nodiscard]] void* alloc() noexcept;
    [[nodiscard]] Result<void*> try_alloc();

    // Returns an object. A pointer that is not an object of this cache is
    // refused: logged and counted (debug mode: reported as a detection);
    // try_free returns the error instead.
    void free(void* object) noexcept;
    [[nodiscard]] Status try_free(void* object);

    // Gives empty slabs back to the buddy allocator (after flushing this
    // thread's object cache); returns the number released.
    std::size_t shrink();
    void drain_thread_cache() noexcept { thread_cache_.flush_local(); }

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::size_t object_size() const noexcept { return object_size_; }
    [[nodiscard]] std::size_t stride() const noexcept { return stride_; }
    [[nodiscard]] std::uint32_t objects_per_slab() const noexcept { return objects_per_slab_; }
    [[nodiscard]] unsigned slab_order() const noexcept { return slab_order_; }
    [[nodiscard]] bool debug() const noexcept { return debug_; }
    [[nodiscard]] std::size_t invalid_frees() const noexcept;
    [[nodiscard]] SlabInfo info() const;

private:
    struct SlabList {
        Slab* head = nullptr;
        std::size_t count = 0;
    };
    enum : std::uint8_t { kPartial, kFull, kEmpty, kListCount };

    SlabCache(BuddyAllocator& buddy, std::string name, std::size_t object_size,
              SlabCacheOptions options, bool debug);

    [[nodiscard]] void* alloc_slow() noexcept;
    [[nodiscard]] Result<void*> alloc_one_locked();
    [[nodiscard]] Status validate(const void* object, Slab** slab, std::uint32_t* index) const;
    [[nodiscard]] Status free_slow(void* object);
    [[nodiscard]] Status free_debug(void* object);
    void refuse_free(const Error& error, const void* object) noexcept;

    // Under lock_.
    [[nodiscard]] Result<Slab*> new_slab();
    void release_slab(Slab* slab) noexcept;
    [[nodiscard]] std::uint32_t take_objects(void** out, std::uint32_t count, Error* error);
    void return_objects(void* const* objects, std::uint32_t count) noexcept;
    void move_to(Slab* slab, std::uint8_t list) noexcept;
    [[nodiscard]] std::byte* object_at(const Slab* slab, std::uint32_t index) const noexcept {
        return slab->base + std::size_t{index} * stride_ + left_red_zone_;
    }
    void check_on_alloc(void* object) noexcept;

    static void flush_thread_cache(void* self, ThreadCache& cache) noexcept;

    BuddyAllocator& buddy_;
    std::string name_;
    std::size_t object_size_;
    std::size_t align_;
    SlabCacheOptions options_;
    bool debug_;
    bool poison_;
    std::size_t left_red_zone_ = 0;
    std::size_t right_red_zone_ = 0;
    std::size_t stride_ = 0;
    unsigned slab_order_ = 0;
    std::uint32_t objects_per_slab_ = 0;
    std::uint32_t bitmap_words_ = 0;
    std::uint64_t reciprocal_ = 0;  // ceil(2^42 / stride): index without a division
    std::uint32_t batch_ = 0;

    // Copies of the page map for the inline free path.
    std::byte* map_base_;
    std::size_t map_span_;
    PageDesc* descs_;

    ThreadCacheOwner thread_cache_;

    mutable SpinLock lock_;
    SlabList lists_[kListCount];
    std::size_t objects_out_ = 0;
    mutable std::atomic<std::size_t> invalid_frees_{0};

public:
    // Slab and index of `object` if it is an object slot of this cache, else
    // null. No lock: the slab pointer of a page only changes while this
    // cache owns no objects in it.
    [[nodiscard]] Slab* slab_of(const void* object, std::uint32_t* index) const noexcept {
        const std::uintptr_t offset =
            reinterpret_cast<std::uintptr_t>(object) - reinterpret_cast<std::uintptr_t>(map_base_);
        if (offset >= map_span_) return nullptr;
        Slab* slab = descs_[offset >> kPageShift].slab;
        if (slab == nullptr || slab->cache != this) return nullptr;
        const std::uint64_t in_slab = static_cast<std::uint64_t>(
            static_cast<const std::byte*>(object) - slab->base - left_red_zone_);
        const std::uint64_t slot = (in_slab * reciprocal_) >> 42;
        if (slot >= objects_per_slab_ || slot * stride_ != in_slab) return nullptr;
        *index = static_cast<std::uint32_t>(slot);
        return slab;
    }
};

inline void* SlabCache::alloc() noexcept {
    ThreadCache* cache = thread_cache_.local();  // capacity 0 in debug mode
    if (!cache->empty()) [[likely]] {
        void* object = cache->pop();
        asan_unpoison(object, object_size_);
        return object;
    }
    return alloc_slow();
}

inline void SlabCache::free(void* object) noexcept {
    std::uint32_t index;
    if (slab_of(object, &index) != nullptr) [[likely]] {
        ThreadCache* cache = thread_cache_.local();
        if (!cache->full()) [[likely]] {
            asan_poison(object, object_size_);
            cache->push(object);
            return;
        }
    }
    auto status = free_slow(object);
    if (!status.ok()) refuse_free(status.error(), object);
}

}  // namespace dmakit::mem
