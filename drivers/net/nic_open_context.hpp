// NicOpenContext: everything a driver's open() needs to bring a port up.
//
// Two ways to name the device:
//   - by address only: the driver opens its own dma::PciDmaDevice (VFIO
//     container, IOMMU domain, DMA context) with `dma_options`, and owns it;
//   - by borrowed handles (`device` + `dma`): the caller owns them and keeps
//     them alive longer than the Nic. Ports that pass buffers to each other
//     (forwarding) share one DMA context this way: see SharedDmaDomain.
// The packet pool is the driver's own (made from the device's DMA context)
// unless `pool` names one that lives in the same DMA context.
#pragma once

#include <dmakit/dma/device.hpp>
#include <dmakit/dma/pci_device.hpp>
#include <dmakit/pci/address.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/vfio/device.hpp>

#include <chrono>
#include <cstdint>

namespace dmakit::net {

class PacketPool;

// How the port tells the program there is work: `polling` never arms an
// interrupt (rx_burst in a loop, as DPDK); `msix` maps RX/TX/other causes to
// MSI-X vectors and Nic::wait blocks on their eventfds.
enum class InterruptMode { polling, msix };

struct NicOpenContext {
    pci::PciAddress address;
    dma::PciDmaOptions dma_options;    // used when the driver opens the device itself

    // Borrowed (both or neither); must outlive the Nic.
    vfio::Device* device = nullptr;
    dma::DmaDevice* dma = nullptr;

    // Borrowed RX pool in the same DMA context; null: the driver makes one
    // of `pool_buffers` buffers (0: enough for both rings plus 1024 in flight).
    PacketPool* pool = nullptr;
    std::uint32_t pool_buffers = 0;

    std::uint32_t rx_queues = 1;
    std::uint32_t tx_queues = 1;
    std::uint32_t rx_ring_size = 512;   // descriptors, power of two
    std::uint32_t tx_ring_size = 512;
    bool promiscuous = false;
    InterruptMode interrupts = InterruptMode::polling;
    std::chrono::milliseconds reset_timeout{100};
    // How long open() waits for STATUS.LU before it gives up with a warning
    // (the port still opens; RX starts once the link comes up).
    std::chrono::milliseconds link_timeout{3000};
    const Logger* logger = nullptr;     // null: warnings go nowhere
};

}  // namespace dmakit::net
