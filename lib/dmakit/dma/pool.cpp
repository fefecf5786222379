#include <dmakit/dma/pool.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

namespace dmakit::dma {

DmaPool::DmaPool(std::string name, DmaDevice& device, std::size_t size, std::size_t boundary,
                 bool dma32, std::unique_ptr<mem::SlabCache> cache)
    : name_(std::move(name)),
      device_(device),
      size_(size),
      boundary_(boundary),
      dma32_(dma32),
      cache_(std::move(cache)) {}

DmaPool::~DmaPool() = default;

Result<std::unique_ptr<DmaPool>> DmaPool::create(std::string name, DmaDevice& device,
                                                 std::size_t size, std::size_t align,
                                                 std::size_t boundary, mem::Gfp zone) {
    const std::string what = "DMA pool '" + name + "' for " + device.name();
    if (size == 0) return Error(EINVAL, what + ": block size 0");
    if (zone != mem::Gfp::none && zone != mem::Gfp::dma32) {
        return Error(EINVAL, what + ": the zone may be Gfp::dma32 or none; pass other flags to alloc()");
    }
    const bool dma32 = zone == mem::Gfp::dma32;
    if (align == 0) align = 8;
    if (!std::has_single_bit(align)) return Error(EINVAL, what + ": alignment " + std::to_string(align) + " is not a power of two");
    if (boundary != 0 && (!std::has_single_bit(boundary) || boundary < size)) {
        return Error(EINVAL, what + ": boundary " + std::to_string(boundary) +
                                 " must be a power of two no smaller than the block size " +
                                 std::to_string(size));
    }
    std::size_t object_size = std::max(size, align);
    mem::SlabCacheOptions options;
    options.align = align;
    // Slab debug (BuddyOptions::slab_debug) reports and refuses; a library
    // path never aborts.
    options.debug_options.abort_on_detection = false;
    options.tracked_as = mem::AllocKind::dma_pool;
    if (boundary != 0) {
        // Power-of-two blocks aligned to their size never straddle a larger
        // power-of-two boundary. Red zones are whole multiples of the slab
        // alignment, so up to a page they keep every block aligned to its
        // size; past a page (slab alignment stops at 4 KiB) they would shift
        // blocks across the boundary, so such pools check frees and poison
        // in debug mode, without red zones.
        object_size = std::bit_ceil(object_size);
        options.align = std::min<std::size_t>(object_size, mem::kPageSize);
        if (object_size > mem::kPageSize) options.debug_options.red_zone = false;
    }
    // Zone and node of the slabs. Under the strict policy slabs are mapped
    // one by one: DMA32 is then the mask of that map, not a pool zone.
    std::uint64_t mask = device.coherent_mask();
    if (dma32 && device.context().config().policy == IommuPolicy::strict) {
        mask = std::min(mask, dma_bit_mask(32));
    } else if (dma32) {
        options.page_flags = mem::Gfp::dma32;
    }
    options.numa_node = device.numa_node();
    auto cache = device.context().create_device_slab("dma-" + name, object_size, std::move(options), mask);
    if (!cache.ok()) return std::move(cache).error().with_context(what);
    return std::unique_ptr<DmaPool>(
        new DmaPool(std::move(name), device, size, boundary, dma32, std::move(cache).value()));
}

Result<DmaPool::Block> DmaPool::alloc(mem::Gfp flags, mem::CallSite site) {
    if (has(flags, mem::Gfp::dma32) && !dma32_) {
        Error error(EINVAL, "DMA pool '" + name_ + "': Gfp::dma32 asked of a pool not created "
                            "for DMA32; create it with DmaPool::create(..., Gfp::dma32)");
        if (!has(flags, mem::Gfp::no_warn)) device_.context().logger().warning(error.message());
        return error;
    }
    // The cache's zone is the pool's; the call's dma32 is satisfied by it.
    auto object = cache_->try_alloc(flags & (mem::Gfp::may_grow | mem::Gfp::zero | mem::Gfp::no_warn), site);
    if (!object.ok()) return std::move(object).error().with_context("DMA pool '" + name_ + "'");
    void* cpu = *object;
    auto dma = device_.context().device_slab_address(*cache_, cpu);
    auto fail = [&](std::string message) -> Error {
        cache_->free(cpu);
        return Error(EIO, "DMA pool '" + name_ + "': " + std::move(message));
    };
    if (!dma) return fail("block has no device address (its region is not mapped)");
    if (dma->value() + (size_ - 1) > device_.coherent_mask()) {
        return fail("block at " + iommu::to_hex(dma->value()) + " is above the coherent mask of " +
                    device_.name());
    }
    if (boundary_ != 0 && (dma->value() / boundary_) != ((dma->value() + size_ - 1) / boundary_)) {
        return fail("block at " + iommu::to_hex(dma->value()) + " would cross a " +
                    std::to_string(boundary_) + "-byte boundary");
    }
    return Block{cpu, *dma};
}

Result<DmaPool::Block> DmaPool::zalloc(mem::Gfp flags, mem::CallSite site) {
    DMAKIT_ASSIGN_OR_RETURN(Block block, alloc(flags, site));
    std::memset(block.cpu, 0, size_);
    return block;
}

Result<PoolBlock> DmaPool::alloc_block(mem::Gfp flags, mem::CallSite site) {
    DMAKIT_ASSIGN_OR_RETURN(Block block, alloc(flags, site));
    return PoolBlock(this, block.cpu, block.dma, site);
}

Result<PoolBlock> DmaPool::zalloc_block(mem::Gfp flags, mem::CallSite site) {
    DMAKIT_ASSIGN_OR_RETURN(Block block, zalloc(flags, site));
    return PoolBlock(this, block.cpu, block.dma, site);
}

Status DmaPool::free(void* cpu) {
    auto status = cache_->try_free(cpu);
    if (!status.ok()) return std::move(status).error().with_context("DMA pool '" + name_ + "'");
    return {};
}

}  // namespace dmakit::dma
