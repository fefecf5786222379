#include <dmakit/mem/buddy.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <sstream>

namespace dmakit::mem {
namespace {

std::string describe(const void* p) {
    char text[32];
    std::snprintf(text, sizeof text, "%p", p);
    return text;
}

std::string mib(std::size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

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
    DMAKIT_ASSIGN_OR_RETURN(PageMap map, PageMap::reserve(options.address_space));
    std::unique_ptr<Logger> owned_logger;
    if (options.logger == nullptr) owned_logger = std::make_unique<Logger>();
    return std::unique_ptr<BuddyAllocator>(new BuddyAllocator(
        std::move(source), options, std::move(map), std::move(owned_logger)));
}

BuddyAllocator::BuddyAllocator(std::unique_ptr<PageSource> source, BuddyOptions options,
                               PageMap map, std::unique_ptr<Logger> owned_logger)
    : source_(std::move(source)),
      options_(options),
      owned_logger_(std::move(owned_logger)),
      logger_(options.logger != nullptr ? options.logger : owned_logger_.get()),
      map_(std::move(map)),
      base_(map_.base()),
      span_(map_.size()),
      descs_(&map_.desc(0)),
      page_cache_(this, &BuddyAllocator::flush_page_cache, options.page_cache_high) {
    free_head_.fill(kNoPage);
}

BuddyAllocator::~BuddyAllocator() {
    page_cache_.retire();
    std::lock_guard grow(grow_mutex_);
    for (auto& region : regions_) {
        if (!region) continue;
        map_.unpublish(*region);
        if (options_.listener != nullptr) options_.listener->region_removing(*region);
        asan_unpoison(region->cpu_base(), region->length());
        source_->unmap(region->cpu_base(), region->length());
    }
}

// ---- free lists (lock_ held) ----------------------------------------------

void BuddyAllocator::list_add(unsigned order, std::uint32_t index) noexcept {
    PageDesc& desc = descs_[index];
    desc.prev = kNoPage;
    desc.next = free_head_[order];
    if (desc.next != kNoPage) descs_[desc.next].prev = index;
    free_head_[order] = index;
    ++free_count_[order];
}

void BuddyAllocator::list_remove(unsigned order, std::uint32_t index) noexcept {
    PageDesc& desc = descs_[index];
    if (desc.prev != kNoPage) {
        descs_[desc.prev].next = desc.next;
    } else {
        free_head_[order] = desc.next;
    }
    if (desc.next != kNoPage) descs_[desc.next].prev = desc.prev;
    desc.next = desc.prev = kNoPage;
    --free_count_[order];
}

std::uint32_t BuddyAllocator::take_block(unsigned order) noexcept {
    unsigned found = order;
    while (found < kOrderCount && free_head_[found] == kNoPage) ++found;
    if (found == kOrderCount) return kNoPage;
    const std::uint32_t index = free_head_[found];
    list_remove(found, index);
    // Split: keep the lower half, free the upper half one order down.
    while (found > order) {
        --found;
        const std::uint32_t upper = index + (1u << found);
        descs_[upper].store_state(PageState::free);
        descs_[upper].order = static_cast<std::uint8_t>(found);
        list_add(found, upper);
    }
    descs_[index].store_state(PageState::allocated);
    descs_[index].order = static_cast<std::uint8_t>(order);
    free_pages_ -= std::size_t{1} << order;
    return index;
}

void BuddyAllocator::give_block(std::uint32_t index, unsigned order) noexcept {
    free_pages_ += std::size_t{1} << order;
    // Merge with the buddy while it is a free block of the same order in the
    // same region (regions never merge: each is mapped and released alone).
    // The bounds test comes before any look at the buddy's descriptor: past
    // the region's ends lie descriptors that grow() and shrink() initialise
    // and clear without lock_ (a race found by reading, next to the one
    // ThreadSanitizer reported).
    const Region* home = map_.region_of(map_.page_address(index));
    const std::uint32_t region_first = map_.page_index(home->cpu_base());
    const std::uint32_t region_end =
        region_first + static_cast<std::uint32_t>(home->length() >> kPageShift);
    while (order < kMaxOrder) {
        const std::uint32_t buddy = index ^ (1u << order);
        if (buddy < region_first || buddy >= region_end) break;
        const PageDesc& other = descs_[buddy];
        if (other.load_state() != PageState::free || other.order != order) break;
        list_remove(order, buddy);
        const std::uint32_t upper = std::max(index, buddy);
        descs_[upper].store_state(PageState::tail);
        index = std::min(index, buddy);
        ++order;
    }
    descs_[index].store_state(PageState::free);
    descs_[index].order = static_cast<std::uint8_t>(order);
    list_add(order, index);
}

// ---- allocation ------------------------------------------------------------

Result<void*> BuddyAllocator::try_alloc_pages(unsigned order) {
    if (order == 0) {
        if (void* page = alloc_pages(0)) return page;
    }
    return allocate_block(order);
}

Result<void*> BuddyAllocator::allocate_block(unsigned order) {
    DMAKIT_ASSIGN_OR_RETURN(std::uint32_t index, take_or_grow(order));
    void* block = map_.page_address(index);
    asan_unpoison(block, order_bytes(order));
    return block;
}

Result<void*> BuddyAllocator::alloc_pages_uncached(unsigned order) { return allocate_block(order); }

Result<std::uint32_t> BuddyAllocator::take_or_grow(unsigned order) {
    if (order > kMaxOrder) {
        return Error(EINVAL, "order " + std::to_string(order) + " is past the largest order " +
                                 std::to_string(kMaxOrder) + " (1 GiB)");
    }
    {
        std::lock_guard lock(lock_);
        const std::uint32_t index = take_block(order);
        if (index != kNoPage) return index;
    }
    std::lock_guard grow_lock(grow_mutex_);
    for (int attempt = 0; attempt < 4; ++attempt) {
        {
            std::lock_guard lock(lock_);
            const std::uint32_t index = take_block(order);
            if (index != kNoPage) return index;
        }
        DMAKIT_TRY(grow(order));
    }
    return Error(ENOMEM, "memory added for an order-" + std::to_string(order) +
                             " block was taken by other threads each time; try again");
}

Status BuddyAllocator::grow(unsigned order) {
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
    DMAKIT_ASSIGN_OR_RETURN(std::byte* address, map_.place(length, alignment));

    auto backing = source_->map(address, length);
    if (!backing.ok()) {
        map_.unplace(address, length);
        return backing.error().with_context("growing the page allocator by " + mib(length));
    }
    std::size_t slot_index = 0;
    while (slot_index < regions_.size() && regions_[slot_index]) ++slot_index;
    if (slot_index == regions_.size()) regions_.emplace_back();
    auto region = std::make_unique<Region>(address, length, backing->page_size,
                                           backing->contiguous_bytes, backing->numa_node,
                                           static_cast<std::uint16_t>(slot_index + 1));
    if (options_.listener != nullptr) {
        auto added = options_.listener->region_added(*region);
        if (!added.ok()) {
            source_->unmap(address, length);
            map_.unplace(address, length);
            return added.error().with_context("adding a " + mib(length) + " region");
        }
    }
    map_.init_descs(address, length, region->slot());
    asan_poison(address, length);
    map_.publish(*region);
    {
        std::lock_guard lock(lock_);
        for_each_initial_block(map_.page_index(address), static_cast<std::uint32_t>(length >> kPageShift),
                               [&](std::uint32_t index, unsigned block_order) {
                                   give_block(index, block_order);
                               });
        managed_pages_ += length >> kPageShift;
    }
    regions_[slot_index] = std::move(region);
    ++regions_added_;
    return {};
}

// ---- free ------------------------------------------------------------------

Status BuddyAllocator::validate_free(const void* block) const {
    if (block == nullptr) return Error(EINVAL, "free of a null pointer");
    if (!map_.contains(block)) {
        return Error(EINVAL, "free of " + describe(block) + ": not memory of this page allocator");
    }
    if (map_.offset_of(block) % kPageSize != 0) {
        return Error(EINVAL, "free of " + describe(block) + ": not the start of a page block");
    }
    const PageDesc& desc = map_.desc_of(block);
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
    PageDesc& desc = map_.desc_of(block);
    const unsigned order = desc.order;
    asan_poison(block, order_bytes(order));
    if (order == 0) {
        ThreadCache* cache = page_cache_.local();
        if (cache->capacity != 0) {
            // The cache is full: spill a batch, then keep this (hot) page.
            std::lock_guard lock(lock_);
            spill_page_cache(*cache, options_.page_cache_batch);
            desc.store_state(PageState::thread_cached);
            cache->push(block);
            return {};
        }
    }
    std::lock_guard lock(lock_);
    give_block(map_.page_index(block), order);
    return {};
}

void BuddyAllocator::free_pages_uncached(void* block) noexcept {
    const PageDesc& desc = map_.desc_of(block);
    asan_poison(block, order_bytes(desc.order));
    std::lock_guard lock(lock_);
    give_block(map_.page_index(block), desc.order);
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

void* BuddyAllocator::alloc_page_slow() noexcept {
    ThreadCache* cache = page_cache_.local();
    if (cache->capacity == 0) {
        auto block = allocate_block(0);
        return block.ok() ? *block : nullptr;
    }
    {
        std::lock_guard lock(lock_);
        refill_page_cache(*cache);
    }
    if (cache->empty()) {
        // Free lists were empty: grow (or fail), then fill the cache too.
        auto block = allocate_block(0);
        if (!block.ok()) return nullptr;
        std::lock_guard lock(lock_);
        refill_page_cache(*cache);
        return *block;
    }
    void* page = cache->pop();
    map_.desc_of(page).store_state(PageState::allocated);
    asan_unpoison(page, kPageSize);
    return page;
}

void BuddyAllocator::refill_page_cache(ThreadCache& cache) noexcept {
    for (std::uint32_t i = 0; i < options_.page_cache_batch && !cache.full(); ++i) {
        const std::uint32_t index = take_block(0);
        if (index == kNoPage) break;
        descs_[index].store_state(PageState::thread_cached);
        cache.push(map_.page_address(index));
    }
}

void BuddyAllocator::spill_page_cache(ThreadCache& cache, std::uint32_t count) noexcept {
    count = std::min(count, cache.count);
    for (std::uint32_t i = 0; i < count; ++i) {
        give_block(map_.page_index(cache.pop()), 0);
    }
}

void BuddyAllocator::flush_page_cache(void* self, ThreadCache& cache) noexcept {
    auto* buddy = static_cast<BuddyAllocator*>(self);
    std::lock_guard lock(buddy->lock_);
    buddy->spill_page_cache(cache, cache.count);
}

// ---- shrink and stats ------------------------------------------------------

bool BuddyAllocator::region_is_free(const Region& region) const noexcept {
    bool free = true;
    for_each_initial_block(map_.page_index(region.cpu_base()),
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
            std::lock_guard lock(lock_);
            if (!region_is_free(*region)) continue;
            for_each_initial_block(map_.page_index(region->cpu_base()),
                                   static_cast<std::uint32_t>(region->length() >> kPageShift),
                                   [&](std::uint32_t index, unsigned order) {
                                       list_remove(order, index);
                                       free_pages_ -= std::size_t{1} << order;
                                   });
            managed_pages_ -= region->length() >> kPageShift;
        }
        map_.unpublish(*region);
        if (options_.listener != nullptr) options_.listener->region_removing(*region);
        asan_unpoison(region->cpu_base(), region->length());
        source_->unmap(region->cpu_base(), region->length());
        map_.clear_descs(region->cpu_base(), region->length());
        map_.unplace(region->cpu_base(), region->length());
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
        std::lock_guard lock(lock_);
        stats.managed_bytes = managed_pages_ << kPageShift;
        stats.free_bytes = free_pages_ << kPageShift;
    }
    stats.thread_cached_bytes = page_cache_.cached_items() << kPageShift;
    stats.allocated_bytes = stats.managed_bytes - stats.free_bytes - stats.thread_cached_bytes;
    stats.invalid_frees = invalid_frees_.load(std::memory_order_relaxed);
    stats.metadata_bytes = map_.resident_metadata_bytes() + region_objects +
                           page_cache_.metadata_bytes() + sizeof(*this);
    return stats;
}

std::vector<RegionBuddyInfo> BuddyAllocator::buddyinfo() const {
    std::vector<RegionBuddyInfo> result;
    std::lock_guard grow(grow_mutex_);
    std::lock_guard lock(lock_);
    for (const auto& region : regions_) {
        if (!region) continue;
        RegionBuddyInfo info;
        info.slot = region->slot();
        info.cpu_base = region->cpu_base();
        info.length = region->length();
        info.page_size = region->page_size();
        std::uint32_t index = map_.page_index(region->cpu_base());
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
    std::ostringstream out;
    for (const RegionBuddyInfo& info : buddyinfo()) {
        out << "region " << info.slot << " (" << (info.length >> 20) << " MiB, "
            << (info.page_size >> 10) << " KiB pages)";
        for (std::size_t count : info.free_blocks) out << ' ' << count;
        out << '\n';
    }
    return out.str();
}

}  // namespace dmakit::mem
