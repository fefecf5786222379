// 82574 bring-up, written as functions over RegisterAccess so the unit tests
// run them against a fake register file.
//
// Order follows the datasheet's software initialization sequence (§4.6):
// mask interrupts, global reset, mask again, general configuration and link,
// statistics, then receive and transmit set-up. Every wait has a timeout, and
// a STATUS that reads all ones (the device has gone) is an error, never a
// value to act on.
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/nic.hpp>
#include <dmakit/drivers/net/packet_buffer.hpp>
#include <dmakit/drivers/net/e1000e/register_access.hpp>

#include <chrono>
#include <cstdint>
#include <functional>

namespace dmakit::net::e1000e {

// Waits between register polls. Injected so tests do not sleep; the default
// (nullptr) sleeps with std::this_thread::sleep_for.
using Sleeper = std::function<void(std::chrono::microseconds)>;

struct Timeouts {
    std::chrono::microseconds reset{100'000};    // CTRL.RST to self-clear
    std::chrono::microseconds nvm_auto_read{20'000};  // EECD.AUTO_RD after reset
    std::chrono::microseconds nvm_word{10'000};  // one EERD read
    std::chrono::microseconds poll_interval{100};
};

// ENODEV when STATUS reads all ones; `what` names the step for the message.
[[nodiscard]] Status check_present(RegisterAccess& regs, const char* what);

// Masks every interrupt cause and clears pending ones (§4.6.1).
void mask_interrupts(RegisterAccess& regs);

// Global reset: CTRL.RST, wait for it to self-clear, then for the NVM
// auto-read, then masks interrupts again (the reset re-enables nothing, but
// causes may be pending). ETIMEDOUT / ENODEV on failure.
[[nodiscard]] Status reset(RegisterAccess& regs, const Timeouts& timeouts, const Sleeper& sleep);

// Link up without forcing speed/duplex: CTRL.SLU + ASDE, PHY reset bit clear.
void set_link_up(RegisterAccess& regs);

// MAC from RAL0/RAH0 when RAH0.AV is set and the address is a valid unicast;
// otherwise from NVM words 0..2 through EERD. Programs RAL0/RAH0 (with AV) with
// the result so the unicast filter matches it. EIO when neither holds one.
[[nodiscard]] Result<MacAddress> read_mac_address(RegisterAccess& regs, const Timeouts& timeouts,
                                                  const Sleeper& sleep);

// One NVM word through EERD. ETIMEDOUT when DONE never sets.
[[nodiscard]] Result<std::uint16_t> read_nvm_word(RegisterAccess& regs, std::uint32_t address,
                                                  const Timeouts& timeouts, const Sleeper& sleep);

void clear_multicast_table(RegisterAccess& regs);

struct RingPlacement {
    DeviceAddress dma = 0;          // descriptor ring base, 16-byte aligned
    std::uint32_t descriptors = 0;  // ring size; RDLEN/TDLEN = 16 * this
};

struct RxSetup {
    RingPlacement ring;
    bool promiscuous = false;
};

// Legacy descriptors (RFCTL.EXTEN = 0), 2048-byte buffers, CRC stripped,
// broadcast accepted, head = tail = 0, then RCTL.EN (§4.6 receive init).
// The RX ring's first refill then moves RDT.
void configure_rx(RegisterAccess& regs, const RxSetup& setup, std::uint32_t queue = 0);

// TDBA/TDLEN, head = tail = 0, TIPG, TARC enable, then TCTL: EN, PSP,
// CT = 15, COLD = 63 (full duplex) (§4.6 transmit init).
void configure_tx(RegisterAccess& regs, RingPlacement ring, std::uint32_t queue = 0);

// RCTL.UPE/MPE on or off; leaves every other RCTL bit as it is.
void set_promiscuous(RegisterAccess& regs, bool enabled);

// Link state from STATUS (LU, FD, SPEED). ENODEV when STATUS reads all ones.
[[nodiscard]] Result<LinkStatus> read_link(RegisterAccess& regs);

// Stops both directions (RCTL.EN, TCTL.EN off) so rings can be torn down.
void disable_rx_tx(RegisterAccess& regs);

}  // namespace dmakit::net::e1000e
