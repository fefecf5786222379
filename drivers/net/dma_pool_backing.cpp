#include <dmakit/drivers/net/dma_pool_backing.hpp>

#include <cerrno>

namespace dmakit::net {

Result<std::unique_ptr<SlabPoolBacking>> SlabPoolBacking::create(dma::DmaContext& context,
                                                                 std::string name,
                                                                 std::size_t count,
                                                                 std::size_t size) {
    if (count == 0 || size == 0) {
        return Error(EINVAL, "packet pool " + name + ": needs at least one buffer of non-zero size");
    }
    mem::SlabCacheOptions options;
    options.align = 128;
    // Below the pool window, as pool memory is, so every device of the
    // context can use every buffer.
    auto slab = context.create_device_slab(name, size, options, context.config().pool_dma_mask);
    if (!slab.ok()) return std::move(slab).error();
    std::unique_ptr<SlabPoolBacking> backing(new SlabPoolBacking(std::move(slab).value(), size));
    backing->cpu_.reserve(count);
    backing->dma_.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        auto object = backing->slab_->try_alloc();
        if (!object.ok()) {
            return Error(ENOMEM, "packet pool " + name + ": got " + std::to_string(i) + " of " +
                                     std::to_string(count) + " buffers of " + std::to_string(size) +
                                     " bytes (" + object.error().message() +
                                     "); reserve more hugepages or ask for fewer buffers");
        }
        backing->cpu_.push_back(*object);
        const auto dma = context.device_slab_address(*backing->slab_, *object);
        if (!dma) {
            // A device slab's objects have an address by construction; anything else is a bug below us.
            return Error(EFAULT, "packet pool " + name + ": slab object has no device address");
        }
        backing->dma_.push_back(dma->value());
    }
    return backing;
}

void SlabPoolBacking::release() noexcept {
    for (void* p : cpu_) slab_->free(p);
    cpu_.clear();
    dma_.clear();
    slab_->drain_thread_cache();
}

SlabPoolBacking::~SlabPoolBacking() { release(); }

Result<std::unique_ptr<PacketPool>> create_dma_packet_pool(dma::DmaContext& context,
                                                           std::string name, std::size_t count,
                                                           std::size_t buffer_size,
                                                           PacketPoolConfig config) {
    DMAKIT_ASSIGN_OR_RETURN(auto backing,
                            SlabPoolBacking::create(context, std::move(name), count, buffer_size));
    return PacketPool::create(std::move(backing), config);
}

}  // namespace dmakit::net
