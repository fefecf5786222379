// Page geometry and the out-of-band page descriptor.
//
// Every 4 KiB page the allocator manages has a PageDesc in ordinary heap-like
// memory (the kernel's struct page in its vmemmap array). Free-list links,
// block orders and slab ownership live here, never inside the pages, because a
// device may write any page mapped for DMA: it can corrupt data but not the
// allocator.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace dmakit::mem {

inline constexpr unsigned kPageShift = 12;
inline constexpr std::size_t kPageSize = std::size_t{1} << kPageShift;

// Orders 0 (4 KiB) .. 18 (1 GiB), the largest hugepage size on x86-64.
inline constexpr unsigned kMaxOrder = 18;
inline constexpr unsigned kOrderCount = kMaxOrder + 1;

inline constexpr std::size_t kHugePage2M = std::size_t{2} << 20;
inline constexpr std::size_t kHugePage1G = std::size_t{1} << 30;

// Regions are placed and looked up on this granule; region lengths are
// multiples of it (one 2 MiB hugepage).
inline constexpr unsigned kRegionGranuleShift = 21;
inline constexpr std::size_t kRegionGranule = std::size_t{1} << kRegionGranuleShift;

[[nodiscard]] constexpr std::size_t order_bytes(unsigned order) noexcept {
    return kPageSize << order;
}

// Smallest order whose block holds `bytes` (bytes > 0).
[[nodiscard]] constexpr unsigned order_for_bytes(std::size_t bytes) noexcept {
    const std::size_t pages = (bytes + kPageSize - 1) >> kPageShift;
    return pages <= 1 ? 0u : static_cast<unsigned>(std::bit_width(pages - 1));
}

enum class PageState : std::uint8_t {
    unmanaged = 0,  // not part of any region (the zero-filled default)
    tail,           // inside a block whose head is another page
    free,           // head of a block on a buddy free list
    allocated,      // head of a block handed out (to a user or a slab)
    thread_cached,  // order-0 page parked in a per-thread page cache
};

class Slab;

struct PageDesc {
    std::uint32_t next;    // free-list links: arena page indices, kNoPage ends
    std::uint32_t prev;
    std::uint8_t order;    // block order, valid on heads
    PageState state_;      // through load_state/store_state only
    std::uint16_t region;  // 1-based region slot, 0 when unmanaged
    std::uint32_t reserved;
    Slab* slab;            // owning slab for every page of a slab, else null

    // The state is read and written without the allocator's lock by the
    // order-0 fast paths (allocated <-> thread_cached, on a page the calling
    // thread owns) and by free validation, while another thread reads it
    // under the lock to decide whether a neighbouring block may merge
    // (ThreadSanitizer found this race; docs/reliability.md). Relaxed atomics
    // suffice: changes to or from `free` happen only under the lock, which
    // orders them; the lock-free changes are between two states that mean
    // "not free" to every reader. On x86 both are plain byte moves.
    [[nodiscard]] PageState load_state() const noexcept {
        return std::atomic_ref<PageState>(const_cast<PageState&>(state_)).load(std::memory_order_relaxed);
    }
    void store_state(PageState state) noexcept {
        std::atomic_ref<PageState>(state_).store(state, std::memory_order_relaxed);
    }
};
static_assert(sizeof(PageDesc) == 24, "PageDesc is part of the metadata budget");

inline constexpr std::uint32_t kNoPage = UINT32_MAX;

}  // namespace dmakit::mem
