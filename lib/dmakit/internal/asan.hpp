// Manual AddressSanitizer poisoning of allocator memory.
//
// ASan only knows malloc'd memory; our pages come from mmap. In ASan builds
// free blocks and free slab objects are poisoned so a use-after-free is
// reported at the faulting access. Everything is a no-op otherwise.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define DMAKIT_MEM_ASAN 1
#else
#define DMAKIT_MEM_ASAN 0
#endif

namespace dmakit::mem {

inline void asan_poison([[maybe_unused]] const void* p, [[maybe_unused]] std::size_t n) noexcept {
#if DMAKIT_MEM_ASAN
    ASAN_POISON_MEMORY_REGION(p, n);
#endif
}

inline void asan_unpoison([[maybe_unused]] const void* p, [[maybe_unused]] std::size_t n) noexcept {
#if DMAKIT_MEM_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
}

}  // namespace dmakit::mem
