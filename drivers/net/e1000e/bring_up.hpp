// The whole 82574 bring-up as one call, composed from device_init.hpp.
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/nic.hpp>
#include <dmakit/drivers/net/e1000e/device_init.hpp>
#include <dmakit/drivers/net/e1000e/hw_stats.hpp>
#include <dmakit/drivers/net/e1000e/register_access.hpp>

namespace dmakit::net::e1000e {

struct BringUpConfig {
    Timeouts timeouts;
    RingPlacement rx_ring;
    RingPlacement tx_ring;
    bool promiscuous = false;
};

// Reset, link up, MAC, multicast table, statistics baseline, RX and TX set-up
// (§4.6 order). Leaves interrupts masked (polling mode) and RDT = 0: the RX
// ring's first refill hands buffers to the device. `stats` is zeroed after the
// counters left from before the reset have been read away.
[[nodiscard]] Result<MacAddress> bring_up(RegisterAccess& regs, const BringUpConfig& config,
                                          HwStats& stats, const Sleeper& sleep = {});

}  // namespace dmakit::net::e1000e
