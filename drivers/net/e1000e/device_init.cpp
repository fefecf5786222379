#include <dmakit/drivers/net/e1000e/device_init.hpp>

#include <dmakit/drivers/net/e1000e/regs.hpp>

#include <cerrno>
#include <string>
#include <thread>

namespace dmakit::net::e1000e {

namespace {

void pause(const Sleeper& sleep, std::chrono::microseconds interval) {
    if (sleep) sleep(interval);
    else std::this_thread::sleep_for(interval);
}

Error gone(const char* what) {
    return Error(ENODEV, std::string("e1000e: device stopped responding (STATUS reads all ones) ") +
                             what + "; it was removed, its BAR is not enabled, or another "
                                    "driver reset it; check lspci and the vfio-pci binding");
}

// Polls until `done(value)` or the timeout; ENODEV if the register turns into
// all ones meanwhile (a removed device), ETIMEDOUT at the end.
template <typename Done>
Result<std::uint32_t> poll(RegisterAccess& regs, std::uint32_t offset, Done done,
                           std::chrono::microseconds timeout,
                           std::chrono::microseconds interval, const Sleeper& sleep,
                           const char* what) {
    if (interval.count() <= 0) interval = std::chrono::microseconds{1};
    std::chrono::microseconds waited{0};
    for (;;) {
        const std::uint32_t v = regs.read32(offset);
        if (v == all_ones) return gone(what);
        if (done(v)) return v;
        if (waited >= timeout) {
            return Error(ETIMEDOUT, std::string("e1000e: timed out after ") +
                                        std::to_string(timeout.count()) + " us " + what +
                                        "; check that the device is an 82574, then give it a "
                                        "function reset: dmakit unbind <bdf> && dmakit bind <bdf> "
                                        "(vfio-pci resets it when it is opened again)");
        }
        pause(sleep, interval);
        waited += interval;
    }
}

}  // namespace

Status check_present(RegisterAccess& regs, const char* what) {
    if (regs.read32(reg::STATUS) == all_ones) return gone(what);
    return {};
}

void mask_interrupts(RegisterAccess& regs) {
    regs.write32(reg::IMC, bits::INT_ALL);
    (void)regs.read32(reg::ICR);  // ICR clears on read: drop stale causes
}

Status reset(RegisterAccess& regs, const Timeouts& timeouts, const Sleeper& sleep) {
    DMAKIT_TRY(check_present(regs, "before reset"));
    mask_interrupts(regs);
    // Stop DMA before pulling reset (the device may still own rings set up by
    // an earlier user of this port).
    regs.write32(reg::RCTL, 0);
    regs.write32(reg::TCTL, 0);

    regs.write32(reg::CTRL, regs.read32(reg::CTRL) | bits::CTRL_RST);
    pause(sleep, std::chrono::microseconds{1000});  // no register access during the first 1 ms
    DMAKIT_TRY(poll(regs, reg::CTRL, [](std::uint32_t v) { return (v & bits::CTRL_RST) == 0; },
                    timeouts.reset, timeouts.poll_interval, sleep,
                    "waiting for CTRL.RST to clear after global reset"));
    DMAKIT_TRY(poll(regs, reg::EECD, [](std::uint32_t v) { return (v & bits::EECD_AUTO_RD) != 0; },
                    timeouts.nvm_auto_read, timeouts.poll_interval, sleep,
                    "waiting for the NVM auto-read (EECD.AUTO_RD) after reset"));
    mask_interrupts(regs);
    return {};
}

void set_link_up(RegisterAccess& regs) {
    std::uint32_t ctrl = regs.read32(reg::CTRL);
    ctrl |= bits::CTRL_SLU | bits::CTRL_ASDE;
    ctrl &= ~(bits::CTRL_FRCSPD | bits::CTRL_FRCDPX | bits::CTRL_PHY_RST | bits::CTRL_RST |
              bits::CTRL_VME);
    regs.write32(reg::CTRL, ctrl);
}

Result<std::uint16_t> read_nvm_word(RegisterAccess& regs, std::uint32_t address,
                                    const Timeouts& timeouts, const Sleeper& sleep) {
    regs.write32(reg::EERD, (address << bits::EERD_ADDR_SHIFT) | bits::EERD_START);
    DMAKIT_ASSIGN_OR_RETURN(const std::uint32_t v,
                            poll(regs, reg::EERD,
                                 [](std::uint32_t x) { return (x & bits::EERD_DONE) != 0; },
                                 timeouts.nvm_word, timeouts.poll_interval, sleep,
                                 "waiting for an NVM read (EERD.DONE)"));
    return static_cast<std::uint16_t>(v >> bits::EERD_DATA_SHIFT);
}

Result<MacAddress> read_mac_address(RegisterAccess& regs, const Timeouts& timeouts,
                                    const Sleeper& sleep) {
    MacAddress mac;
    const std::uint32_t ral = regs.read32(reg::RAL0);
    const std::uint32_t rah = regs.read32(reg::RAH0);
    if (rah == all_ones && ral == all_ones) return gone("reading the MAC address");
    if ((rah & bits::RAH_AV) != 0) {
        for (int i = 0; i < 4; ++i) mac.bytes[i] = static_cast<std::uint8_t>(ral >> (8 * i));
        for (int i = 0; i < 2; ++i) mac.bytes[4 + i] = static_cast<std::uint8_t>(rah >> (8 * i));
        if (mac.is_valid_unicast()) return mac;
    }
    // NVM words 0..2 hold the address, low byte first (§6.1, "Ethernet address").
    for (std::uint32_t w = 0; w < 3; ++w) {
        DMAKIT_ASSIGN_OR_RETURN(const std::uint16_t word, read_nvm_word(regs, w, timeouts, sleep));
        mac.bytes[2 * w] = static_cast<std::uint8_t>(word);
        mac.bytes[2 * w + 1] = static_cast<std::uint8_t>(word >> 8);
    }
    if (!mac.is_valid_unicast()) {
        return Error(EIO, "e1000e: no valid MAC address in RAL0/RAH0 or the NVM (got " +
                              mac.to_string() + "); the NVM is blank or corrupt");
    }
    regs.write32(reg::RAL0, static_cast<std::uint32_t>(mac.bytes[0]) |
                                (static_cast<std::uint32_t>(mac.bytes[1]) << 8) |
                                (static_cast<std::uint32_t>(mac.bytes[2]) << 16) |
                                (static_cast<std::uint32_t>(mac.bytes[3]) << 24));
    regs.write32(reg::RAH0, static_cast<std::uint32_t>(mac.bytes[4]) |
                                (static_cast<std::uint32_t>(mac.bytes[5]) << 8) | bits::RAH_AV);
    return mac;
}

void clear_multicast_table(RegisterAccess& regs) {
    for (std::uint32_t i = 0; i < reg::MTA_ENTRIES; ++i) regs.write32(reg::MTA0 + 4 * i, 0);
}

void configure_rx(RegisterAccess& regs, const RxSetup& setup, std::uint32_t queue) {
    regs.write32(reg::RCTL, 0);  // off while the ring is programmed
    // Legacy descriptors: the format rings.cpp parses.
    regs.write32(reg::RFCTL, regs.read32(reg::RFCTL) & ~bits::RFCTL_EXTEN);
    regs.write32(reg::rx_queue(reg::RDBAL0, queue), static_cast<std::uint32_t>(setup.ring.dma));
    regs.write32(reg::rx_queue(reg::RDBAH0, queue), static_cast<std::uint32_t>(setup.ring.dma >> 32));
    regs.write32(reg::rx_queue(reg::RDLEN0, queue), setup.ring.descriptors * 16);
    regs.write32(reg::rx_queue(reg::RDH0, queue), 0);
    regs.write32(reg::rx_queue(reg::RDT0, queue), 0);
    std::uint32_t rctl = bits::RCTL_EN | bits::RCTL_BAM | bits::RCTL_BSIZE_2048 | bits::RCTL_SECRC |
                         bits::RCTL_RDMTS_HALF;
    if (setup.promiscuous) rctl |= bits::RCTL_UPE | bits::RCTL_MPE;
    regs.write32(reg::RCTL, rctl);
}

void configure_tx(RegisterAccess& regs, RingPlacement ring, std::uint32_t queue) {
    regs.write32(reg::TCTL, 0);
    regs.write32(reg::tx_queue(reg::TDBAL0, queue), static_cast<std::uint32_t>(ring.dma));
    regs.write32(reg::tx_queue(reg::TDBAH0, queue), static_cast<std::uint32_t>(ring.dma >> 32));
    regs.write32(reg::tx_queue(reg::TDLEN0, queue), ring.descriptors * 16);
    regs.write32(reg::tx_queue(reg::TDH0, queue), 0);
    regs.write32(reg::tx_queue(reg::TDT0, queue), 0);
    regs.write32(reg::TIPG, bits::TIPG_DEFAULT);
    // QEMU transmits only from queues whose TARC has the enable bit.
    const std::uint32_t tarc = reg::tx_queue(reg::TARC0, queue);
    regs.write32(tarc, regs.read32(tarc) | bits::TARC_ENABLE);
    regs.write32(reg::TCTL, bits::TCTL_EN | bits::TCTL_PSP |
                                (bits::TCTL_CT_DEFAULT << bits::TCTL_CT_SHIFT) |
                                (bits::TCTL_COLD_FULL_DUPLEX << bits::TCTL_COLD_SHIFT) |
                                bits::TCTL_RTLC);
}

void set_promiscuous(RegisterAccess& regs, bool enabled) {
    std::uint32_t rctl = regs.read32(reg::RCTL);
    if (enabled) rctl |= bits::RCTL_UPE | bits::RCTL_MPE;
    else rctl &= ~(bits::RCTL_UPE | bits::RCTL_MPE);
    regs.write32(reg::RCTL, rctl);
}

Result<LinkStatus> read_link(RegisterAccess& regs) {
    const std::uint32_t status = regs.read32(reg::STATUS);
    if (status == all_ones) return gone("reading the link state");
    LinkStatus link;
    link.up = (status & bits::STATUS_LU) != 0;
    if (!link.up) return link;
    link.duplex = (status & bits::STATUS_FD) != 0 ? Duplex::full : Duplex::half;
    switch ((status & bits::STATUS_SPEED_MASK) >> bits::STATUS_SPEED_SHIFT) {
        case 0: link.speed_mbps = 10; break;
        case 1: link.speed_mbps = 100; break;
        default: link.speed_mbps = 1000; break;
    }
    return link;
}

void disable_rx_tx(RegisterAccess& regs) {
    regs.write32(reg::RCTL, regs.read32(reg::RCTL) & ~bits::RCTL_EN);
    regs.write32(reg::TCTL, regs.read32(reg::TCTL) & ~bits::TCTL_EN);
}

}  // namespace dmakit::net::e1000e
