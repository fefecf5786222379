// Region: one contiguous mapping the buddy allocator manages.
//
// A region is created by a PageSource (hugepages or the 4 KiB fallback) and
// carved into buddy blocks. It remembers how it is backed (page size, how many
// bytes are physically contiguous) and the DMA address a mapper gave it. The
// DMA layer sets dma_base from a RegionListener before any byte of the region
// is handed out, so for every pointer p inside the region
//     dma(p) = dma_base + (p - cpu_base).
#pragma once

#include <dmakit/support/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>

namespace dmakit::mem {

class Region {
public:
    Region(std::byte* cpu_base, std::size_t length, std::size_t page_size,
           std::size_t contiguous_bytes, int numa_node, std::uint16_t slot) noexcept
        : cpu_base_(cpu_base),
          length_(length),
          page_size_(page_size),
          contiguous_bytes_(contiguous_bytes),
          numa_node_(numa_node),
          slot_(slot) {}

    Region(const Region&) = delete;
    Region& operator=(const Region&) = delete;

    [[nodiscard]] std::byte* cpu_base() const noexcept { return cpu_base_; }
    [[nodiscard]] std::size_t length() const noexcept { return length_; }
    // Size of the pages backing the region: 4 KiB, 2 MiB or 1 GiB.
    [[nodiscard]] std::size_t page_size() const noexcept { return page_size_; }
    // Bytes known to be physically contiguous from any page_size boundary
    // (one hugepage); what a no-IOMMU mode may hand a device in one piece.
    [[nodiscard]] std::size_t contiguous_bytes() const noexcept { return contiguous_bytes_; }
    // NUMA node the memory was bound to, or -1 when no binding was asked for.
    [[nodiscard]] int numa_node() const noexcept { return numa_node_; }
    // Stable small number naming the region in buddyinfo() and diagnostics.
    [[nodiscard]] std::uint16_t slot() const noexcept { return slot_; }

    [[nodiscard]] bool contains(const void* p) const noexcept {
        const auto offset = reinterpret_cast<std::uintptr_t>(p) -
                            reinterpret_cast<std::uintptr_t>(cpu_base_);
        return offset < length_;
    }

    // DMA (IOVA) address of cpu_base, set by whoever mapped the region for a
    // device; unset until then.
    [[nodiscard]] std::optional<std::uint64_t> dma_base() const noexcept { return dma_base_; }
    void set_dma_base(std::uint64_t dma_base) noexcept { dma_base_ = dma_base; }
    void clear_dma_base() noexcept { dma_base_.reset(); }

    // Highest device address the allocator wants this region at, asked for
    // when it grows for a Gfp::dma32 allocation (zone-like placement); a
    // mapper places the region at or below it. All ones: no limit.
    [[nodiscard]] std::uint64_t dma_limit() const noexcept { return dma_limit_; }
    void set_dma_limit(std::uint64_t limit) noexcept { dma_limit_ = limit; }

    // dma_base + offset of p; unset when p is outside or the region is unmapped.
    [[nodiscard]] std::optional<std::uint64_t> dma_address_of(const void* p) const noexcept {
        if (!dma_base_ || !contains(p)) return std::nullopt;
        return *dma_base_ + static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - cpu_base_);
    }

private:
    std::byte* cpu_base_;
    std::size_t length_;
    std::size_t page_size_;
    std::size_t contiguous_bytes_;
    int numa_node_;
    std::uint16_t slot_;
    std::optional<std::uint64_t> dma_base_;
    std::uint64_t dma_limit_ = ~std::uint64_t{0};
};

// Told about regions as they come and go; the DMA layer maps them into the
// IOMMU here. region_added runs before any memory of the region is handed
// out; if it fails the region is dropped and the allocation that needed it
// fails with this error. region_removing runs before shrink() (or the
// allocator's destructor) unmaps the memory. Calls are serialized per
// allocator; the listener must outlive the allocator.
class RegionListener {
public:
    virtual ~RegionListener() = default;
    [[nodiscard]] virtual Status region_added(Region& region) = 0;
    virtual void region_removing(Region& region) noexcept = 0;
};

}  // namespace dmakit::mem
