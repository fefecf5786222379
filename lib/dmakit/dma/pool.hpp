// DmaPool: small coherent blocks of one size (dma_pool_create, mm/dmapool.c)
// for things like NVMe PRP lists and NIC descriptors.
//
// Built on a slab cache over the context's page allocator, so blocks come
// from pool regions that are already mapped: a block's device address is its
// region's DMA base plus its offset, with no system call. No block crosses
// `boundary` (a power of two, e.g. 4 KiB for PRP lists). The slab keeps its
// free-object bookkeeping out of band, so a device writing into a block can
// corrupt that block only, never the pool. Every build refuses a double free
// or a free of anything but a live block (the slab's allocated byte), so one
// block (an NVMe PRP-list page) is never handed to two owners. Slab debug
// mode (BuddyOptions::slab_debug) adds poisoning and, except for bounded
// pools of blocks over 4 KiB, red zones; its detections are logged and
// refused, never fatal.
#pragma once

#include <dmakit/dma/device.hpp>
#include <dmakit/dma/pool_block.hpp>
#include <dmakit/dma/types.hpp>
#include <dmakit/mem/slab.hpp>
#include <dmakit/support/result.hpp>

#include <cstddef>
#include <memory>
#include <string>

namespace dmakit::dma {

class DmaPool {
public:
    struct Block {
        void* cpu = nullptr;
        DmaAddr dma;
    };

    // `size` bytes per block, aligned to `align` (a power of two; 0 means 8),
    // never crossing a `boundary` (0: no constraint, else a power of two
    // >= size). EINVAL otherwise. The device must outlive the pool. Blocks
    // come from the device's NUMA node (as it is at creation); `zone`
    // Gfp::dma32 keeps every block below 4 GiB device address.
    [[nodiscard]] static Result<std::unique_ptr<DmaPool>> create(std::string name, DmaDevice& device,
                                                                std::size_t size, std::size_t align,
                                                                std::size_t boundary,
                                                                mem::Gfp zone = mem::Gfp::none);
    ~DmaPool();
    DmaPool(const DmaPool&) = delete;
    DmaPool& operator=(const DmaPool&) = delete;

    // dma_pool_alloc / dma_pool_zalloc. ENOMEM when the page allocator is
    // out. Flags as SlabCache::alloc: without Gfp::may_grow only blocks and
    // pages already in the pool (and under IommuPolicy::strict, where a new
    // slab needs an IOMMU map, only slabs already mapped); Gfp::dma32 only
    // from a pool created with that zone (else EINVAL, saying so).
    // `site` is recorded when leak tracking is on (mem/call_site.hpp).
    [[nodiscard]] Result<Block> alloc(mem::Gfp flags = mem::gfp_kernel,
                                      mem::CallSite site = std::source_location::current());
    [[nodiscard]] Result<Block> zalloc(mem::Gfp flags = mem::gfp_kernel,
                                       mem::CallSite site = std::source_location::current());
    // alloc / zalloc as a handle that frees the block when it goes
    // (pool_block.hpp). The pool must outlive the handle.
    [[nodiscard]] Result<PoolBlock> alloc_block(mem::Gfp flags = mem::gfp_kernel,
                                                mem::CallSite site = std::source_location::current());
    [[nodiscard]] Result<PoolBlock> zalloc_block(mem::Gfp flags = mem::gfp_kernel,
                                                 mem::CallSite site = std::source_location::current());
    // dma_pool_free. A pointer that is not a live block of this pool (a
    // double free, a pointer inside a block, another pool's block) is
    // refused with EINVAL, logged and counted, and nothing changes.
    [[nodiscard]] Status free(void* cpu);

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::size_t block_size() const noexcept { return size_; }
    [[nodiscard]] mem::SlabInfo info() const { return cache_->info(); }
    [[nodiscard]] std::size_t invalid_frees() const noexcept { return cache_->invalid_frees(); }

private:
    friend class PoolBlock;  // logs its destructor's failures through device_

    DmaPool(std::string name, DmaDevice& device, std::size_t size, std::size_t boundary,
            bool dma32, std::unique_ptr<mem::SlabCache> cache);

    std::string name_;
    DmaDevice& device_;
    std::size_t size_;
    std::size_t boundary_;
    bool dma32_;
    std::unique_ptr<mem::SlabCache> cache_;
};

}  // namespace dmakit::dma
