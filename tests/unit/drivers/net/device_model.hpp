// A small software model of the 82574's descriptor engines, behaving as
// QEMU's e1000e model does (hw/net/e1000e_core.c):
//   - TX runs when TDT is written: every descriptor from TDH to TDT is
//     consumed in order, its buffer copied out, and DD written back only when
//     the descriptor has RS; TDH advances.
//   - RX takes a descriptor at RDH while RDH != RDT (and RDT < ring size),
//     writes the frame into its buffer and writes back length + DD|EOP.
// Plus what no correct device does, for the never-trust tests: bad lengths,
// DD without EOP, DD on descriptors it does not own, rewritten addresses.
// Device addresses go through TestMemory::translate like an IOMMU; a miss is
// counted as a fault instead of touching memory.
#pragma once

#include "fake_registers.hpp"
#include "test_memory.hpp"

#include <dmakit/drivers/net/e1000e/descriptors.hpp>
#include <dmakit/drivers/net/e1000e/regs.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

namespace dmakit::net::test {

class DeviceModel {
public:
    DeviceModel(FakeRegisters& regs, TestMemory& memory) : regs_(&regs), memory_(&memory) {
        namespace reg = e1000e::reg;
        regs.on_write(reg::RDT0, [](std::uint32_t& s, std::uint32_t v) { s = v & 0xFFFF; });
        regs.on_write(reg::TDT0, [this](std::uint32_t& s, std::uint32_t v) {
            s = v & 0xFFFF;
            if (!tx_paused_) run_tx();
        });
    }

    // ---- transmit side ----
    void pause_tx() { tx_paused_ = true; }
    void resume_tx() {
        tx_paused_ = false;
        run_tx();
    }
    const std::vector<std::vector<std::byte>>& sent() const { return sent_; }
    std::uint64_t faults() const { return faults_; }

    // ---- receive side ----
    // Delivers one frame; false when the ring has no free descriptor (QEMU
    // then holds the frame back; the test decides what to do).
    bool deliver(const std::vector<std::byte>& frame) {
        std::uint32_t slot;
        if (!rx_take(slot)) return false;
        volatile std::uint64_t* d = rx_desc(slot);
        std::byte* dst = memory_->translate(d[0], frame.size());
        if (dst == nullptr) {
            ++faults_;
        } else {
            std::memcpy(dst, frame.data(), frame.size());
        }
        d[1] = e1000e::rxd::make_writeback(static_cast<std::uint16_t>(frame.size()),
                                            e1000e::rxd::DD | e1000e::rxd::EOP, 0);
        rx_advance();
        return true;
    }
    // Writes back an arbitrary status word at RDH (no data) and advances.
    bool deliver_raw(std::uint16_t length, std::uint8_t status, std::uint8_t errors,
                     std::uint64_t new_address = 0) {
        std::uint32_t slot;
        if (!rx_take(slot)) return false;
        volatile std::uint64_t* d = rx_desc(slot);
        if (new_address != 0) d[0] = new_address;
        d[1] = e1000e::rxd::make_writeback(length, status, errors);
        rx_advance();
        return true;
    }
    // Sets DD on RX/TX descriptor `slot` whoever owns it.
    void inject_rx_dd(std::uint32_t slot) { rx_desc(slot)[1] = rx_desc(slot)[1] | (std::uint64_t{1} << 32); }
    void inject_tx_dd(std::uint32_t slot) { tx_desc(slot)[1] = tx_desc(slot)[1] | (std::uint64_t{1} << 32); }

    std::uint32_t rx_free() const {
        const std::uint32_t n = rx_size(), h = value(e1000e::reg::RDH0), t = value(e1000e::reg::RDT0);
        if (t >= n) return 0;
        return h <= t ? t - h : n + t - h;
    }

private:
    std::uint32_t value(std::uint32_t off) const { return regs_->at(off); }
    std::uint64_t base(std::uint32_t lo, std::uint32_t hi) const {
        return (std::uint64_t{value(hi)} << 32) | value(lo);
    }
    std::uint32_t rx_size() const { return value(e1000e::reg::RDLEN0) / 16; }
    std::uint32_t tx_size() const { return value(e1000e::reg::TDLEN0) / 16; }
    volatile std::uint64_t* rx_desc(std::uint32_t slot) const {
        return reinterpret_cast<volatile std::uint64_t*>(
            memory_->translate(base(e1000e::reg::RDBAL0, e1000e::reg::RDBAH0) + 16u * slot, 16));
    }
    volatile std::uint64_t* tx_desc(std::uint32_t slot) const {
        return reinterpret_cast<volatile std::uint64_t*>(
            memory_->translate(base(e1000e::reg::TDBAL0, e1000e::reg::TDBAH0) + 16u * slot, 16));
    }
    bool rx_take(std::uint32_t& slot) const {
        if (rx_free() == 0) return false;
        slot = value(e1000e::reg::RDH0);
        return true;
    }
    void rx_advance() {
        std::uint32_t& h = regs_->at(e1000e::reg::RDH0);
        h = (h + 1) % rx_size();
    }

    void run_tx() {
        namespace reg = e1000e::reg;
        const std::uint32_t n = tx_size();
        std::uint32_t& head = regs_->at(reg::TDH0);
        while (head != value(reg::TDT0) && value(reg::TDT0) < n) {
            volatile std::uint64_t* d = tx_desc(head);
            const std::uint64_t addr = d[0];
            const std::uint64_t upper = d[1];
            const std::uint16_t len = e1000e::txd::length(upper);
            const std::uint8_t cmd = e1000e::txd::cmd(upper);
            if (const std::byte* src = memory_->translate(addr, len); src == nullptr) {
                ++faults_;
            } else {
                frame_.insert(frame_.end(), src, src + len);
            }
            if ((cmd & e1000e::txd::CMD_EOP) != 0) {
                sent_.push_back(std::move(frame_));
                frame_.clear();
            }
            if ((cmd & e1000e::txd::CMD_RS) != 0) d[1] = upper | (std::uint64_t{e1000e::txd::STA_DD} << 32);
            head = (head + 1) % n;
        }
    }

    FakeRegisters* regs_;
    TestMemory* memory_;
    bool tx_paused_ = false;
    std::vector<std::byte> frame_;
    std::vector<std::vector<std::byte>> sent_;
    std::uint64_t faults_ = 0;
};

}  // namespace dmakit::net::test
