// PageMap: the address range an allocator owns and its out-of-band metadata.
//
// One contiguous virtual range is reserved (PROT_NONE, nothing backed) when
// the allocator is created; regions are mapped into it as they are added.
// Because the range is fixed, metadata is plain arrays indexed by offset, in
// the manner of the kernel's SPARSEMEM_VMEMMAP:
//   * one PageDesc per 4 KiB page          -> desc(p)     = descs[(p - base) >> 12]
//   * one Region* per 2 MiB granule        -> region(p)   = granules[(p - base) >> 21]
// Both arrays are mapped MAP_NORESERVE, so only the parts covering live
// regions ever occupy memory. Lookups are O(1), take no lock and make no
// system call; region pointers are published with release/acquire so a
// reader on another thread sees a fully initialised Region.
#pragma once

#include <dmakit/mem/page.hpp>
#include <dmakit/mem/region.hpp>
#include <dmakit/support/memory_mapping.hpp>
#include <dmakit/support/result.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dmakit::mem {

class PageMap {
public:
    // Reserves `bytes` (a multiple of 1 GiB) of address space aligned to
    // 1 GiB, so buddy blocks up to order 18 are aligned to their size.
    [[nodiscard]] static Result<PageMap> reserve(std::size_t bytes);

    PageMap(PageMap&&) noexcept = default;
    PageMap& operator=(PageMap&&) noexcept = default;

    [[nodiscard]] std::byte* base() const noexcept { return base_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::uint32_t page_count() const noexcept {
        return static_cast<std::uint32_t>(size_ >> kPageShift);
    }

    [[nodiscard]] bool contains(const void* p) const noexcept { return offset_of(p) < size_; }
    [[nodiscard]] std::uintptr_t offset_of(const void* p) const noexcept {
        return reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(base_);
    }
    [[nodiscard]] std::uint32_t page_index(const void* p) const noexcept {
        return static_cast<std::uint32_t>(offset_of(p) >> kPageShift);
    }
    [[nodiscard]] std::byte* page_address(std::uint32_t index) const noexcept {
        return base_ + (std::size_t{index} << kPageShift);
    }
    [[nodiscard]] PageDesc& desc(std::uint32_t index) const noexcept { return descs_[index]; }
    // Descriptor of the page holding p, which must be inside the range.
    [[nodiscard]] PageDesc& desc_of(const void* p) const noexcept { return descs_[page_index(p)]; }

    // One Region* per 2 MiB granule (null: no live region), read with
    // acquire loads; BuddyAllocator::region_of (inline, public) reads it.
    [[nodiscard]] Region** granules() const noexcept { return granules_; }

    // Finds a free, `alignment`-aligned run of address space for a region.
    [[nodiscard]] Result<std::byte*> place(std::size_t length, std::size_t alignment);
    void unplace(std::byte* address, std::size_t length) noexcept;

    // Makes BuddyAllocator::region_of() answer for the region's range / stop answering.
    void publish(Region& region) noexcept;
    void unpublish(const Region& region) noexcept;

    // Descriptors of [address, address + length): all tails of `slot` / all
    // unmanaged again (their memory is given back where whole pages allow).
    void init_descs(std::byte* address, std::size_t length, std::uint16_t slot) noexcept;
    void clear_descs(std::byte* address, std::size_t length) noexcept;

    // Resident bytes of the descriptor and granule arrays (mincore).
    [[nodiscard]] std::size_t resident_metadata_bytes() const noexcept;

private:
    PageMap() = default;

    MemoryMapping arena_;
    MemoryMapping desc_mapping_;
    MemoryMapping granule_mapping_;
    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
    PageDesc* descs_ = nullptr;
    Region** granules_ = nullptr;
    std::vector<bool> granule_used_;
};

}  // namespace dmakit::mem
