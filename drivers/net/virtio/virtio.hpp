// The virtio-net driver's entry points: the PCI IDs it claims and its
// factory (virtio 1.2 §5.1, modern PCI transport §4.1).
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/nic.hpp>
#include <dmakit/drivers/net/nic_driver.hpp>

#include <array>
#include <memory>
#include <string_view>

namespace dmakit::net::virtio {

inline constexpr std::array<PciId, 2> supported_ids{{
    {0x1AF4, 0x1041},  // modern virtio-net (QEMU: virtio-net-pci,disable-legacy=on)
    // Transitional virtio-net: claimed only so that open() can say why it
    // is refused and what to change, instead of "no driver".
    {0x1AF4, 0x1000},
}};

// Refuses anything but a modern virtio-net function: ENODEV naming `device`;
// for a transitional one, what to change (for QEMU: disable-legacy=on).
[[nodiscard]] Status check_pci_id(PciId id, std::string_view device);

// Opens a virtio-net port: ctx.rx_queues == ctx.tx_queues queue pairs, each
// driven by one thread (see docs/nic.md, "virtio-net").
[[nodiscard]] Result<std::unique_ptr<Nic>> open(NicOpenContext& context);

// The driver, as drivers/net/meson.build's table lists it.
inline constexpr NicDriver driver{"virtio", supported_ids, &open};

}  // namespace dmakit::net::virtio
