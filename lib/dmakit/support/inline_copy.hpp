// copy_inline: a copy for packet hot paths that never calls the C library.
//
// Why not memcpy/memmove: for a size known only at run time the compiler
// emits a call, and glibc resolves it (IFUNC) to the widest variant the CPU
// reports. In the VM bench (QEMU 7.2 TCG, guest CPU "max") that is the AVX2
// code, and the 256-bit guest instructions leave the host in a state that
// makes QEMU's own SSE code pay a transition penalty on every DMA the
// emulated NIC does: pktgen used about twice testpmd's host CPU per frame,
// all of it in QEMU's DMA path, until the pool and pktgen stopped calling
// memcpy/memmove per burst (docs/performance.md, NIC). DPDK keeps the same
// calls out of its datapath with its inline rte_memcpy. On hardware the loop
// costs what a call would for the sizes here (a few hundred bytes at most).
//
// 16 bytes at a time through a register (SSE2 on x86-64, the baseline).
// A tail of 1..15 bytes after the chunks is the last 16 bytes of the range as
// one more chunk, overlapping the previous one; a range under 16 bytes goes 8,
// 4, 2, 1 bytes at a time. Under TCG every guest load and store is a
// software-TLB lookup, so a 60-byte frame's copy is 4 loads and 4 stores, not
// 3 + 3 and a byte loop of 12 + 12 (docs/performance.md, NIC).
//
// Correct for overlapping ranges when dst <= src, as memmove in that
// direction: every chunk is loaded whole before it is stored, front to back,
// and the overlapping last chunk is loaded before anything is stored. The
// empty asm with a memory clobber keeps GCC (-ftree-loop-distribute-patterns)
// and clang (loop idiom recognition) from turning the loop back into a
// memcpy/memmove call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dmakit {

namespace detail {

template <std::size_t N>
inline void copy_piece(unsigned char* d, const unsigned char* s) noexcept {
    unsigned char piece[N];
    __builtin_memcpy(piece, s, N);
    __builtin_memcpy(d, piece, N);
    asm volatile("" ::: "memory");
}

}  // namespace detail

inline void copy_inline(void* dst, const void* src, std::size_t bytes) noexcept {
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    if (bytes >= 16) {
        unsigned char last[16];
        __builtin_memcpy(last, s + bytes - 16, 16);  // before any store: see above
        asm volatile("" ::: "memory");
        std::size_t i = 0;
        for (; i + 16 <= bytes; i += 16) detail::copy_piece<16>(d + i, s + i);
        if (i != bytes) {
            __builtin_memcpy(d + bytes - 16, last, 16);
            asm volatile("" ::: "memory");
        }
        return;
    }
    std::size_t i = 0;
    if (bytes & 8) { detail::copy_piece<8>(d + i, s + i); i += 8; }
    if (bytes & 4) { detail::copy_piece<4>(d + i, s + i); i += 4; }
    if (bytes & 2) { detail::copy_piece<2>(d + i, s + i); i += 2; }
    if (bytes & 1) detail::copy_piece<1>(d + i, s + i);
}

}  // namespace dmakit
