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
// 16 bytes at a time through a register (SSE2 on x86-64, the baseline),
// then the tail. Each chunk is loaded whole before it is stored, so the copy
// is also correct for overlapping ranges when dst <= src (front to back, as
// memmove in that direction). The empty asm with a memory clobber keeps GCC
// (-ftree-loop-distribute-patterns) and clang (loop idiom recognition) from
// turning the loops back into a memcpy/memmove call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dmakit {

inline void copy_inline(void* dst, const void* src, std::size_t bytes) noexcept {
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    std::size_t i = 0;
    for (; i + 16 <= bytes; i += 16) {
        unsigned char chunk[16];
        __builtin_memcpy(chunk, s + i, 16);
        __builtin_memcpy(d + i, chunk, 16);
        asm volatile("" ::: "memory");
    }
    for (; i < bytes; ++i) {
        d[i] = s[i];
        asm volatile("" ::: "memory");
    }
}

}  // namespace dmakit
