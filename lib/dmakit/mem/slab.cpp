#include <dmakit/mem/slab.hpp>

#include <dmakit/internal/asan.hpp>
#include <dmakit/internal/page_map.hpp>
#include <dmakit/internal/spin_lock.hpp>
#include <dmakit/internal/thread_cache.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <mutex>
#include <new>
#include <string>

namespace dmakit::mem {
namespace {

// Slabs start at 32 KiB so the per-slab descriptor stays a small fraction.
constexpr unsigned kMinSlabOrder = 3;
constexpr unsigned kMaxSlabOrder = 10;  // 4 MiB; bigger objects belong to the page allocator
constexpr std::uint32_t kMinObjectsPerSlab = 8;

std::size_t round_up(std::size_t value, std::size_t to) { return (value + to - 1) / to * to; }

std::string describe(const void* p) {
    char text[32];
    std::snprintf(text, sizeof text, "%p", p);
    return text;
}

// Thread-cache size by object size: enough to amortize the locked refill,
// small enough that idle threads do not hoard memory.
std::uint32_t default_thread_cache_size(std::size_t stride) {
    if (stride <= 256) return 128;
    if (stride <= 1024) return 64;
    if (stride <= 4096) return 32;
    return 16;
}

// Which list a slab is on (Slab::list).
enum : std::uint8_t { kPartial, kFull, kEmpty, kListCount };

struct SlabList {
    Slab* head = nullptr;
    std::size_t count = 0;
};

}  // namespace

struct SlabCache::State {
    State(SlabCache* cache, std::uint32_t thread_cache_capacity)
        : thread_cache(cache, &SlabCache::flush_thread_cache, thread_cache_capacity) {}

    SpinLock lock;  // lists and objects_out
    SlabList lists[kListCount];
    std::size_t objects_out = 0;  // with callers or in thread caches
    ThreadCacheOwner thread_cache;
};

Result<std::unique_ptr<SlabCache>> SlabCache::create(BuddyAllocator& buddy, std::string name,
                                                    std::size_t object_size,
                                                    SlabCacheOptions options) {
    if (object_size == 0) {
        return Error(EINVAL, "slab cache '" + name + "': object size must not be zero");
    }
    if (options.align == 0 || !std::has_single_bit(options.align) || options.align > kPageSize) {
        return Error(EINVAL, "slab cache '" + name + "': alignment " +
                                 std::to_string(options.align) +
                                 " must be a power of two no larger than 4096");
    }
    if (options.page_flags != Gfp::none && options.page_flags != Gfp::dma32) {
        return Error(EINVAL, "slab cache '" + name + "': page_flags may hold only Gfp::dma32 "
                             "(the zone of its slabs); pass the other flags to alloc()");
    }
    DMAKIT_TRY(buddy.topology().check_node(options.numa_node, "slab cache '" + name + "'"));
    const bool debug = options.debug.value_or(buddy.options().slab_debug);
    auto cache = std::unique_ptr<SlabCache>(
        new SlabCache(buddy, std::move(name), object_size, std::move(options), debug));
    if (cache->objects_per_slab_ == 0) {
        return Error(EINVAL, "slab cache '" + cache->name_ + "': objects of " +
                                 std::to_string(object_size) +
                                 " bytes are too big for a slab; allocate them from the page "
                                 "allocator");
    }
    return cache;
}

SlabCache::SlabCache(BuddyAllocator& buddy, std::string name, std::size_t object_size,
                     SlabCacheOptions options, bool debug)
    : buddy_(buddy),
      name_(std::move(name)),
      object_size_(object_size),
      align_(options.align),
      options_(std::move(options)),
      debug_(debug),
      poison_(debug && options_.debug_options.poison && !options_.ctor),
      map_base_(buddy.page_map().base()),
      map_span_(buddy.page_map().size()),
      descs_(&buddy.page_map().desc(0)),
      state_(std::make_unique<State>(this, [&] {
          // Every debug free must be checked, every tracked one recorded.
          if (debug || buddy.leak_tracker() != nullptr) return std::uint32_t{0};
          const std::size_t stride = round_up(object_size, options_.align);
          const std::uint32_t objects = options_.thread_cache_size != 0
                                            ? options_.thread_cache_size
                                            : default_thread_cache_size(stride);
          return 2 * objects;  // object and allocated byte
      }())) {
    cache_key_ = state_->thread_cache.key();
    leaks_ = buddy.leak_tracker();
    if (leaks_ != nullptr) leak_owner_ = leaks_->register_owner(name_);
    const bool red_zone = debug_ && options_.debug_options.red_zone;
    left_red_zone_ = red_zone ? round_up(kMinRedZone, align_) : 0;
    stride_ = round_up(left_red_zone_ + object_size_ + (red_zone ? kMinRedZone : 0), align_);
    right_red_zone_ = red_zone ? stride_ - left_red_zone_ - object_size_ : 0;

    // Smallest slab holding enough objects with at most 1/16 wasted.
    for (unsigned order = std::max(kMinSlabOrder, order_for_bytes(stride_));
         order <= kMaxSlabOrder; ++order) {
        const std::size_t bytes = order_bytes(order);
        const std::size_t count = bytes / stride_;
        slab_order_ = order;
        objects_per_slab_ = static_cast<std::uint32_t>(count);
        if (count >= kMinObjectsPerSlab && (bytes - count * stride_) * 16 <= bytes) break;
    }
    bitmap_words_ = (objects_per_slab_ + 63) / 64;
    state_bytes_ =
        static_cast<std::uint32_t>(round_up(objects_per_slab_ + 1, sizeof(std::uint64_t)));
    reciprocal_ = ((std::uint64_t{1} << 42) + stride_ - 1) / stride_;
    batch_ = std::max<std::uint32_t>(1, state_->thread_cache.capacity() / 4);  // half the objects
}

SlabCache::~SlabCache() {
    state_->thread_cache.retire();
    if (leaks_ != nullptr) leaks_->owner_gone(leak_owner_);
    Slab* chain = nullptr;
    {
        std::lock_guard lock(state_->lock);
        for (auto& list : state_->lists) {
            while (Slab* slab = list.head) {
                unlink(slab);
                slab->next = chain;
                chain = slab;
            }
        }
    }
    release_slabs(chain);
}

// ---- allocation ------------------------------------------------------------

void* SlabCache::alloc_slow(Gfp flags, CallSite site) noexcept {
    // Here when this thread's cache is empty, or the inline lookup missed it
    // (first use on this thread, or its slot taken by another cache).
    ThreadCache* cache = state_->thread_cache.local();
    try {
        if (cache->capacity == 0) {
            auto object = alloc_one_locked(flags, site);
            if (object.ok()) return *object;
            warn_failure(flags, object.error());
            return nullptr;
        }
        if (!cache->empty()) return alloc(flags, site);  // the lookup hits now
        Error error(ENOMEM, "");
        cache->set_count(2 * take_objects(cache->items(), batch_, 2, &error, flags));
        if (cache->empty()) {
            warn_failure(flags, error.with_context("slab cache '" + name_ + "'"));
            return nullptr;
        }
    } catch (...) {  // a message that could not be built: still a clean null
        if (cache->empty()) return nullptr;
    }
    return alloc(flags, site);
}

Result<void*> SlabCache::try_alloc(Gfp flags, CallSite site) {
    if (has(flags, Gfp::dma32) && !has(options_.page_flags, Gfp::dma32)) {
        Error error = zone_error();
        warn_failure(flags, error);
        return error;
    }
    if (void* object = alloc(flags | Gfp::no_warn, site)) return object;
    // Says why, or succeeds if memory came back meanwhile.
    auto object = alloc_one_locked(flags, site);
    if (!object.ok()) warn_failure(flags, object.error());
    return object;
}

Result<void*> SlabCache::alloc_one_locked(Gfp flags, CallSite site) {
    void* object = nullptr;
    Error error(ENOMEM, "");
    const std::uint32_t got = take_objects(&object, 1, 1, &error, flags);
    if (got == 0) return error.with_context("slab cache '" + name_ + "'");
    mark_allocated(object);
    if (debug_) check_on_alloc(object);
    asan_unpoison(object, object_size_);
    if (has(flags, Gfp::zero)) std::memset(object, 0, object_size_);
    if (leaks_ != nullptr) leaks_->record(object, object_size_, options_.tracked_as, leak_owner_, site);
    return object;
}

Error SlabCache::zone_error() const {
    return Error(EINVAL, "slab cache '" + name_ + "': Gfp::dma32 asked of a cache whose slabs "
                         "are not kept below 4 GiB device address; create the cache with "
                         "SlabCacheOptions::page_flags = Gfp::dma32 (a DmaPool: pass "
                         "Gfp::dma32 to DmaPool::create), or use alloc_pages(order, Gfp::dma32)");
}

void* SlabCache::refuse_zone(Gfp flags) noexcept {
    try {
        warn_failure(flags, zone_error());
    } catch (...) {
    }
    return nullptr;
}

void SlabCache::warn_failure(Gfp flags, const Error& error) const noexcept {
    if (has(flags, Gfp::no_warn)) return;
    try {
        buddy_.logger().warning(error.message());
    } catch (...) {
    }
}

void SlabCache::check_on_alloc(void* object) noexcept {
    auto* bytes = static_cast<std::byte*>(object);
    asan_unpoison(object, object_size_);
    try {
        if (left_red_zone_ != 0) {
            const std::size_t left = first_red_zone_change(bytes - left_red_zone_, left_red_zone_);
            const std::size_t right = first_red_zone_change(bytes + object_size_, right_red_zone_);
            if (left != left_red_zone_ || right != right_red_zone_) {
                report_detection(buddy_.logger(), options_.debug_options,
                                 DebugEvent::red_zone_overwritten, name_, object,
                                 "found when allocating it: a red zone of the free object changed");
                fill_red_zone(bytes - left_red_zone_, left_red_zone_);
                fill_red_zone(bytes + object_size_, right_red_zone_);
            }
        }
        if (poison_) {
            const std::size_t changed = first_unpoisoned(object, object_size_);
            if (changed != object_size_) {
                report_detection(buddy_.logger(), options_.debug_options,
                                 DebugEvent::modified_after_free, name_, object,
                                 "byte " + std::to_string(changed) + " of the " +
                                     std::to_string(object_size_) +
                                     "-byte object was written while it was free");
            }
        }
    } catch (...) {
        // Reporting allocates; a failure there must not escape a noexcept path.
    }
}

// ---- free ------------------------------------------------------------------

Status SlabCache::validate(const void* object, Slab** slab, std::uint32_t* index) const {
    if (object == nullptr) return Error(EINVAL, "free of a null pointer");
    *slab = slab_of(object, index);
    if (*slab != nullptr) return {};
    const std::string what = "free of " + describe(object) + ": ";
    if (!buddy_.page_map().contains(object)) {
        return Error(EINVAL, what + "not memory of this allocator");
    }
    const Slab* owner = buddy_.page_map().desc_of(object).slab;
    if (owner == nullptr) return Error(EINVAL, what + "not in any slab (page-allocator memory?)");
    if (owner->cache != this) {
        return Error(EINVAL, what + "the object belongs to slab cache '" + owner->cache->name() + "'");
    }
    return Error(EINVAL, what + "does not point at the start of an object");
}

// Clears the object's allocated byte, or refuses when it is not allocated.
// An atomic exchange: of two frees racing here, one wins.
Status SlabCache::take_back(void* object, Slab* slab, std::uint32_t index) const {
    if (slab->allocated(index).exchange(Slab::State::free, std::memory_order_acq_rel) ==
        Slab::State::allocated) {
        return {};
    }
    return Error(EINVAL, "double free of " + describe(object) +
                             ": the object is not allocated (already freed, or never handed "
                             "out); free each allocated object exactly once");
}

Status SlabCache::try_free(void* object) {
    auto status = free_slow(object);
    if (!status.ok()) {
        refuse_free(status.error(), object);
        return std::move(status).error().with_context("slab cache '" + name_ + "'");
    }
    return {};
}

Status SlabCache::free_slow(void* object) {
    // Forgotten before the object can be handed out again; a pointer that is
    // not a live object has no record, so this changes nothing for a refusal.
    if (leaks_ != nullptr) leaks_->forget(object);
    if (debug_) return free_debug(object);
    Slab* slab;
    std::uint32_t index;
    DMAKIT_TRY(validate(object, &slab, &index));
    DMAKIT_TRY(take_back(object, slab, index));
    ThreadCache* cache = state_->thread_cache.local();
    asan_poison(object, object_size_);
    Slab* released;
    {
        std::lock_guard lock(state_->lock);
        if (cache->capacity == 0) {
            return_objects(&object, 1, 1);
        } else {
            if (cache->full()) {
                // Spill the colder half; keep this object (hot) in the cache.
                return_objects(cache->items() + cache->count - 2 * batch_, batch_, 2);
                cache->set_count(cache->count - 2 * batch_);
            }
            cache->push_pair(object, &slab->allocated(index));
        }
        released = detach_excess_empty_slabs();
    }
    release_slabs(released);
    return {};
}

Status SlabCache::free_debug(void* object) {
    Slab* slab;
    std::uint32_t index;
    auto valid = validate(object, &slab, &index);
    if (!valid.ok()) {
        report_detection(buddy_.logger(), options_.debug_options, DebugEvent::invalid_free, name_,
                         object, valid.error().message());
        return valid;
    }
    auto taken = take_back(object, slab, index);
    if (!taken.ok()) {
        report_detection(buddy_.logger(), options_.debug_options, DebugEvent::double_free, name_,
                         object, "the object is already free");
        return taken;
    }
    auto* bytes = static_cast<std::byte*>(object);
    if (left_red_zone_ != 0) {
        const std::size_t left = first_red_zone_change(bytes - left_red_zone_, left_red_zone_);
        const std::size_t right = first_red_zone_change(bytes + object_size_, right_red_zone_);
        if (left != left_red_zone_ || right != right_red_zone_) {
            const std::string where =
                left != left_red_zone_
                    ? std::to_string(left_red_zone_ - left) + " bytes before the object"
                    : std::to_string(right) + " bytes after the end of the " +
                          std::to_string(object_size_) + "-byte object";
            report_detection(buddy_.logger(), options_.debug_options,
                             DebugEvent::red_zone_overwritten, name_, object,
                             "found when freeing it: red zone byte changed " + where);
            fill_red_zone(bytes - left_red_zone_, left_red_zone_);
            fill_red_zone(bytes + object_size_, right_red_zone_);
        }
    }
    if (poison_) poison_object(object, object_size_);
    asan_poison(object, object_size_);
    Slab* released;
    {
        std::lock_guard lock(state_->lock);
        return_objects(&object, 1, 1);
        released = detach_excess_empty_slabs();
    }
    release_slabs(released);
    return {};
}

void SlabCache::refuse_free(const Error& error, const void*) noexcept {
    invalid_frees_.fetch_add(1, std::memory_order_relaxed);
    if (debug_) return;  // already reported as a detection
    try {
        buddy_.logger().warning("slab cache '" + name_ + "': " + error.message() + "; ignored");
    } catch (...) {
    }
}

std::size_t SlabCache::invalid_frees() const noexcept {
    return invalid_frees_.load(std::memory_order_relaxed);
}

// ---- slabs --------------------------------------------------------------

Result<Slab*> SlabCache::make_slab(Gfp flags) {
    if (options_.on_new_slab && !has(flags, Gfp::may_grow)) {
        return Error(ENOMEM, "no free object, and a new slab would need on_new_slab (an IOMMU "
                             "map: a system call), which an atomic allocation (no "
                             "Gfp::may_grow) may not do; allocate with gfp_kernel outside the "
                             "hot path");
    }
    // The slab's pages: its zone and node, grown only if the caller may grow.
    const Gfp page_flags = (flags & Gfp::may_grow) | options_.page_flags;
    DMAKIT_ASSIGN_OR_RETURN(void* block,
                            buddy_.alloc_pages_uncached(slab_order_, page_flags, options_.numa_node));
    void* raw = ::operator new(descriptor_bytes(), std::align_val_t{alignof(Slab)}, std::nothrow);
    if (raw == nullptr) {
        buddy_.free_pages_uncached(block);
        return Error(ENOMEM, "no heap memory for a slab descriptor");
    }
    std::uint64_t tag = 0;
    if (options_.on_new_slab) {
        Result<std::uint64_t> accepted = Error(ECANCELED, "");
        try {
            accepted = options_.on_new_slab(block, slab_bytes());
        } catch (const std::exception& e) {
            accepted = Error(EIO, std::string("on_new_slab threw: ") + e.what());
        } catch (...) {
            accepted = Error(EIO, "on_new_slab threw");
        }
        if (!accepted.ok()) {
            ::operator delete(raw, std::align_val_t{alignof(Slab)});
            buddy_.free_pages_uncached(block);
            return std::move(accepted).error().with_context("preparing a new slab");
        }
        tag = *accepted;
    }
    auto* slab =
        new (raw) Slab{static_cast<std::byte*>(block), this, nullptr, nullptr, tag, 0, kEmpty};
    for (std::uint32_t i = 0; i < state_bytes_; ++i) {
        new (&slab->allocated(i)) std::atomic<Slab::State>(Slab::State::free);
    }
    std::uint64_t* bits = slab->free_bits(state_bytes_);
    for (std::uint32_t word = 0; word < bitmap_words_; ++word) {
        const std::uint32_t first = word * 64;
        const std::uint32_t count = std::min<std::uint32_t>(64, objects_per_slab_ - first);
        bits[word] = count == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << count) - 1;
    }
    for (std::uint32_t i = 0; i < objects_per_slab_; ++i) {
        std::byte* object = object_at(slab, i);
        if (left_red_zone_ != 0) {
            fill_red_zone(object - left_red_zone_, left_red_zone_);
            fill_red_zone(object + object_size_, right_red_zone_);
        }
        if (poison_) poison_object(object, object_size_);
        if (options_.ctor) options_.ctor(object);
        asan_poison(object, object_size_);
    }
    // Last: from here slab_of() finds the slab.
    const std::uint32_t first_page = buddy_.page_map().page_index(block);
    for (std::uint32_t page = 0; page < (1u << slab_order_); ++page) {
        descs_[first_page + page].slab = slab;
    }
    return slab;
}

void SlabCache::release_slabs(Slab* chain) noexcept {
    while (Slab* slab = chain) {
        chain = slab->next;
        const std::uint32_t first_page = buddy_.page_map().page_index(slab->base);
        for (std::uint32_t page = 0; page < (1u << slab_order_); ++page) {
            descs_[first_page + page].slab = nullptr;
        }
        if (options_.on_release_slab) {
            try {
                options_.on_release_slab(slab->base, slab_bytes(), slab->tag);
            } catch (...) {
                try {
                    buddy_.logger().error("slab cache '" + name_ +
                                          "': on_release_slab threw; the slab is released anyway");
                } catch (...) {
                }
            }
        }
        asan_unpoison(slab->base, slab_bytes());
        buddy_.free_pages_uncached(slab->base);
        slab->~Slab();
        ::operator delete(slab, std::align_val_t{alignof(Slab)});
    }
}

void SlabCache::unlink(Slab* slab) noexcept {
    SlabList& list = state_->lists[slab->list];
    if (slab->prev != nullptr) {
        slab->prev->next = slab->next;
    } else {
        list.head = slab->next;
    }
    if (slab->next != nullptr) slab->next->prev = slab->prev;
    --list.count;
    slab->prev = nullptr;
    slab->next = nullptr;
}

void SlabCache::push_on(Slab* slab, std::uint8_t to) noexcept {
    SlabList& dest = state_->lists[to];
    slab->prev = nullptr;
    slab->next = dest.head;
    if (dest.head != nullptr) dest.head->prev = slab;
    dest.head = slab;
    ++dest.count;
    slab->list = to;
}

// Unlinks the empty slabs beyond max_empty_slabs, chained through next, for
// release_slabs() once state_->lock is dropped.
Slab* SlabCache::detach_excess_empty_slabs() noexcept {
    Slab* chain = nullptr;
    while (state_->lists[kEmpty].count > options_.max_empty_slabs) {
        Slab* slab = state_->lists[kEmpty].head;
        unlink(slab);
        slab->next = chain;
        chain = slab;
    }
    return chain;
}

void SlabCache::move_to(Slab* slab, std::uint8_t to) noexcept {
    if (slab->list == to) return;
    unlink(slab);
    push_on(slab, to);
}

std::uint32_t SlabCache::take_objects(void** out, std::uint32_t count, std::uint32_t step,
                                      Error* error, Gfp flags) {
    std::unique_lock lock(state_->lock);
    std::uint32_t got = 0;
    while (got < count) {
        SlabList* lists = state_->lists;
        Slab* slab = lists[kPartial].head != nullptr ? lists[kPartial].head : lists[kEmpty].head;
        if (slab == nullptr) {
            // The page allocator and on_new_slab run without state_->lock.
            lock.unlock();
            auto created = make_slab(flags);
            lock.lock();
            if (!created.ok()) {
                if (error != nullptr) *error = created.error();
                break;
            }
            push_on(*created, kEmpty);
            continue;
        }
        std::uint64_t* bits = slab->free_bits(state_bytes_);
        for (std::uint32_t word = 0; word < bitmap_words_ && got < count; ++word) {
            std::uint64_t free = bits[word];
            while (free != 0 && got < count) {
                const auto bit = static_cast<std::uint32_t>(std::countr_zero(free));
                free &= free - 1;
                const std::uint32_t index = word * 64 + bit;
                out[got * step] = object_at(slab, index);
                if (step == 2) out[got * step + 1] = &slab->allocated(index);
                ++got;
                ++slab->in_use;
            }
            bits[word] = free;
        }
        move_to(slab, slab->in_use == objects_per_slab_ ? kFull : kPartial);
    }
    state_->objects_out += got;
    return got;
}

void SlabCache::return_objects(void* const* objects, std::uint32_t count,
                               std::uint32_t step) noexcept {
    for (std::uint32_t i = 0; i < count; ++i) {
        const auto* object = static_cast<const std::byte*>(objects[i * step]);
        std::uint32_t index;
        Slab* slab = slot_of(object, &index);
        slab->free_bits(state_bytes_)[index / 64] |= std::uint64_t{1} << (index % 64);
        const bool was_full = slab->in_use == objects_per_slab_;
        --slab->in_use;
        if (slab->in_use == 0) {
            move_to(slab, kEmpty);  // trimmed by the caller, after state_->lock
        } else if (was_full) {
            move_to(slab, kPartial);
        }
    }
    state_->objects_out -= count;
}

void SlabCache::flush_thread_cache(void* self, ThreadCache& cache) noexcept {
    auto* slab_cache = static_cast<SlabCache*>(self);
    std::lock_guard lock(slab_cache->state_->lock);
    slab_cache->return_objects(cache.items(), cache.count / 2, 2);
    cache.set_count(0);
}

// ---- shrink and info -------------------------------------------------------

void SlabCache::drain_thread_cache() noexcept {
    state_->thread_cache.flush_local();
    Slab* released;
    {
        std::lock_guard lock(state_->lock);
        released = detach_excess_empty_slabs();
    }
    release_slabs(released);
}

std::size_t SlabCache::shrink() {
    state_->thread_cache.flush_local();
    Slab* chain = nullptr;
    std::size_t released = 0;
    {
        std::lock_guard lock(state_->lock);
        while (Slab* slab = state_->lists[kEmpty].head) {
            unlink(slab);
            slab->next = chain;
            chain = slab;
            ++released;
        }
    }
    release_slabs(chain);
    return released;
}

SlabInfo SlabCache::info() const {
    SlabInfo info;
    info.name = name_;
    info.object_size = object_size_;
    info.stride = stride_;
    info.pages_per_slab = std::size_t{1} << slab_order_;
    info.debug = debug_;
    // Before state_->lock: thread-exit flushes take the control mutex, then state_->lock.
    const std::size_t cached = state_->thread_cache.cached_items() / 2;  // two slots per object
    std::lock_guard lock(state_->lock);
    for (const SlabList& list : state_->lists) info.slabs += list.count;
    info.total_objects = info.slabs * objects_per_slab_;
    info.active_objects = state_->objects_out > cached ? state_->objects_out - cached : 0;
    info.pages = info.slabs << slab_order_;
    info.metadata_bytes = info.slabs * descriptor_bytes() +
                          state_->thread_cache.metadata_bytes() + sizeof(*this) + sizeof(State) +
                          name_.capacity();
    return info;
}

}  // namespace dmakit::mem
