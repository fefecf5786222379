// Kmalloc: general-purpose allocation on size classes, like the kernel's kmalloc.
//
// Sizes up to 8 KiB come from one SlabCache per class (8, 16, 32, 64, 96,
// 128, 192, 256, 512, 1 KiB, 2 KiB, 4 KiB, 8 KiB; power-of-two classes are
// aligned to their size, 96 and 192 to 32 and 64); larger sizes are whole
// buddy blocks. kfree and ksize find the owner from the page descriptor, so
// callers need not remember sizes.
#pragma once

#include <dmakit/mem/buddy.hpp>
#include <dmakit/mem/slab.hpp>
#include <dmakit/support/result.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <vector>

namespace dmakit::mem {

struct KmallocOptions {
    // Debug mode for every class; unset follows BuddyOptions::slab_debug.
    std::optional<bool> debug;
    DebugOptions debug_options;
};

class Kmalloc {
public:
    static constexpr std::size_t kMaxSlabSize = 8192;
    static constexpr std::array<std::size_t, 13> kClassSizes = {
        8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192};

    [[nodiscard]] static Result<std::unique_ptr<Kmalloc>> create(BuddyAllocator& buddy,
                                                                KmallocOptions options = {});

    // Null for a zero size or when memory is exhausted; try_kmalloc says why.
    // Flags as for SlabCache::alloc and BuddyAllocator::alloc_pages
    // (gfp.hpp). Gfp::dma32 is refused for sizes up to kMaxSlabSize, as the
    // kernel's kmalloc refuses GFP_DMA32: the size classes have no DMA32
    // zone; larger sizes take DMA32 pages.
    // `site` is recorded when leak tracking is on (call_site.hpp); the C
    // layer passes CallSite{__FILE__, __LINE__}.
    [[nodiscard]] void* kmalloc(std::size_t size, Gfp flags = gfp_kernel,
                                CallSite site = std::source_location::current()) noexcept;
    [[nodiscard]] void* kzalloc(std::size_t size, Gfp flags = gfp_kernel,
                                CallSite site = std::source_location::current()) noexcept;
    [[nodiscard]] Result<void*> try_kmalloc(std::size_t size, Gfp flags = gfp_kernel,
                                            CallSite site = std::source_location::current());

    // kfree(nullptr) does nothing, as in the kernel. Pointers this allocator
    // did not hand out are refused (logged, or reported in debug mode).
    void kfree(void* object) noexcept;
    [[nodiscard]] Status try_kfree(void* object);

    // Usable size of an allocation (its class or block size); 0 if unknown.
    [[nodiscard]] std::size_t ksize(const void* object) const noexcept;

    [[nodiscard]] std::vector<SlabInfo> slabinfo() const;
    // /proc/slabinfo-style text.
    [[nodiscard]] std::string format_slabinfo() const;
    // Flushes this thread's object caches (all classes).
    void drain_thread_caches() noexcept;
    [[nodiscard]] SlabCache& cache_for(std::size_t size) noexcept {
        return *caches_[class_index(size)];
    }

    // Class of a size in 1..kMaxSlabSize.
    [[nodiscard]] static unsigned class_index(std::size_t size) noexcept {
        if (size <= 192) return kSmallIndex[(size - 1) / 8];
        return static_cast<unsigned>(std::bit_width(size - 1)) - 1;  // 256 -> 7 ... 8192 -> 12
    }

private:
    explicit Kmalloc(BuddyAllocator& buddy) : buddy_(buddy) {}

    // A block for a size past the slab classes, recorded as kmalloc.
    [[nodiscard]] void* alloc_large(std::size_t size, Gfp flags, CallSite site) noexcept;

    // Class per 8-byte step up to 192 (as the kernel's size_index table).
    static constexpr std::array<std::uint8_t, 24> kSmallIndex = {
        0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6};

    BuddyAllocator& buddy_;
    std::array<std::unique_ptr<SlabCache>, kClassSizes.size()> caches_;
};

inline void* Kmalloc::kmalloc(std::size_t size, Gfp flags, CallSite site) noexcept {
    if (size - 1 < kMaxSlabSize) [[likely]] return caches_[class_index(size)]->alloc(flags, site);
    if (size == 0) return nullptr;
    return alloc_large(size, flags, site);
}

}  // namespace dmakit::mem
