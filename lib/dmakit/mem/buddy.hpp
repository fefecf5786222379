// BuddyAllocator: the page allocator under every dmakit pool.
//
// Blocks of 2^order pages (order 0 = 4 KiB .. 18 = 1 GiB), each aligned to its
// size, split on allocation and merged with their buddy on free, as in the
// kernel's mm/page_alloc.c. Memory comes in regions from a PageSource; the
// allocator grows by a region when no free block is big enough and shrink()
// gives wholly free regions back.
//
// Out of band: free lists run through PageDescs (page.hpp; the library's
// page map holds one per 4 KiB page), never through the pages, so a device
// that writes a page cannot corrupt the allocator.
//
// Order-0 allocations go through a per-thread page cache (the kernel's pcp
// lists): a plain array per thread and allocator, no lock on a hit (inline,
// fast_path.hpp). Pages freed on one thread may be reused by another.
// Pages parked in other threads' caches return to the free lists when
// those threads exit; call drain_thread_cache() on a thread to flush
// its own.
//
// Flags (gfp.hpp) say how an allocation may be satisfied: with
// Gfp::may_grow (gfp_kernel, the default) a missing block grows the pool by
// a region (mmap, and the listener's IOMMU map); without it (gfp_atomic)
// only blocks already in the pool are used, never a system call, and an
// empty pool is a clean ENOMEM. Failures are logged unless Gfp::no_warn.
//
// Zones and nodes (the kernel's struct zone / pglist_data): free lists are
// kept per NUMA node and per zone. A region is in the DMA32 zone when its
// whole device address range lies below 4 GiB, else in the normal zone; a
// region's node is the one its source bound it to (-1: unbound; on a
// one-node machine every region counts as node 0). An allocation for a node
// takes from that node first (normal zone before DMA32), grows there, and
// falls back to other nodes only when growing is not allowed or fails.
// Gfp::dma32 takes only DMA32 blocks and grows a region placed below 4 GiB.
//
// Leak tracking (leak_check below) bypasses the page cache, so the inline
// fast paths need no test of their own; see leak_tracker.hpp.
//
// Thread safety: all members may be called concurrently except the
// destructor. Regions are published to region_of() before any of their
// memory is handed out.
#pragma once

#include <dmakit/mem/call_site.hpp>
#include <dmakit/mem/fast_path.hpp>
#include <dmakit/mem/gfp.hpp>
#include <dmakit/mem/leak_tracker.hpp>
#include <dmakit/mem/numa.hpp>
#include <dmakit/mem/page.hpp>
#include <dmakit/mem/page_source.hpp>
#include <dmakit/mem/region.hpp>
#include <dmakit/mem/stats.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/support/result.hpp>

#include <array>
#include <atomic>
#include <cstring>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dmakit::mem {

class PageMap;  // the library's own (not installed)
class SlabCache;

struct BuddyOptions {
    // Bytes added per growth step, a multiple of 2 MiB (and of the source's
    // page size). A request for a bigger block gets a region of its own size.
    std::size_t region_size = std::size_t{64} << 20;
    // Address space reserved up front (multiple of 1 GiB, at most 128 GiB);
    // it bounds how far the allocator can grow.
    std::size_t address_space = std::size_t{64} << 30;
    // Cap on managed bytes; 0 means only address_space bounds growth.
    std::size_t max_managed = 0;
    // Per-thread order-0 page cache: size at which half is flushed, and pages
    // moved per refill/flush. page_cache_high = 0 disables the cache.
    std::uint32_t page_cache_high = 64;
    std::uint32_t page_cache_batch = 16;
    // Told about regions coming and going (the DMA layer maps them here).
    RegionListener* listener = nullptr;
    // Where warnings (rejected frees, fallbacks) go; null: a stderr Logger.
    const Logger* logger = nullptr;
    // The machine's NUMA nodes; null: read from /sys at create() (one node
    // when the kernel has no NUMA). Copied; tests inject a fake topology.
    const NumaTopology* topology = nullptr;
    // Allocator-wide debug switch: slab caches created over this allocator
    // default to debug mode (poisoning, red zones, double-free detection).
    bool slab_debug = false;
    // Leak tracking for this allocator and everything built on it (slab
    // caches, kmalloc, the DMA context): every live allocation records its
    // call site; see leak_tracker.hpp. Unset: on when DMAKIT_LEAK_CHECK=1 (read
    // once, when the allocator is created).
    std::optional<bool> leak_check;
    LeakTrackerOptions leak_options;
};

class BuddyAllocator {
public:
    // The source backs regions; see HugepageSource and AnonymousSource.
    [[nodiscard]] static Result<std::unique_ptr<BuddyAllocator>> create(
        std::unique_ptr<PageSource> source, BuddyOptions options = {});
    ~BuddyAllocator();
    BuddyAllocator(const BuddyAllocator&) = delete;
    BuddyAllocator& operator=(const BuddyAllocator&) = delete;

    // A block of 2^order pages aligned to its size, or null; try_alloc_pages
    // says why (EINVAL: order > kMaxOrder or a node that does not exist;
    // ENOMEM: no memory, with a hint). `node` (-1: any) is where the memory
    // should come from (alloc_pages_node); see the class comment.
    // `site` is recorded when leak tracking is on (call_site.hpp).
    [[nodiscard]] void* alloc_pages(unsigned order, Gfp flags = gfp_kernel,
                                    CallSite site = std::source_location::current()) noexcept;
    [[nodiscard]] Result<void*> try_alloc_pages(unsigned order, Gfp flags = gfp_kernel, int node = -1,
                                                CallSite site = std::source_location::current());

    // Frees a block from alloc_pages. A pointer this allocator did not hand
    // out, or a second free, is rejected: free_pages logs a warning and counts
    // it in stats().invalid_frees; try_free_pages returns the error.
    void free_pages(void* block) noexcept;
    [[nodiscard]] Status try_free_pages(void* block);

    // The region holding p, or null. O(1), lock-free, no system call: the
    // DMA layer computes dma(p) = region->dma_base() + (p - region->cpu_base()).
    [[nodiscard]] const Region* region_of(const void* p) const noexcept {
        const std::uintptr_t offset =
            reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(base_);
        if (offset >= span_) return nullptr;
        return std::atomic_ref<Region*>(granules_[offset >> kRegionGranuleShift])
            .load(std::memory_order_acquire);
    }
    [[nodiscard]] std::optional<std::uint64_t> dma_address_of(const void* p) const noexcept {
        const Region* region = region_of(p);
        return region != nullptr ? region->dma_address_of(p) : std::nullopt;
    }

    // Bytes of the allocated block starting at `block`, or 0 if it is not one.
    [[nodiscard]] std::size_t block_size(const void* block) const noexcept;

    // Releases every region that is entirely free (after flushing this
    // thread's page cache); returns the bytes given back.
    std::size_t shrink();

    // Returns the calling thread's cached order-0 pages to the free lists.
    void drain_thread_cache() noexcept;

    [[nodiscard]] BuddyStats stats() const;
    [[nodiscard]] std::vector<RegionBuddyInfo> buddyinfo() const;
    // /proc/buddyinfo-style text: one "Node N, zone Z" line per node and zone
    // with free blocks per order, each followed by its regions.
    [[nodiscard]] std::string format_buddyinfo() const;
    [[nodiscard]] const NumaTopology& topology() const noexcept { return topology_; }

    [[nodiscard]] const BuddyOptions& options() const noexcept { return options_; }
    [[nodiscard]] const Logger& logger() const noexcept { return *logger_; }
    // Null unless leak tracking is on.
    [[nodiscard]] LeakTracker* leak_tracker() const noexcept { return leaks_.get(); }

    // For slab caches: allocation and free that bypass the page cache. The
    // allocation logs nothing (the caller does, by its own flags).
    [[nodiscard]] Result<void*> alloc_pages_uncached(unsigned order, Gfp flags = gfp_kernel,
                                                     int node = -1);
    void free_pages_uncached(void* block) noexcept;  // block must be a valid allocated head

private:
    // The slow paths' internal state: the page map, the lock of the free
    // lists, the owner of the page caches (buddy.cpp; the inline fast paths
    // never touch it).
    struct State;

    // Free lists of one node and zone (the kernel's free_area[] of a zone).
    struct FreeArea {
        std::array<std::uint32_t, kOrderCount> head;
    };
    static constexpr unsigned kZoneNormal = 0;
    static constexpr unsigned kZoneDma32 = 1;
    static constexpr unsigned kZoneCount = 2;
    // Node slot 0 holds unbound memory, slot n + 1 node n.
    static constexpr unsigned kAreaCount = (kMaxNumaNodes + 1) * kZoneCount;

    BuddyAllocator(std::unique_ptr<PageSource> source, BuddyOptions options, PageMap map,
                   std::unique_ptr<Logger> owned_logger, NumaTopology topology, bool leak_check);

    // The page map, for the slab caches built on this allocator.
    friend class SlabCache;
    [[nodiscard]] const PageMap& page_map() const noexcept;

    [[nodiscard]] void* alloc_page_slow(Gfp flags, CallSite site) noexcept;
    [[nodiscard]] void* alloc_block_or_warn(unsigned order, Gfp flags, CallSite site) noexcept;
    [[nodiscard]] Result<void*> allocate_block(unsigned order, Gfp flags, int node);
    [[nodiscard]] Result<std::uint32_t> take_or_grow(unsigned order, Gfp flags, int node);
    // The free area the new region went to.
    [[nodiscard]] Result<unsigned> grow(unsigned order, int node, bool dma32);
    [[nodiscard]] Error no_block_error(unsigned order, Gfp flags, int node) const;
    void warn_failure(Gfp flags, const Error& error) const noexcept;
    [[nodiscard]] unsigned area_of(const Region& region) const noexcept;
    [[nodiscard]] int node_of(const Region& region) const noexcept;
    [[nodiscard]] Status validate_free(const void* block) const;
    [[nodiscard]] Status free_slow(void* block);
    void report_invalid_free(const Error& error) const noexcept;

    // Free-list primitives; state_->lock held.
    // From the best area for (node, dma32): see the class comment.
    [[nodiscard]] std::uint32_t take_block(unsigned order, int node, bool dma32,
                                           bool local_only) noexcept;
    [[nodiscard]] std::uint32_t take_from(unsigned area, unsigned order) noexcept;
    void give_block(std::uint32_t index, unsigned order) noexcept;
    void list_add(unsigned area, unsigned order, std::uint32_t index) noexcept;
    void list_remove(unsigned area, unsigned order, std::uint32_t index) noexcept;
    [[nodiscard]] bool region_is_free(const Region& region) const noexcept;

    static void flush_page_cache(void* self, fast_path::ThreadCache& cache) noexcept;
    void refill_page_cache(fast_path::ThreadCache& cache) noexcept;  // state_->lock held
    void spill_page_cache(fast_path::ThreadCache& cache, std::uint32_t count) noexcept;  // ditto

    std::unique_ptr<PageSource> source_;
    BuddyOptions options_;
    NumaTopology topology_;
    bool multi_node_;     // topology_.multi_node(), read on every free
    int only_node_;       // the node of a one-node machine
    std::unique_ptr<Logger> owned_logger_;
    const Logger* logger_;
    std::unique_ptr<State> state_;

    // Hot, read-mostly copies (of the page map's) for the inline fast paths.
    std::byte* base_;
    std::size_t span_;
    PageDesc* descs_;
    Region** granules_;  // one per 2 MiB granule, published with release stores
    fast_path::ThreadCacheKey page_cache_key_;

    // Under state_->lock: free lists, head descriptors, counters.
    std::array<FreeArea, kAreaCount> areas_{};
    // Bit a clear: area a has no free block; set: it may have (cleared lazily).
    std::uint64_t nonempty_areas_ = 0;
    std::size_t free_pages_ = 0;
    std::size_t managed_pages_ = 0;

    mutable std::mutex grow_mutex_;  // regions_, placement, growth and shrink
    std::vector<std::unique_ptr<Region>> regions_;  // by slot - 1
    std::size_t regions_added_ = 0;
    std::size_t regions_released_ = 0;
    mutable std::atomic<std::size_t> invalid_frees_{0};
    // Null unless leak tracking is on. Last, so the fields of the inline fast
    // paths keep their offsets; the destructor reports before anything goes.
    std::unique_ptr<LeakTracker> leaks_;

public:
    // Inline fast paths (declared after the members they use).
    [[nodiscard]] PageDesc* desc_if_page(const void* p) const noexcept {
        const std::uintptr_t offset =
            reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(base_);
        if (offset >= span_ || (offset & (kPageSize - 1)) != 0) return nullptr;
        return descs_ + (offset >> kPageShift);
    }
    // Descriptor of the page holding p (any byte of it), or null when p is
    // outside this allocator's address range. O(1), no lock.
    [[nodiscard]] PageDesc* desc_of(const void* p) const noexcept {
        const std::uintptr_t offset =
            reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(base_);
        if (offset >= span_) return nullptr;
        return descs_ + (offset >> kPageShift);
    }
};

inline void* BuddyAllocator::alloc_pages(unsigned order, Gfp flags, CallSite site) noexcept {
    // The page cache holds pages of any zone and node: DMA32 requests pass it.
    if (order == 0 && !has(flags, Gfp::dma32)) {
        // A lookup that misses gives the empty `none` cache: the slow path
        // then finds or makes this thread's cache.
        fast_path::ThreadCache* cache = page_cache_key_.find();
        if (!cache->empty()) [[likely]] {
            void* page = cache->pop();
            descs_[(static_cast<std::byte*>(page) - base_) >> kPageShift].store_state(PageState::allocated);
            fast_path::unpoison_if_sanitized(page, kPageSize);
            if (has(flags, Gfp::zero)) std::memset(page, 0, kPageSize);
            return page;
        }
        return alloc_page_slow(flags, site);
    }
    return alloc_block_or_warn(order, flags, site);
}

inline void BuddyAllocator::free_pages(void* block) noexcept {
    PageDesc* desc = desc_if_page(block);
    if (desc != nullptr && desc->load_state() == PageState::allocated && desc->order == 0 &&
        desc->slab == nullptr) [[likely]] {
        fast_path::ThreadCache* cache = page_cache_key_.find();  // `none` (full) on a miss
        if (!cache->full()) [[likely]] {
            desc->store_state(PageState::thread_cached);
            fast_path::poison_if_sanitized(block, kPageSize);
            cache->push(block);
            return;
        }
    }
    auto status = free_slow(block);
    if (!status.ok()) report_invalid_free(status.error());
}

}  // namespace dmakit::mem
