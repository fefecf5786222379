// PacketBuffer: the descriptor of one packet buffer.
//
// The metadata lives out of band, in an array the pool owns in ordinary heap
// memory, never inside the DMA-able buffer: a device can write any byte of a
// buffer mapped for it, so a faulty or hostile NIC may corrupt packet data but
// never the pool's bookkeeping (see docs/architecture.md, "keep it out of band").
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

namespace dmakit::net {

// Address the device uses for a buffer (an IOVA behind the IOMMU). A plain
// integer until the DMA layer's strong DmaAddr type lands; the glue swaps it.
using DeviceAddress = std::uint64_t;

class PacketPool;

struct PacketBuffer {
    std::byte* base = nullptr;     // first byte of the buffer memory (CPU view)
    DeviceAddress dma_base = 0;    // device address of `base`
    std::uint32_t capacity = 0;    // bytes of buffer memory
    std::uint32_t headroom = 0;    // packet data starts at base + headroom
    std::uint32_t length = 0;      // bytes of packet data
    std::uint32_t index = 0;       // slot in the owning pool (double-free check)
    PacketPool* pool = nullptr;    // owner; where the buffer is returned

    [[nodiscard]] std::byte* data() const noexcept { return base + headroom; }
    [[nodiscard]] DeviceAddress data_dma() const noexcept { return dma_base + headroom; }
    // Bytes from data() to the end of the buffer: the most a frame may occupy.
    [[nodiscard]] std::uint32_t room() const noexcept { return capacity - headroom; }
    [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data(), length}; }
};

}  // namespace dmakit::net
