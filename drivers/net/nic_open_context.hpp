// NicOpenContext: everything a driver's open() needs to bring a port up.
//
// Deliberately incomplete: the members that name the VFIO device and the DMA
// context are added by the glue once lib/dmakit/vfio and lib/dmakit/dma exist.
// Registry code and drivers see the type only by reference, so that addition
// changes no signature. Planned members (glue):
//   vfio::Device& device;         BAR0 mapping, MSI-X vectors, bus-master enable
//   dma::Context& dma;            coherent ring memory, the packet pool's mapping
//   PacketPool* rx_pool;          where RX buffers come from (or sizes to make one)
#pragma once

#include <dmakit/support/log.hpp>

#include <chrono>
#include <cstdint>

namespace dmakit::net {

struct NicOpenContext {
    std::uint32_t rx_queues = 1;
    std::uint32_t tx_queues = 1;
    std::uint32_t rx_ring_size = 512;   // descriptors, power of two
    std::uint32_t tx_ring_size = 512;
    bool promiscuous = false;
    std::chrono::milliseconds reset_timeout{100};
    const Logger* logger = nullptr;
};

}  // namespace dmakit::net
