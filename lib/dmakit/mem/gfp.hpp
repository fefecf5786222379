// Gfp: how an allocation may be satisfied, after the kernel's gfp_t.
//
// The kernel's flags say whether an allocation may sleep (and so reclaim or
// grow), whether to zero, whether a failure is worth a warning, and which
// zone the memory must come from. dmakit's allocators have the same four
// questions:
//   - may_grow: the pool may take more memory from the system (mmap of
//     hugepages, an IOMMU map): system calls, possibly slow. GFP_KERNEL.
//     Without it the allocation is "atomic": only memory already in the pool,
//     never a system call, the hot-path contract (GFP_ATOMIC, GFP_NOWAIT).
//   - zero: the memory is zeroed (__GFP_ZERO).
//   - no_warn: a failure returns its error but logs nothing (__GFP_NOWARN).
//   - dma32: for a device, the device address lies below 4 GiB (GFP_DMA32,
//     the zone the kernel keeps for 32-bit DMA masks).
// Calls that take no flags behave as gfp_kernel.
#pragma once

#include <cstdint>

namespace dmakit::mem {

enum class Gfp : std::uint32_t {
    none = 0,
    may_grow = 1u << 0,
    zero = 1u << 1,
    no_warn = 1u << 2,
    dma32 = 1u << 3,
};

[[nodiscard]] constexpr Gfp operator|(Gfp a, Gfp b) noexcept {
    return static_cast<Gfp>(static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b));
}
[[nodiscard]] constexpr Gfp operator&(Gfp a, Gfp b) noexcept {
    return static_cast<Gfp>(static_cast<std::uint32_t>(a) & static_cast<std::uint32_t>(b));
}
// True when every bit of `bits` is set in `flags`.
[[nodiscard]] constexpr bool has(Gfp flags, Gfp bits) noexcept { return (flags & bits) == bits && bits != Gfp::none; }

inline constexpr Gfp gfp_kernel = Gfp::may_grow;  // may grow the pool: system calls allowed
inline constexpr Gfp gfp_atomic = Gfp::none;      // only what the pool holds; never a system call

}  // namespace dmakit::mem
