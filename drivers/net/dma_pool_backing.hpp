// Packet pool memory from a DMA context: PoolBacking over the context's
// device slab cache (DmaContext::create_device_slab): under the pool policy
// slabs of the pool regions, mapped once with them; under the strict policy
// slabs mapped into the IOMMU one by one, so the device reaches the packet
// buffers and no other memory (as Linux's page_pool keeps its pages mapped).
// Every buffer's device address is found once, at creation: no map call, no
// system call, nothing to unmap per buffer.
//
// The backing takes all its buffers from the slab at creation and gives them
// back when destroyed; the PacketPool in front of it does the per-burst and
// per-thread bookkeeping (out of band, in heap memory the device cannot reach).
#pragma once

#include <dmakit/dma/context.hpp>
#include <dmakit/mem/slab.hpp>
#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/packet_pool.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace dmakit::net {

class SlabPoolBacking final : public PoolBacking {
public:
    // `count` buffers of `size` bytes (aligned to 128 so descriptor fetches
    // and the device's writes start on a cache line). ENOMEM naming the
    // hugepage reservation when the context runs out.
    [[nodiscard]] static Result<std::unique_ptr<SlabPoolBacking>> create(dma::DmaContext& context,
                                                                         std::string name,
                                                                         std::size_t count,
                                                                         std::size_t size);
    ~SlabPoolBacking() override;
    SlabPoolBacking(const SlabPoolBacking&) = delete;
    SlabPoolBacking& operator=(const SlabPoolBacking&) = delete;

    [[nodiscard]] std::size_t buffer_count() const noexcept override { return cpu_.size(); }
    [[nodiscard]] std::size_t buffer_size() const noexcept override { return size_; }
    [[nodiscard]] std::byte* cpu_address(std::size_t index) const noexcept override {
        return static_cast<std::byte*>(cpu_[index]);
    }
    [[nodiscard]] DeviceAddress dma_address(std::size_t index) const noexcept override {
        return dma_[index];
    }

private:
    SlabPoolBacking(std::unique_ptr<mem::SlabCache> slab, std::size_t size)
        : slab_(std::move(slab)), size_(size) {}
    void release() noexcept;

    std::unique_ptr<mem::SlabCache> slab_;
    std::size_t size_;
    std::vector<void*> cpu_;
    std::vector<DeviceAddress> dma_;
};

// A PacketPool whose buffers are pre-mapped for every device of `context`.
[[nodiscard]] Result<std::unique_ptr<PacketPool>> create_dma_packet_pool(
    dma::DmaContext& context, std::string name, std::size_t count,
    std::size_t buffer_size = 2048 + 128, PacketPoolConfig config = {});

}  // namespace dmakit::net
