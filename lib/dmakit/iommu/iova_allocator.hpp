// IovaAllocator: hands out IO virtual address ranges for one IOMMU domain.
//
// It is a buddy allocator over IOVA space (not over memory): the usable ranges
// the kernel reports are cut into naturally aligned power-of-two blocks, and
// every allocation is one such block of bit_ceil(size) bytes. That gives the
// guarantees a DMA layer needs, each in O(log n) per call:
//   - inside the usable ranges (reserved windows such as the x86 MSI range
//     0xfee00000-0xfeefffff are never handed out),
//   - below the device's DMA mask (the block's last byte <= mask),
//   - aligned to the mapping size, so a 2 MiB region lands on a 2 MiB IOVA
//     boundary and the IOMMU can use a large page for it,
//   - freed blocks coalesce with their buddies, so space is fully reusable.
// The price is up to 2x of IOVA space per allocation; IOVA space (2^39 bytes
// and more on current IOMMUs) is cheap compared with memory.
//
// Policy: the smallest free block order that fits, and within it the highest
// address below the mask, so that low IOVA space stays free for devices with
// narrow (32-bit) masks, much like the kernel's top-down iova.c.
//
// The page at IOVA 0 is never handed out, so that 0 can never be a valid
// device address.
//
// Not thread-safe: IommuDomain serialises access.
#pragma once

#include <dmakit/iommu/backend.hpp>
#include <dmakit/support/number_text.hpp>
#include <dmakit/support/result.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace dmakit::iommu {

class IovaAllocator {
public:
    static constexpr unsigned kMaxOrder = 63;  // blocks up to 2^63 bytes
    static constexpr std::uint64_t block_bytes_max = std::uint64_t{1} << kMaxOrder;

    // `granule` is the smallest IOMMU page size (a power of two, >= 4096 is
    // typical); the ranges are trimmed inwards to it.
    [[nodiscard]] static Result<IovaAllocator> create(std::vector<IovaRange> usable,
                                                      std::uint64_t granule);

    // Allocates a block of at least `size` bytes whose last byte is <= dma_mask,
    // aligned to bit_ceil(max(size, align, granule)). `align` 0 means "by size";
    // otherwise it must be a power of two. Returns the block's first IOVA.
    // Fails with ENOMEM ("no free IOVA range of N bytes below mask 0x...")
    // when nothing fits, and with EINVAL for size 0 or a bad alignment.
    [[nodiscard]] Result<std::uint64_t> allocate(std::uint64_t size, std::uint64_t dma_mask,
                                                 std::uint64_t align = 0);

    // Bytes allocate(size, ..., align) sets aside: bit_ceil(max(size, align,
    // granule)); 0 for a size above 2^63, which allocate() refuses.
    [[nodiscard]] std::uint64_t block_for(std::uint64_t size, std::uint64_t align) const noexcept {
        if (size > block_bytes_max) return 0;
        return std::max({std::bit_ceil(size), align, granule_});
    }

    // Returns a block that allocate() handed out (by its first IOVA).
    [[nodiscard]] Status free(std::uint64_t iova);

    // Removes [range] from the free space (e.g. when the kernel shrinks the
    // usable ranges because a new group joined). EBUSY if an allocation
    // overlaps it; nothing changes then.
    [[nodiscard]] Status reserve(IovaRange range);

    [[nodiscard]] std::uint64_t granule() const noexcept { return granule_; }
    // The ranges as given to create(), trimmed to the granule, minus reserve()d ones.
    [[nodiscard]] const std::vector<IovaRange>& usable_ranges() const noexcept { return usable_; }
    [[nodiscard]] std::uint64_t free_bytes() const noexcept { return free_bytes_; }
    [[nodiscard]] std::size_t allocation_count() const noexcept { return allocated_.size(); }
    [[nodiscard]] std::size_t free_block_count() const noexcept;
    // Bytes set aside for the allocation starting at `iova`, or nullopt.
    [[nodiscard]] std::optional<std::uint64_t> block_size(std::uint64_t iova) const;
    // The largest block that could be allocated below `dma_mask` right now.
    [[nodiscard]] std::uint64_t largest_free_below(std::uint64_t dma_mask) const;

private:
    IovaAllocator() = default;

    void add_free_range(std::uint64_t start, std::uint64_t last);
    void remove_from_usable(std::uint64_t start, std::uint64_t last);

    std::uint64_t granule_ = 0;
    unsigned min_order_ = 0;
    std::uint64_t free_bytes_ = 0;
    std::vector<IovaRange> usable_;
    // free_[k]: first IOVA of each free block of 2^k bytes (red-black trees).
    std::array<std::set<std::uint64_t>, kMaxOrder + 1> free_;
    // first IOVA -> order of every live allocation.
    std::map<std::uint64_t, unsigned> allocated_;
};

// Hex for messages; lives in support so lower layers (pci) share it.
using dmakit::to_hex;

}  // namespace dmakit::iommu
