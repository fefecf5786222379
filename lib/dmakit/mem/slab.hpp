// SlabCache: fixed-size objects carved from buddy pages (kmem_cache_create).
//
// A slab is a block of 2^order pages holding objects_per_slab() objects.
// Its descriptor, kept outside the slab (SLUB threads its freelist through
// the objects; we cannot, since a device may write them), holds one
// "allocated" byte per object and a bitmap of the objects free in the slab.
// Every page of a slab points to the descriptor, so free() finds it from the
// object address in O(1).
//
// Fast path (inline, fast_path.hpp): each thread has its own array of free
// objects per cache (SLUB's per-cpu freelist, rte_mempool's per-lcore cache):
// alloc pops, free pushes, no lock, no atomic read-modify-write. Each entry
// keeps the object's allocated byte beside it, so alloc sets it without a slab
// lookup. Misses move a batch between the array and the slabs under the lock.
// An object may be freed on any thread. Slabs sit on partial/full/empty
// lists; beyond max_empty_slabs, empty slabs go back to the buddy allocator.
//
// Every build checks every free: the object's allocated byte is set when it is
// handed out and checked and cleared before it goes back anywhere, so a
// double free, or a free of a slot that was never handed out, is refused
// (logged with the cache name, counted in invalid_frees(), EINVAL from
// try_free) and changes nothing. What no allocator without pointer tags can
// see: a stale free after the object was allocated again looks like the new
// owner's free.
//
// Debug mode (per cache, or BuddyOptions::slab_debug for all) also bypasses
// the thread arrays and adds red-zone and poison checks. See debug.hpp.
//
// Leak tracking (BuddyOptions::leak_check) bypasses the thread arrays too, so
// the inline fast paths need no test of their own: every tracked alloc and
// free goes the slow way, where the LeakTracker records or forgets it.
#pragma once

#include <dmakit/mem/buddy.hpp>
#include <dmakit/mem/call_site.hpp>
#include <dmakit/mem/debug.hpp>
#include <dmakit/mem/fast_path.hpp>
#include <dmakit/mem/gfp.hpp>
#include <dmakit/mem/page.hpp>
#include <dmakit/mem/stats.hpp>
#include <dmakit/support/result.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace dmakit::mem {

class SlabCache;

// Out-of-band descriptor of one slab. After it: one allocated byte per object
// slot and one for the slot past the last (never allocated, so the fast free
// path needs no bounds check), padded to 8 bytes; then the bitmap of objects
// free in the slab. The
// bytes start on a cache line of their own, so threads working on objects of
// one slab (batches of consecutive slots) rarely write the same line.
class alignas(64) Slab {
public:
    std::byte* base;        // the slab's first byte (its buddy block)
    SlabCache* cache;
    Slab* prev;             // links in the cache's partial/full/empty list
    Slab* next;
    std::uint64_t tag;      // what SlabCacheOptions::on_new_slab returned, else 0
    std::uint32_t in_use;   // objects out of the slab (with callers or in thread caches)
    std::uint8_t list;      // which list it is on

    // An enum, not a byte type: stores through a char-like type may alias
    // anything, which would make the fast paths reload the cache's fields.
    enum class State : std::uint8_t {
        free = 0,       // in the slab or a thread cache
        allocated = 1,  // with a caller
    };

    // Relaxed loads and stores (plain movs on x86) on the fast path: the
    // thread that frees an object has received it from its allocator through
    // some synchronization of its own, which orders the two.
    [[nodiscard]] std::atomic<State>& allocated(std::uint32_t index) noexcept {
        return reinterpret_cast<std::atomic<State>*>(this + 1)[index];
    }
    [[nodiscard]] std::uint64_t* free_bits(std::size_t state_bytes) noexcept {
        return reinterpret_cast<std::uint64_t*>(reinterpret_cast<std::byte*>(this + 1) +
                                                state_bytes);
    }
};
static_assert(sizeof(std::atomic<Slab::State>) == 1 && std::atomic<Slab::State>::is_always_lock_free);

struct SlabCacheOptions {
    // Object alignment, a power of two up to 4096.
    std::size_t align = 8;
    // Runs once per object when its slab is created, as kmem_cache_create's
    // ctor: freed objects must be returned in the constructed state.
    std::function<void(void*)> ctor;
    // Debug mode; unset follows BuddyOptions::slab_debug.
    std::optional<bool> debug;
    // What the leak tracker calls this cache's objects (Kmalloc and DmaPool
    // set their own kind). Here, in padding, so options keep their size.
    AllocKind tracked_as = AllocKind::slab;
    DebugOptions debug_options;
    // Empty slabs kept for reuse before they go back to the buddy allocator.
    std::uint32_t max_empty_slabs = 2;
    // Objects per thread cache; 0 chooses by object size.
    std::uint32_t thread_cache_size = 0;
    // Where slab pages come from (kmem_cache_create's SLAB_CACHE_DMA32 and a
    // kmem_cache_node of one node): Gfp::dma32 (the only flag allowed here)
    // takes them below 4 GiB device address; numa_node (-1: any) from that
    // node. A cache has one zone: alloc(Gfp::dma32) on another cache is refused.
    Gfp page_flags = Gfp::none;
    int numa_node = -1;

    // Slab lifecycle hooks, e.g. for a DMA pool that maps each slab into the
    // IOMMU while it exists (strict mode; the tag is then the slab's IOVA).
    // Both run with no lock of this cache held, on whichever thread creates or
    // releases the slab, and must not call back into this cache.
    // on_new_slab runs once per slab taken from the buddy allocator, before
    // any object of it is handed out; its value becomes the slab's tag
    // (slab_tag_of). An error fails the allocation that needed the slab (with
    // that error) and the pages go back to the buddy allocator.
    std::function<Result<std::uint64_t>(void* base, std::size_t bytes)> on_new_slab;
    // Runs once per slab on_new_slab accepted, with its tag, before the pages
    // go back to the buddy allocator (shrink, trimming of empty slabs, the
    // destructor). Must not throw; a throw is caught and logged.
    std::function<void(void* base, std::size_t bytes, std::uint64_t tag)> on_release_slab;
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
    // Flags (gfp.hpp): without Gfp::may_grow only objects and pages already
    // in the pool are used (a new slab may take free buddy pages, and its
    // descriptor comes from the C++ heap; a cache with on_new_slab makes no
    // new slab at all, since that hook maps memory). A failure is logged
    // unless Gfp::no_warn.
    // `site` is recorded when leak tracking is on (call_site.hpp).
    [[nodiscard]] void* alloc(Gfp flags = gfp_kernel,
                              CallSite site = std::source_location::current()) noexcept;
    [[nodiscard]] Result<void*> try_alloc(Gfp flags = gfp_kernel,
                                          CallSite site = std::source_location::current());

    // Returns an object. A pointer that is not an allocated object of this
    // cache (a double free, a slot never handed out, a pointer inside an
    // object or elsewhere) is refused in every build: logged with the cache
    // name and counted (debug mode: reported as a detection), and nothing
    // changes. try_free also returns the error (EINVAL).
    void free(void* object) noexcept;
    [[nodiscard]] Status try_free(void* object);

    // Gives empty slabs back to the buddy allocator (after flushing this
    // thread's object cache); returns the number released.
    std::size_t shrink();
    // Flushes this thread's object cache to the slabs and gives back empty
    // slabs beyond max_empty_slabs.
    void drain_thread_cache() noexcept;

    // The tag on_new_slab gave the slab holding `address` (any byte of the
    // slab), or nullopt when it is not in a slab of this cache. O(1), no
    // lock: valid while the caller holds an object of that slab.
    [[nodiscard]] std::optional<std::uint64_t> slab_tag_of(const void* address) const noexcept {
        const Slab* slab = slab_containing(address);
        if (slab == nullptr) return std::nullopt;
        return slab->tag;
    }
    // First byte of the slab holding `address`, or null; with slab_tag_of,
    // address - base is the offset to add to the tag.
    [[nodiscard]] const std::byte* slab_base_of(const void* address) const noexcept {
        const Slab* slab = slab_containing(address);
        return slab != nullptr ? slab->base : nullptr;
    }
    [[nodiscard]] std::size_t slab_bytes() const noexcept { return order_bytes(slab_order_); }

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::size_t object_size() const noexcept { return object_size_; }
    [[nodiscard]] std::size_t stride() const noexcept { return stride_; }
    [[nodiscard]] std::uint32_t objects_per_slab() const noexcept { return objects_per_slab_; }
    [[nodiscard]] unsigned slab_order() const noexcept { return slab_order_; }
    [[nodiscard]] bool debug() const noexcept { return debug_; }
    [[nodiscard]] std::size_t invalid_frees() const noexcept;
    [[nodiscard]] SlabInfo info() const;

private:
    // The slow paths' state: the slab lists, their lock, the count of objects
    // out, the owner of the thread caches (slab.cpp; the fast paths never
    // touch it).
    struct State;

    SlabCache(BuddyAllocator& buddy, std::string name, std::size_t object_size,
              SlabCacheOptions options, bool debug);

    [[nodiscard]] void* alloc_slow(Gfp flags, CallSite site) noexcept;
    [[nodiscard]] Result<void*> alloc_one_locked(Gfp flags, CallSite site);
    [[nodiscard]] void* refuse_zone(Gfp flags) noexcept;
    [[nodiscard]] Error zone_error() const;
    void warn_failure(Gfp flags, const Error& error) const noexcept;
    [[nodiscard]] Status validate(const void* object, Slab** slab, std::uint32_t* index) const;
    [[nodiscard]] Status take_back(void* object, Slab* slab, std::uint32_t index) const;
    [[nodiscard]] Status free_slow(void* object);
    [[nodiscard]] Status free_debug(void* object);
    void refuse_free(const Error& error, const void* object) noexcept;

    // Without the lock: buddy pages, descriptor and on_new_slab; and the reverse.
    [[nodiscard]] Result<Slab*> make_slab(Gfp flags);
    void release_slabs(Slab* chain) noexcept;
    // Under state_->lock.
    void unlink(Slab* slab) noexcept;
    void push_on(Slab* slab, std::uint8_t list) noexcept;
    [[nodiscard]] Slab* detach_excess_empty_slabs() noexcept;
    // Takes the lock (dropping it while a new slab is made). Objects go to
    // out[i * step]; with step 2, out[i * 2 + 1] gets the object's allocated
    // byte (the thread-cache entry layout).
    [[nodiscard]] std::uint32_t take_objects(void** out, std::uint32_t count, std::uint32_t step,
                                             Error* error, Gfp flags);
    void return_objects(void* const* objects, std::uint32_t count, std::uint32_t step) noexcept;
    void move_to(Slab* slab, std::uint8_t list) noexcept;
    [[nodiscard]] std::size_t descriptor_bytes() const noexcept {
        return sizeof(Slab) + state_bytes_ + bitmap_words_ * sizeof(std::uint64_t);
    }
    // Slab and slot of an address known to be an object of this cache.
    [[nodiscard]] Slab* slot_of(const void* object, std::uint32_t* index) const noexcept {
        const auto* bytes = static_cast<const std::byte*>(object);
        Slab* slab = descs_[static_cast<std::size_t>(bytes - map_base_) >> kPageShift].slab;
        const auto in_slab = static_cast<std::uint64_t>(bytes - slab->base - left_red_zone_);
        *index = static_cast<std::uint32_t>((in_slab * reciprocal_) >> 42);
        return slab;
    }
    [[nodiscard]] const Slab* slab_containing(const void* address) const noexcept {
        const std::uintptr_t offset = reinterpret_cast<std::uintptr_t>(address) -
                                      reinterpret_cast<std::uintptr_t>(map_base_);
        if (offset >= map_span_) return nullptr;
        const Slab* slab = descs_[offset >> kPageShift].slab;
        return slab != nullptr && slab->cache == this ? slab : nullptr;
    }
    // slab_of for the fast free path of a cache without red zones: the
    // allocated byte of `object` if it is the start of a slot of this cache,
    // else null. The slot past the last has a byte that is never allocated,
    // which stands in for the bounds check.
    [[nodiscard]] std::atomic<Slab::State>* fast_allocated_byte(const void* object) const noexcept {
        const std::uintptr_t offset =
            reinterpret_cast<std::uintptr_t>(object) - reinterpret_cast<std::uintptr_t>(map_base_);
        if (offset >= map_span_) return nullptr;
        Slab* slab = descs_[offset >> kPageShift].slab;
        if (slab == nullptr || slab->cache != this) return nullptr;
        const auto in_slab =
            static_cast<std::uint64_t>(static_cast<const std::byte*>(object) - slab->base);
        const std::uint64_t slot = (in_slab * reciprocal_) >> 42;
        if (slot * stride_ != in_slab) return nullptr;
        return &slab->allocated(static_cast<std::uint32_t>(slot));
    }
    void mark_allocated(void* object) const noexcept {
        std::uint32_t index;
        slot_of(object, &index)->allocated(index).store(Slab::State::allocated,
                                                        std::memory_order_relaxed);
    }
    [[nodiscard]] std::byte* object_at(const Slab* slab, std::uint32_t index) const noexcept {
        return slab->base + std::size_t{index} * stride_ + left_red_zone_;
    }
    void check_on_alloc(void* object) noexcept;

    static void flush_thread_cache(void* self, fast_path::ThreadCache& cache) noexcept;

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
    std::uint32_t state_bytes_ = 0;  // allocated bytes (one per slot, plus one), padded to 8
    std::uint64_t reciprocal_ = 0;  // ceil(2^42 / stride): index without a division
    std::uint32_t batch_ = 0;  // objects moved per refill or spill

    // Copies of the page map for the inline free path.
    std::byte* map_base_;
    std::size_t map_span_;
    PageDesc* descs_;

    fast_path::ThreadCacheKey cache_key_;
    std::unique_ptr<State> state_;
    mutable std::atomic<std::size_t> invalid_frees_{0};
    // Last, so the fields of the inline fast paths keep their offsets.
    LeakTracker* leaks_ = nullptr;  // null unless leak tracking is on
    std::uint32_t leak_owner_ = 0;

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

inline void* SlabCache::alloc(Gfp flags, CallSite site) noexcept {
    if (has(flags, Gfp::dma32) && !has(options_.page_flags, Gfp::dma32)) [[unlikely]] {
        return refuse_zone(flags);
    }
    // Debug caches never register one: the lookup gives the empty `none`.
    fast_path::ThreadCache* cache = cache_key_.find();
    if (!cache->empty()) [[likely]] {
        void* allocated;
        void* object = cache->pop_pair(&allocated);
        static_cast<std::atomic<Slab::State>*>(allocated)->store(Slab::State::allocated,
                                                                 std::memory_order_relaxed);
        fast_path::unpoison_if_sanitized(object, object_size_);
        if (has(flags, Gfp::zero)) std::memset(object, 0, object_size_);
        return object;
    }
    return alloc_slow(flags, site);
}

inline void SlabCache::free(void* object) noexcept {
    fast_path::ThreadCache* cache = cache_key_.find();
    // Debug caches have no thread cache (the lookup gives `none`, which is
    // always full), so past this test objects have no red zones.
    if (!cache->full()) [[likely]] {
        std::atomic<Slab::State>* allocated = fast_allocated_byte(object);
        // Checked before anything is touched; a refusal goes the slow way,
        // which says what was wrong.
        if (allocated != nullptr &&
            allocated->load(std::memory_order_relaxed) == Slab::State::allocated) [[likely]] {
            allocated->store(Slab::State::free, std::memory_order_relaxed);
            fast_path::poison_if_sanitized(object, object_size_);
            cache->push_pair(object, allocated);
            return;
        }
    }
    auto status = free_slow(object);
    if (!status.ok()) refuse_free(status.error(), object);
}

}  // namespace dmakit::mem
