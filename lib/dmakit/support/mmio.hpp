// MMIO accessors and DMA barriers, for x86-64.
//
// A driver talks to its device through two kinds of memory: device registers
// in a mapped BAR (uncached, "UC", as vfio-pci maps BARs with
// pgprot_noncached) and DMA memory in RAM (write-back cached, coherent with the
// device on x86). These helpers give the orderings the Linux kernel's
// readl/writel, readl_relaxed/writel_relaxed and dma_rmb/dma_wmb give
// (include/asm-generic/io.h, arch/x86/include/asm/barrier.h), so code ported
// from a kernel driver keeps its meaning.
//
// What x86-64 guarantees by itself (Intel SDM vol. 3, 9.2 "Memory ordering"):
// stores are not reordered with other stores, loads are not reordered with
// other loads, and UC accesses are not reordered with anything. What it does
// not: a load may pass an earlier store to a different address (only mb()
// stops that), and write-combining (WC) or non-temporal stores are weakly
// ordered (only sfence/wmb() orders them). The compiler, however, may reorder
// any plain memory access around a volatile one unless told not to; that is
// what the "memory" clobbers below are for.
//
//   accessor / barrier     CPU instruction     ordering it gives
//   ---------------------  ------------------  -----------------------------------------------
//   read32/read64          mov (UC load)       compiler barrier before and after: later reads
//                                              of DMA memory are not hoisted above it (readl)
//   write32/write64        mov (UC store)      compiler barrier before and after: earlier
//                                              stores to DMA memory are visible to the device
//                                              before the device sees this write (writel)
//   read32_relaxed/...     mov                 ordered only against other MMIO accesses, not
//   write32_relaxed/...                        against normal memory (readl_relaxed/
//                                              writel_relaxed); for register-only sequences
//   dma_wmb()              compiler barrier    orders CPU stores to DMA memory among
//                                              themselves, e.g. descriptor body before its
//                                              "owned by device" bit
//   dma_rmb()              compiler barrier    orders CPU loads of DMA memory, e.g. a
//                                              completion's phase/DD bit before its body
//   wmb()                  sfence              also orders WC and non-temporal stores: use it
//                                              before a doorbell when descriptors were written
//                                              with streaming stores or into a WC mapping
//   rmb()                  lfence              loads against loads incl. non-temporal loads
//   mb()                   mfence              everything, including a load passing an
//                                              earlier store (store-then-read-back protocols)
//
// The common pattern, "fill descriptors in DMA memory, then ring the doorbell",
// needs nothing more than write32() for the doorbell: x86 keeps the stores in
// order, and write32's compiler barrier keeps the compiler from sinking the
// descriptor stores below it. If the BAR or the descriptor ring is mapped
// write-combining (not what VFIO does), put wmb() before the doorbell.
#pragma once

#include <cstddef>
#include <cstdint>

#if !defined(__x86_64__)
#error "dmakit/support/mmio.hpp: barriers are written for x86-64 only; other ISAs need real fences (dsb/dmb on arm64)"
#endif

namespace dmakit::mmio {

// Compiler-only barrier: no instruction, but no memory access moves across it.
inline void compiler_barrier() noexcept { asm volatile("" ::: "memory"); }

inline void dma_wmb() noexcept { compiler_barrier(); }
inline void dma_rmb() noexcept { compiler_barrier(); }
inline void wmb() noexcept { asm volatile("sfence" ::: "memory"); }
inline void rmb() noexcept { asm volatile("lfence" ::: "memory"); }
inline void mb() noexcept { asm volatile("mfence" ::: "memory"); }

namespace detail {
template <typename T>
inline volatile T* at(volatile void* base, std::size_t offset) noexcept {
    return reinterpret_cast<volatile T*>(static_cast<volatile std::byte*>(base) + offset);
}
template <typename T>
inline const volatile T* at(const volatile void* base, std::size_t offset) noexcept {
    return reinterpret_cast<const volatile T*>(static_cast<const volatile std::byte*>(base) +
                                               offset);
}
}  // namespace detail

// Relaxed: a single volatile access of the full width (the compiler emits one
// mov for an aligned volatile access), no ordering against normal memory.
// 8- and 16-bit widths exist for register files that require them (virtio's
// common configuration: "8-bit wide accesses for 8-bit wide fields", virtio
// 1.2 §4.1.3.1).
inline std::uint8_t read8_relaxed(const volatile void* base, std::size_t offset) noexcept {
    return *detail::at<std::uint8_t>(base, offset);
}
inline std::uint16_t read16_relaxed(const volatile void* base, std::size_t offset) noexcept {
    return *detail::at<std::uint16_t>(base, offset);
}
inline void write8_relaxed(volatile void* base, std::size_t offset, std::uint8_t value) noexcept {
    *detail::at<std::uint8_t>(base, offset) = value;
}
inline void write16_relaxed(volatile void* base, std::size_t offset, std::uint16_t value) noexcept {
    *detail::at<std::uint16_t>(base, offset) = value;
}
inline std::uint32_t read32_relaxed(const volatile void* base, std::size_t offset) noexcept {
    return *detail::at<std::uint32_t>(base, offset);
}
inline std::uint64_t read64_relaxed(const volatile void* base, std::size_t offset) noexcept {
    return *detail::at<std::uint64_t>(base, offset);
}
inline void write32_relaxed(volatile void* base, std::size_t offset, std::uint32_t value) noexcept {
    *detail::at<std::uint32_t>(base, offset) = value;
}
inline void write64_relaxed(volatile void* base, std::size_t offset, std::uint64_t value) noexcept {
    *detail::at<std::uint64_t>(base, offset) = value;
}

// Ordered, like readb/readw/readl/writel: see the table above. One access
// of the width between two compiler barriers, whatever the width.
namespace detail {
template <typename T>
inline T ordered_read(const volatile void* base, std::size_t offset) noexcept {
    compiler_barrier();
    const T value = *at<T>(base, offset);
    compiler_barrier();
    return value;
}
template <typename T>
inline void ordered_write(volatile void* base, std::size_t offset, T value) noexcept {
    compiler_barrier();
    *at<T>(base, offset) = value;
    compiler_barrier();
}
}  // namespace detail

inline std::uint8_t read8(const volatile void* base, std::size_t offset) noexcept {
    return detail::ordered_read<std::uint8_t>(base, offset);
}
inline std::uint16_t read16(const volatile void* base, std::size_t offset) noexcept {
    return detail::ordered_read<std::uint16_t>(base, offset);
}
inline std::uint32_t read32(const volatile void* base, std::size_t offset) noexcept {
    return detail::ordered_read<std::uint32_t>(base, offset);
}
inline std::uint64_t read64(const volatile void* base, std::size_t offset) noexcept {
    return detail::ordered_read<std::uint64_t>(base, offset);
}
inline void write8(volatile void* base, std::size_t offset, std::uint8_t value) noexcept {
    detail::ordered_write(base, offset, value);
}
inline void write16(volatile void* base, std::size_t offset, std::uint16_t value) noexcept {
    detail::ordered_write(base, offset, value);
}
inline void write32(volatile void* base, std::size_t offset, std::uint32_t value) noexcept {
    detail::ordered_write(base, offset, value);
}
inline void write64(volatile void* base, std::size_t offset, std::uint64_t value) noexcept {
    detail::ordered_write(base, offset, value);
}

}  // namespace dmakit::mmio
