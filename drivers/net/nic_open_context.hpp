// NicOpenContext: everything a driver's open() needs to bring a port up.
//
// Two ways to name the device:
//   - by address only: the port opens a dma::PciDomain of its own (VFIO
//     container, IOMMU domain, DMA context) with `dma_options`, and owns it;
//   - by `function`, a function of a PciDomain the caller opened and keeps
//     alive longer than the Nic. Ports that pass buffers to each other
//     (forwarding), or a NIC and an NVMe controller sharing buffers, are
//     functions of one domain this way.
// The packet pool is the port's own (made in the function's DMA context)
// unless `pool` names one that lives in the same DMA context.
#pragma once

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/pci/address.hpp>
#include <dmakit/support/log.hpp>

#include <chrono>
#include <cstdint>

namespace dmakit::net {

class PacketPool;

// How the port tells the program there is work: `polling` never arms an
// interrupt (rx_burst in a loop, as DPDK); `msix` maps RX/TX/other causes to
// MSI-X vectors and Nic::wait blocks on their eventfds.
enum class InterruptMode { polling, msix };

struct NicOpenContext {
    pci::PciAddress address;           // ignored when `function` is given
    dma::PciDmaOptions dma_options;    // used when the port opens its own domain

    // Borrowed; must outlive the Nic.
    dma::PciFunction* function = nullptr;

    // Borrowed RX pool in the same DMA context; null: the port makes one
    // of `pool_buffers` buffers (0: the driver's default, enough for its
    // rings plus 1024 in flight).
    PacketPool* pool = nullptr;
    std::uint32_t pool_buffers = 0;

    std::uint32_t rx_queues = 1;
    std::uint32_t tx_queues = 1;
    std::uint32_t rx_ring_size = 512;   // descriptors, power of two
    std::uint32_t tx_ring_size = 512;
    bool promiscuous = false;
    InterruptMode interrupts = InterruptMode::polling;
    std::chrono::milliseconds reset_timeout{100};
    // How long open() waits for the link before it gives up with a warning
    // (the port still opens; RX starts once the link comes up).
    std::chrono::milliseconds link_timeout{3000};
    const Logger* logger = nullptr;     // null: warnings go nowhere
};

}  // namespace dmakit::net
