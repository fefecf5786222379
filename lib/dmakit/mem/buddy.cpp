#include <dmakit/mem/buddy.hpp>

#include <dmakit/internal/asan.hpp>
#include <dmakit/internal/page_map.hpp>
#include <dmakit/internal/spin_lock.hpp>
#include <dmakit/internal/thread_cache.hpp>
#include <dmakit/support/number_text.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <sstream>

namespace dmakit::mem {
namespace {

std::string describe(const void* p) {
    char text[32];
    std::snprintf(text, sizeof text, "%p", p);
    return text;
}

std::string mib(std::size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

// Highest device address of the DMA32 zone (GFP_DMA32: 32-bit masks).
constexpr std::uint64_t kDma32Last = 0xffff'ffffULL;

// The blocks a fresh region of `pages` pages starting at arena page `first`
// is carved into: the largest size-aligned blocks that fit, left to right.
template <typename Fn>
void for_each_initial_block(std::uint32_t first, std::uint32_t pages, Fn&& fn) {
    std::uint32_t index = first;
    const std::uint32_t end = first + pages;
    while (index < end) {
        unsigned order = std::min<unsigned>(kMaxOrder, static_cast<unsigned>(std::countr_zero(index)));
        while ((std::uint64_t{index} + (1u << order)) > end) --order;
        fn(index, order);
        index += 1u << order;
    }
}

}  // namespace

struct BuddyAllocator::State {
    State(BuddyAllocator* owner, PageMap page_map, std::uint32_t page_cache_capacity)
        : map(std::move(page_map)),
          page_cache(owner, &BuddyAllocator::flush_page_cache, page_cache_capacity) {}

    PageMap map;
    ThreadCacheOwner page_cache;
    // Guards the free lists, head descriptors and counters (BuddyAllocator's
    // areas_ to managed_pages_, kept there so the list code reaches them with
    // no extra load).
    SpinLock lock;
};

Result<std::unique_ptr<BuddyAllocator>> BuddyAllocator::create(std::unique_ptr<PageSource> source,
                                                              BuddyOptions options) {
    if (!source) return Error(EINVAL, "BuddyAllocator needs a PageSource");
    const std::size_t granule = std::max(kRegionGranule, source->alignment());
    if (options.region_size == 0 || options.region_size % granule != 0) {
        return Error(EINVAL, "region_size " + std::to_string(options.region_size) +
                                 " must be a non-zero multiple of " + mib(granule) +
                                 " (the region granule and the source's page size)");
    }
    if (options.page_cache_high != 0 &&
        (options.page_cache_batch == 0 || options.page_cache_batch > options.page_cache_high)) {
        return Error(EINVAL, "page_cache_batch must be between 1 and page_cache_high");
    }
    NumaTopology topology;
    if (options.topology != nullptr) {
        topology = *options.topology;
    } else {
        DMAKIT_ASSIGN_OR_RETURN(topology, NumaTopology::from_sysfs());
    }
    options.topology = nullptr;  // copied: the caller's object need not outlive us
    DMAKIT_ASSIGN_OR_RETURN(PageMap map, PageMap::reserve(options.address_space));
    std::unique_ptr<Logger> owned_logger;
    if (options.logger == nullptr) owned_logger = std::make_unique<Logger>();
    const bool leak_check = options.leak_check.value_or(LeakTracker::enabled_by_environment());
    return std::unique_ptr<BuddyAllocator>(new BuddyAllocator(std::move(source), options, std::move(map),
                                                              std::move(owned_logger), std::move(topology),
                                                              leak_check));
}

BuddyAllocator::BuddyAllocator(std::unique_ptr<PageSource> source, BuddyOptions options,
                               PageMap map, std::unique_ptr<Logger> owned_logger,
                               NumaTopology topology, bool leak_check)
    : source_(std::move(source)),
      options_(options),
      topology_(std::move(topology)),
      multi_node_(topology_.multi_node()),
      only_node_(topology_.nodes().front()),
      owned_logger_(std::move(owned_logger)),
      logger_(options.logger != nullptr ? options.logger : owned_logger_.get()),
      // Tracked allocations and frees all take the slow paths, which record them.
      state_(std::make_unique<State>(this, std::move(map), leak_check ? 0 : options.page_cache_high)),
      base_(state_->map.base()),
      span_(state_->map.size()),
      descs_(&state_->map.desc(0)),
      granules_(state_->map.granules()),
      page_cache_key_(state_->page_cache.key()),
      leaks_(leak_check ? std::make_unique<LeakTracker>(*logger_, options.leak_options) : nullptr) {
    for (FreeArea& area : areas_) area.head.fill(kNoPage);
}

const PageMap& BuddyAllocator::page_map() const noexcept { return state_->map; }

void BuddyAllocator::drain_thread_cache() noexcept { state_->page_cache.flush_local(); }

BuddyAllocator::~BuddyAllocator() {
    state_->page_cache.retire();
    leaks_.reset();  // the exit report, before the regions go
    std::lock_guard grow(grow_mutex_);
    for (auto& region : regions_) {
        if (!region) continue;
        state_->map.unpublish(*region);
        if (options_.listener != nullptr) options_.listener->region_removing(*region);
        asan_unpoison(region->cpu_base(), region->length());
        source_->unmap(region->cpu_base(), region->length());
    }
}

// ---- free lists (state_->lock held) ----------------------------------------------

int BuddyAllocator::node_of(const Region& region) const noexcept {
    if (!multi_node_) return only_node_;  // all memory is on it
    const int node = region.numa_node();
    return node >= 0 && node < kMaxNumaNodes ? node : -1;
}

unsigned BuddyAllocator::area_of(const Region& region) const noexcept {
    const auto slot = static_cast<unsigned>(node_of(region) + 1);
    const auto dma = region.dma_base();
    const bool dma32 = dma && *dma + (region.length() - 1) <= kDma32Last;
    return slot * kZoneCount + (dma32 ? kZoneDma32 : kZoneNormal);
}

// Inlined: give_block and take_from run them once per merge and split.
[[gnu::always_inline]] inline void BuddyAllocator::list_add(unsigned area_index, unsigned order,
                                                            std::uint32_t index) noexcept {
    FreeArea& area = areas_[area_index];
    PageDesc& desc = descs_[index];
    desc.prev = kNoPage;
    desc.next = area.head[order];
    if (desc.next != kNoPage) descs_[desc.next].prev = index;
    area.head[order] = index;
    nonempty_areas_ |= std::uint64_t{1} << area_index;
}

[[gnu::always_inline]] inline void BuddyAllocator::list_remove(unsigned area_index, unsigned order,
                                                               std::uint32_t index) noexcept {
    FreeArea& area = areas_[area_index];
    PageDesc& desc = descs_[index];
    if (desc.prev != kNoPage) {
        descs_[desc.prev].next = desc.next;
    } else {
        area.head[order] = desc.next;
    }
    if (desc.next != kNoPage) descs_[desc.next].prev = desc.prev;
    desc.next = desc.prev = kNoPage;
    // The area's bit in nonempty_areas_ is cleared lazily, by take_from:
    // frees merge blocks all the time, and must not pay for it.
    (void)area_index;
}

std::uint32_t BuddyAllocator::take_from(unsigned area_index, unsigned order) noexcept {
    FreeArea& area = areas_[area_index];
    unsigned found = order;
    while (found < kOrderCount && area.head[found] == kNoPage) ++found;
    if (found == kOrderCount) {
        // Nothing this big; if nothing at all, the area is empty.
        if (order == 0) nonempty_areas_ &= ~(std::uint64_t{1} << area_index);
        return kNoPage;
    }
    const std::uint32_t index = area.head[found];
    list_remove(area_index, found, index);
    // Split: keep the lower half, free the upper half one order down.
    while (found > order) {
        --found;
        const std::uint32_t upper = index + (1u << found);
        descs_[upper].store_state(PageState::free);
        descs_[upper].order = static_cast<std::uint8_t>(found);
        list_add(area_index, found, upper);
    }
    descs_[index].store_state(PageState::allocated);
    descs_[index].order = static_cast<std::uint8_t>(order);
    free_pages_ -= std::size_t{1} << order;
    return index;
}

std::uint32_t BuddyAllocator::take_block(unsigned order, int node, bool dma32,
                                         bool local_only) noexcept {
    // Normal zone before DMA32, as the kernel's zonelists keep DMA32 memory
    // for those who need it.
    const unsigned first_zone = dma32 ? kZoneDma32 : kZoneNormal;
    std::uint64_t tried = 0;
    if (node >= 0 && multi_node_) {
        const unsigned base = static_cast<unsigned>(node + 1) * kZoneCount;
        for (unsigned zone = first_zone; zone < kZoneCount; ++zone) {
            const std::uint32_t index = take_from(base + zone, order);
            if (index != kNoPage) return index;
        }
        if (local_only) return kNoPage;
        tried = std::uint64_t{3} << base;
    }
    for (unsigned zone = first_zone; zone < kZoneCount; ++zone) {
        std::uint64_t candidates = nonempty_areas_ & ~tried;
        while (candidates != 0) {
            const auto area = static_cast<unsigned>(std::countr_zero(candidates));
            candidates &= candidates - 1;
            if (area % kZoneCount != zone) continue;
            const std::uint32_t index = take_from(area, order);
            if (index != kNoPage) return index;
        }
    }
    return kNoPage;
}

void BuddyAllocator::give_block(std::uint32_t index, unsigned order) noexcept {
    free_pages_ += std::size_t{1} << order;
    // Merge with the buddy while it is a free block of the same order in the
    // same region (regions never merge: each is mapped and released alone).
    // The bounds test comes before any look at the buddy's descriptor: past
    // the region's ends lie descriptors that grow() and shrink() initialise
    // and clear without state_->lock (a race found by reading, next to the one
    // ThreadSanitizer reported).
    const Region* home = region_of(state_->map.page_address(index));
    const unsigned area = area_of(*home);
    const std::uint32_t region_first = state_->map.page_index(home->cpu_base());
    const std::uint32_t region_end =
        region_first + static_cast<std::uint32_t>(home->length() >> kPageShift);
    while (order < kMaxOrder) {
        const std::uint32_t buddy = index ^ (1u << order);
        if (buddy < region_first || buddy >= region_end) break;
        const PageDesc& other = descs_[buddy];
        if (other.load_state() != PageState::free || other.order != order) break;
        list_remove(area, order, buddy);
        const std::uint32_t upper = std::max(index, buddy);
        descs_[upper].store_state(PageState::tail);
        index = std::min(index, buddy);
        ++order;
    }
    descs_[index].store_state(PageState::free);
    descs_[index].order = static_cast<std::uint8_t>(order);
    list_add(area, order, index);
}

// ---- allocation ------------------------------------------------------------

Result<void*> BuddyAllocator::try_alloc_pages(unsigned order, Gfp flags, int node, CallSite site) {
    if (order == 0 && node == -1 && !has(flags, Gfp::dma32)) {
        if (void* page = alloc_pages(0, flags | Gfp::no_warn, site)) return page;
    }
    auto block = allocate_block(order, flags, node);
    if (!block.ok()) warn_failure(flags, block.error());
    if (block.ok() && leaks_) leaks_->record(*block, order_bytes(order), AllocKind::page, 0, site);
    return block;
}

void* BuddyAllocator::alloc_block_or_warn(unsigned order, Gfp flags, CallSite site) noexcept {
    try {
        auto block = allocate_block(order, flags, -1);
        if (block.ok()) {
            if (leaks_) leaks_->record(*block, order_bytes(order), AllocKind::page, 0, site);
            return *block;
        }
        warn_failure(flags, block.error());
    } catch (...) {  // a message that could not be built: still a clean null
    }
    return nullptr;
}

Result<void*> BuddyAllocator::allocate_block(unsigned order, Gfp flags, int node) {
    DMAKIT_ASSIGN_OR_RETURN(std::uint32_t index, take_or_grow(order, flags, node));
    void* block = state_->map.page_address(index);
    asan_unpoison(block, order_bytes(order));
    if (has(flags, Gfp::zero)) std::memset(block, 0, order_bytes(order));
    return block;
}

Result<void*> BuddyAllocator::alloc_pages_uncached(unsigned order, Gfp flags, int node) {
    return allocate_block(order, flags, node);
}

void BuddyAllocator::warn_failure(Gfp flags, const Error& error) const noexcept {
    if (has(flags, Gfp::no_warn)) return;
    try {
        logger_->warning("page allocator: " + error.message());
    } catch (...) {
    }
}

Error BuddyAllocator::no_block_error(unsigned order, Gfp flags, int node) const {
    std::string what = "no free order-" + std::to_string(order) + " block (" +
                       std::to_string(order_bytes(order) >> 10) + " KiB)";
    if (node >= 0 && topology_.multi_node()) what += " on NUMA node " + std::to_string(node) + " or any other";
    if (has(flags, Gfp::dma32)) what += " below 4 GiB device address";
    return Error(ENOMEM, what + " in the pool, and an atomic allocation (no Gfp::may_grow) may not "
                                "grow it; allocate with gfp_kernel outside the hot path, or fill "
                                "the pool ahead (allocate and free with gfp_kernel)");
}

Result<std::uint32_t> BuddyAllocator::take_or_grow(unsigned order, Gfp flags, int node) {
    if (order > kMaxOrder) {
        return Error(EINVAL, "order " + std::to_string(order) + " is past the largest order " +
                                 std::to_string(kMaxOrder) + " (1 GiB)");
    }
    if (node != -1) DMAKIT_TRY(topology_.check_node(node, "page allocation"));
    const bool dma32 = has(flags, Gfp::dma32);
    const bool may_grow = has(flags, Gfp::may_grow);
    // With leave to grow, memory of the wanted node is worth a new region
    // before another node's free block is.
    const bool local_first = may_grow && node >= 0 && topology_.multi_node();
    {
        std::lock_guard lock(state_->lock);
        const std::uint32_t index = take_block(order, node, dma32, local_first);
        if (index != kNoPage) return index;
    }
    // Atomic: what the free lists hold is all there is; no lock that sleeps,
    // no system call.
    if (!may_grow) return no_block_error(order, flags, node);
    std::lock_guard grow_lock(grow_mutex_);
    for (int attempt = 0; attempt < 4; ++attempt) {
        {
            std::lock_guard lock(state_->lock);
            const std::uint32_t index = take_block(order, node, dma32, local_first);
            if (index != kNoPage) return index;
        }
        auto area = grow(order, node, dma32);
        if (!area.ok()) {
            if (local_first) {  // another node's memory beats none
                std::lock_guard lock(state_->lock);
                const std::uint32_t index = take_block(order, node, dma32, false);
                if (index != kNoPage) return index;
            }
            return std::move(area).error();
        }
        std::lock_guard lock(state_->lock);
        const std::uint32_t index = take_from(*area, order);
        if (index != kNoPage) return index;
    }
    return Error(ENOMEM, "memory added for an order-" + std::to_string(order) +
                             " block was taken by other threads each time; try again");
}

Result<unsigned> BuddyAllocator::grow(unsigned order, int node, bool dma32) {
    const std::size_t granule = std::max(kRegionGranule, source_->alignment());
    const std::size_t want = std::max(options_.region_size, order_bytes(order));
    const std::size_t length = (want + granule - 1) / granule * granule;
    const std::size_t managed = managed_pages_ << kPageShift;  // only changed under grow_mutex_
    if (options_.max_managed != 0 && managed + length > options_.max_managed) {
        return Error(ENOMEM, "out of memory: the allocator manages " + mib(managed) +
                                 " and may not grow past max_managed = " +
                                 mib(options_.max_managed) + " (a " + mib(length) +
                                 " region is needed); free memory or raise max_managed");
    }
    // Aligning the region to its (power-of-two floor) size lets it hold its
    // largest blocks; at least the source's page size.
    const std::size_t alignment =
        std::max(granule, std::min(std::bit_floor(length), kHugePage1G));
    DMAKIT_ASSIGN_OR_RETURN(std::byte* address, state_->map.place(length, alignment));

    // A node is asked of the source only where nodes differ.
    const int bind_node = topology_.multi_node() ? node : -1;
    auto backing = source_->map_on_node(address, length, bind_node);
    if (!backing.ok()) {
        state_->map.unplace(address, length);
        return backing.error().with_context("growing the page allocator by " + mib(length));
    }
    std::size_t slot_index = 0;
    while (slot_index < regions_.size() && regions_[slot_index]) ++slot_index;
    if (slot_index == regions_.size()) regions_.emplace_back();
    auto region = std::make_unique<Region>(address, length, backing->page_size,
                                           backing->contiguous_bytes, backing->numa_node,
                                           static_cast<std::uint16_t>(slot_index + 1));
    if (dma32) region->set_dma_limit(kDma32Last);
    auto drop = [&] {
        source_->unmap(address, length);
        state_->map.unplace(address, length);
    };
    if (options_.listener != nullptr) {
        auto added = options_.listener->region_added(*region);
        if (!added.ok()) {
            drop();
            return added.error().with_context("adding a " + mib(length) + " region");
        }
    }
    if (dma32 && area_of(*region) % kZoneCount != kZoneDma32) {
        // Nothing of it is handed out yet: give it back rather than keep a
        // region the caller cannot use.
        const auto dma = region->dma_base();
        if (options_.listener != nullptr) options_.listener->region_removing(*region);
        drop();
        if (!dma) {
            return Error(ENOMEM, "a Gfp::dma32 allocation needs memory below 4 GiB device "
                                 "address, but this page allocator's regions have no device "
                                 "address (no DMA mapping); drop Gfp::dma32 or allocate through "
                                 "a DmaContext");
        }
        return Error(ENOMEM, "a Gfp::dma32 allocation grew a region but its mapper placed it at "
                             "device address " + to_hex(*dma) + ", above 4 GiB; make room below "
                             "4 GiB in the IOMMU domain (free DMA32 memory or mappings there)");
    }
    const unsigned area = area_of(*region);
    state_->map.init_descs(address, length, region->slot());
    asan_poison(address, length);
    state_->map.publish(*region);
    {
        std::lock_guard lock(state_->lock);
        for_each_initial_block(state_->map.page_index(address), static_cast<std::uint32_t>(length >> kPageShift),
                               [&](std::uint32_t index, unsigned block_order) {
                                   give_block(index, block_order);
                               });
        managed_pages_ += length >> kPageShift;
    }
    regions_[slot_index] = std::move(region);
    ++regions_added_;
    return area;
}

// ---- free ------------------------------------------------------------------

Status BuddyAllocator::validate_free(const void* block) const {
    if (block == nullptr) return Error(EINVAL, "free of a null pointer");
    if (!state_->map.contains(block)) {
        return Error(EINVAL, "free of " + describe(block) + ": not memory of this page allocator");
    }
    if (state_->map.offset_of(block) % kPageSize != 0) {
        return Error(EINVAL, "free of " + describe(block) + ": not the start of a page block");
    }
    const PageDesc& desc = state_->map.desc_of(block);
    switch (desc.load_state()) {
        case PageState::allocated:
            if (desc.slab != nullptr) {
                return Error(EINVAL, "free of " + describe(block) +
                                         ": the page belongs to a slab; free objects through "
                                         "their SlabCache or kfree");
            }
            return {};
        case PageState::free:
        case PageState::thread_cached:
            return Error(EINVAL, "double free of page block " + describe(block));
        case PageState::tail:
            return Error(EINVAL, "free of " + describe(block) +
                                     ": points inside a block, not at its start");
        case PageState::unmanaged:
            break;
    }
    return Error(EINVAL, "free of " + describe(block) + ": not in any region of this allocator");
}

Status BuddyAllocator::try_free_pages(void* block) {
    DMAKIT_TRY(validate_free(block));
    free_pages(block);
    return {};
}

Status BuddyAllocator::free_slow(void* block) {
    DMAKIT_TRY(validate_free(block));
    if (leaks_) leaks_->forget(block);  // before the block can be handed out again
    PageDesc& desc = state_->map.desc_of(block);
    const unsigned order = desc.order;
    asan_poison(block, order_bytes(order));
    if (order == 0) {
        // Here when the cache is full, or the inline lookup missed it
        // (first use on this thread, or its slot taken by another allocator).
        ThreadCache* cache = state_->page_cache.local();
        if (cache->capacity != 0) {
            if (cache->full()) {
                // Spill a batch, then keep this (hot) page.
                std::lock_guard lock(state_->lock);
                spill_page_cache(*cache, options_.page_cache_batch);
            }
            desc.store_state(PageState::thread_cached);
            cache->push(block);
            return {};
        }
    }
    std::lock_guard lock(state_->lock);
    give_block(state_->map.page_index(block), order);
    return {};
}

void BuddyAllocator::free_pages_uncached(void* block) noexcept {
    const PageDesc& desc = state_->map.desc_of(block);
    asan_poison(block, order_bytes(desc.order));
    std::lock_guard lock(state_->lock);
    give_block(state_->map.page_index(block), desc.order);
}

void BuddyAllocator::report_invalid_free(const Error& error) const noexcept {
    invalid_frees_.fetch_add(1, std::memory_order_relaxed);
    try {
        logger_->warning("page allocator: " + error.message() + "; ignored");
    } catch (...) {
    }
}

std::size_t BuddyAllocator::block_size(const void* block) const noexcept {
    const PageDesc* desc = desc_if_page(block);
    if (desc == nullptr || desc->load_state() != PageState::allocated || desc->slab != nullptr) return 0;
    return order_bytes(desc->order);
}

// ---- per-thread page cache -------------------------------------------------

void* BuddyAllocator::alloc_page_slow(Gfp flags, CallSite site) noexcept {
    // Here when the cache is empty, or the inline lookup missed it.
    ThreadCache* cache = state_->page_cache.local();
    if (cache->capacity == 0) return alloc_block_or_warn(0, flags, site);
    if (cache->empty()) {
        std::lock_guard lock(state_->lock);
        refill_page_cache(*cache);
    }
    if (cache->empty()) {
        // Free lists were empty: grow (or fail), then fill the cache too.
        void* block = alloc_block_or_warn(0, flags, site);
        if (block == nullptr) return nullptr;
        std::lock_guard lock(state_->lock);
        refill_page_cache(*cache);
        return block;
    }
    void* page = cache->pop();
    state_->map.desc_of(page).store_state(PageState::allocated);
    asan_unpoison(page, kPageSize);
    if (has(flags, Gfp::zero)) std::memset(page, 0, kPageSize);
    return page;
}

void BuddyAllocator::refill_page_cache(ThreadCache& cache) noexcept {
    for (std::uint32_t i = 0; i < options_.page_cache_batch && !cache.full(); ++i) {
        const std::uint32_t index = take_block(0, -1, false, false);
        if (index == kNoPage) break;
        descs_[index].store_state(PageState::thread_cached);
        cache.push(state_->map.page_address(index));
    }
}

void BuddyAllocator::spill_page_cache(ThreadCache& cache, std::uint32_t count) noexcept {
    count = std::min(count, cache.count);
    for (std::uint32_t i = 0; i < count; ++i) {
        give_block(state_->map.page_index(cache.pop()), 0);
    }
}

void BuddyAllocator::flush_page_cache(void* self, ThreadCache& cache) noexcept {
    auto* buddy = static_cast<BuddyAllocator*>(self);
    std::lock_guard lock(buddy->state_->lock);
    buddy->spill_page_cache(cache, cache.count);
}

// ---- shrink and stats ------------------------------------------------------

bool BuddyAllocator::region_is_free(const Region& region) const noexcept {
    bool free = true;
    for_each_initial_block(state_->map.page_index(region.cpu_base()),
                           static_cast<std::uint32_t>(region.length() >> kPageShift),
                           [&](std::uint32_t index, unsigned order) {
                               const PageDesc& desc = descs_[index];
                               free = free && desc.load_state() == PageState::free && desc.order == order;
                           });
    return free;
}

std::size_t BuddyAllocator::shrink() {
    drain_thread_cache();
    std::lock_guard grow(grow_mutex_);
    std::size_t released = 0;
    for (auto& region : regions_) {
        if (!region) continue;
        {
            std::lock_guard lock(state_->lock);
            if (!region_is_free(*region)) continue;
            const unsigned area = area_of(*region);
            for_each_initial_block(state_->map.page_index(region->cpu_base()),
                                   static_cast<std::uint32_t>(region->length() >> kPageShift),
                                   [&](std::uint32_t index, unsigned order) {
                                       list_remove(area, order, index);
                                       free_pages_ -= std::size_t{1} << order;
                                   });
            managed_pages_ -= region->length() >> kPageShift;
        }
        state_->map.unpublish(*region);
        if (options_.listener != nullptr) options_.listener->region_removing(*region);
        asan_unpoison(region->cpu_base(), region->length());
        source_->unmap(region->cpu_base(), region->length());
        state_->map.clear_descs(region->cpu_base(), region->length());
        state_->map.unplace(region->cpu_base(), region->length());
        released += region->length();
        ++regions_released_;
        region.reset();
    }
    return released;
}

BuddyStats BuddyAllocator::stats() const {
    BuddyStats stats;
    std::size_t region_objects = 0;
    {
        std::lock_guard grow(grow_mutex_);
        for (const auto& region : regions_) {
            if (region) ++stats.regions;
        }
        region_objects = regions_.capacity() * sizeof(void*) + stats.regions * sizeof(Region);
        stats.regions_added = regions_added_;
        stats.regions_released = regions_released_;
        std::lock_guard lock(state_->lock);
        stats.managed_bytes = managed_pages_ << kPageShift;
        stats.free_bytes = free_pages_ << kPageShift;
    }
    stats.thread_cached_bytes = state_->page_cache.cached_items() << kPageShift;
    stats.allocated_bytes = stats.managed_bytes - stats.free_bytes - stats.thread_cached_bytes;
    stats.invalid_frees = invalid_frees_.load(std::memory_order_relaxed);
    stats.metadata_bytes = state_->map.resident_metadata_bytes() + region_objects +
                           state_->page_cache.metadata_bytes() + sizeof(*this) + sizeof(State);
    return stats;
}

std::vector<RegionBuddyInfo> BuddyAllocator::buddyinfo() const {
    std::vector<RegionBuddyInfo> result;
    std::lock_guard grow(grow_mutex_);
    std::lock_guard lock(state_->lock);
    for (const auto& region : regions_) {
        if (!region) continue;
        RegionBuddyInfo info;
        info.slot = region->slot();
        info.cpu_base = region->cpu_base();
        info.length = region->length();
        info.page_size = region->page_size();
        info.numa_node = node_of(*region);
        info.dma32 = area_of(*region) % kZoneCount == kZoneDma32;
        std::uint32_t index = state_->map.page_index(region->cpu_base());
        const std::uint32_t end = index + static_cast<std::uint32_t>(region->length() >> kPageShift);
        while (index < end) {
            const PageDesc& desc = descs_[index];
            if (desc.load_state() == PageState::free) {
                ++info.free_blocks[desc.order];
                index += 1u << desc.order;
            } else if (desc.load_state() == PageState::allocated) {
                index += 1u << desc.order;
            } else {
                ++index;
            }
        }
        result.push_back(info);
    }
    return result;
}

std::string BuddyAllocator::format_buddyinfo() const {
    const std::vector<RegionBuddyInfo> regions = buddyinfo();
    // Lines in /proc/buddyinfo order: by node, then zone (DMA32 before Normal).
    std::vector<std::pair<int, bool>> zones;
    for (const RegionBuddyInfo& info : regions) {
        const std::pair<int, bool> key{info.numa_node, !info.dma32};
        if (std::find(zones.begin(), zones.end(), key) == zones.end()) zones.push_back(key);
    }
    std::sort(zones.begin(), zones.end());
    std::ostringstream out;
    for (const auto& [node, normal] : zones) {
        std::array<std::size_t, kOrderCount> total{};
        for (const RegionBuddyInfo& info : regions) {
            if (info.numa_node != node || info.dma32 == normal) continue;
            for (unsigned o = 0; o < kOrderCount; ++o) total[o] += info.free_blocks[o];
        }
        char head[48];
        std::snprintf(head, sizeof head, "Node %d, zone %8s", node, normal ? "Normal" : "DMA32");
        out << head;
        for (std::size_t count : total) out << ' ' << std::setw(6) << count;
        out << '\n';
        for (const RegionBuddyInfo& info : regions) {
            if (info.numa_node != node || info.dma32 == normal) continue;
            out << "  region " << info.slot << " (" << (info.length >> 20) << " MiB, "
                << (info.page_size >> 10) << " KiB pages)";
            for (std::size_t count : info.free_blocks) out << ' ' << count;
            out << '\n';
        }
    }
    return out.str();
}

}  // namespace dmakit::mem
