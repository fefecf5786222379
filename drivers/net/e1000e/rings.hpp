// RX and TX descriptor rings of one 82574 queue.
//
// The ring logic is separate from where the memory comes from: it is given
// descriptor memory as (CPU pointer, device address) and a RegisterAccess for
// the tail register, so the unit tests drive it over heap memory and a
// software model of the device, and the glue over coherent DMA memory and BAR0.
//
// Ring protocol (§7.1.8 receive / §7.2 transmit descriptor ring structure):
// the device owns the slots from head (RDH/TDH) up to, not including, tail
// (RDT/TDT); head == tail means "nothing for the device". Software therefore
// keeps one slot empty and never reads RDH/TDH (the datasheet warns the head
// may run ahead of the write-back); completion is seen only through DD.
//
// Never trust the device. Buffer identity comes from the driver's own slot
// table, never from an address in descriptor memory; each descriptor's status
// word is loaded once; and
//   - a DD on a slot the driver did not hand out is counted, never followed;
//   - an RX length of 0 or larger than the buffer is dropped and counted;
//   - an RX frame spanning several descriptors (no EOP) is dropped and counted,
//     since the driver configures buffers large enough for any frame;
//   - an RX frame the device flags with a frame error is dropped and counted.
// Dropped RX buffers stay in the ring and are handed straight back to the
// device on the next refill.
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/packet_buffer.hpp>
#include <dmakit/drivers/net/e1000e/register_access.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dmakit::net::e1000e {

// Descriptor memory for one ring: 16 bytes per descriptor, coherent with the
// device (the glue gets it from dma.alloc_coherent).
struct DescriptorMemory {
    void* cpu = nullptr;
    DeviceAddress dma = 0;
    std::size_t bytes = 0;
};

inline constexpr std::uint32_t min_ring_size = 8;       // RDLEN/TDLEN: multiple of 128 bytes
inline constexpr std::uint32_t max_ring_size = 32768;   // RDH/RDT are 16 bits

struct RxRingStats {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t length_errors = 0;  // length 0 or larger than the buffer
    std::uint64_t fragmented = 0;     // multi-descriptor frames (no EOP)
    std::uint64_t frame_errors = 0;   // CRC/symbol/sequence/RX errors flagged
    std::uint64_t spurious_done = 0;  // DD on a slot not handed to the device
    [[nodiscard]] std::uint64_t dropped() const noexcept {
        return length_errors + fragmented + frame_errors;
    }
};

class RxRing {
public:
    struct Config {
        std::uint32_t size = 512;          // descriptors; power of two
        std::uint32_t buffer_size = 2048;  // what RCTL.BSIZE tells the device
        std::uint32_t queue = 0;
    };

    // EINVAL for a bad size, too little or misaligned memory.
    [[nodiscard]] static Result<RxRing> create(DescriptorMemory memory, RegisterAccess& regs,
                                               Config config);

    RxRing(RxRing&&) noexcept = default;
    RxRing& operator=(RxRing&&) noexcept = default;
    RxRing(const RxRing&) = delete;
    RxRing& operator=(const RxRing&) = delete;

    [[nodiscard]] std::uint32_t size() const noexcept { return mask_ + 1; }
    [[nodiscard]] DeviceAddress descriptors_dma() const noexcept { return dma_; }
    // Buffers the device holds right now.
    [[nodiscard]] std::uint32_t posted() const noexcept { return posted_; }
    // Slots that could be handed to the device (size() - 1 - posted()).
    [[nodiscard]] std::uint32_t free_slots() const noexcept { return mask_ - posted_; }
    // How many fresh buffers the next refill can use (free slots not already
    // holding a recycled buffer).
    [[nodiscard]] std::uint32_t wanted() const noexcept;

    // Hands free slots to the device: recycled buffers first, then `fresh`
    // in order. Writes RDT once. Returns how many of `fresh` it took (the
    // rest stay the caller's). A fresh buffer with less room than buffer_size,
    // or no device address, stops the refill: the device would write past it.
    [[nodiscard]] std::size_t refill(std::span<PacketBuffer* const> fresh);

    // Collects up to out.size() received frames (length set) in arrival
    // order; the caller owns them. Does not refill.
    [[nodiscard]] std::size_t harvest(std::span<PacketBuffer*> out);

    // Takes back every buffer the ring holds and forgets the ring state, for
    // teardown or restart. Only with RX disabled (RCTL.EN = 0) or after reset.
    void release_buffers(std::vector<PacketBuffer*>& out);

    [[nodiscard]] const RxRingStats& stats() const noexcept { return stats_; }

private:
    RxRing(DescriptorMemory memory, RegisterAccess& regs, Config config);
    [[nodiscard]] std::uint64_t load_upper(std::uint32_t slot) const noexcept { return words_[2 * slot + 1]; }

    RegisterAccess* regs_;
    volatile std::uint64_t* words_;
    DeviceAddress dma_;
    std::uint32_t mask_;
    std::uint32_t buffer_size_;
    std::uint32_t rdt_offset_;
    std::uint32_t next_to_clean_ = 0;  // oldest slot the device owns
    std::uint32_t posted_ = 0;
    bool discarding_ = false;          // inside a multi-descriptor frame
    std::vector<PacketBuffer*> slots_;
    RxRingStats stats_;
};

struct TxRingStats {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t ring_full = 0;        // enqueue calls that could not take everything
    std::uint64_t invalid_packets = 0;  // refused: null, length 0/over max, no address
    std::uint64_t spurious_done = 0;    // DD on a slot the device did not own
};

class TxRing {
public:
    struct Config {
        std::uint32_t size = 512;         // descriptors; power of two
        std::uint32_t queue = 0;
        // Ask for a DD write-back every this many descriptors (and on the last
        // of each enqueue call); each write-back is a DMA write by the device.
        std::uint32_t rs_interval = 32;
        std::uint32_t max_frame = 1518;   // without FCS; 1514 + one VLAN tag
    };

    [[nodiscard]] static Result<TxRing> create(DescriptorMemory memory, RegisterAccess& regs,
                                               Config config);

    TxRing(TxRing&&) noexcept = default;
    TxRing& operator=(TxRing&&) noexcept = default;
    TxRing(const TxRing&) = delete;
    TxRing& operator=(const TxRing&) = delete;

    [[nodiscard]] std::uint32_t size() const noexcept { return mask_ + 1; }
    [[nodiscard]] DeviceAddress descriptors_dma() const noexcept { return dma_; }
    [[nodiscard]] std::uint32_t in_flight() const noexcept { return in_flight_; }
    [[nodiscard]] std::uint32_t free_slots() const noexcept { return mask_ - in_flight_; }

    // Queues pkts[0..n) for sending (EOP|IFCS, RS per rs_interval), writes TDT
    // once, returns n. Stops early when the ring is full (back-pressure) or at
    // the first invalid packet (left to the caller, counted).
    [[nodiscard]] std::size_t enqueue(std::span<PacketBuffer* const> pkts);

    // Moves buffers the device has finished with into out[0..n); the caller
    // returns them to their pool.
    [[nodiscard]] std::size_t reclaim(std::span<PacketBuffer*> out);

    // Takes back every buffer still queued, for teardown (TCTL.EN = 0 or reset).
    void release_buffers(std::vector<PacketBuffer*>& out);

    [[nodiscard]] const TxRingStats& stats() const noexcept { return stats_; }

private:
    TxRing(DescriptorMemory memory, RegisterAccess& regs, Config config);
    [[nodiscard]] bool sendable(const PacketBuffer* p) const noexcept;

    RegisterAccess* regs_;
    volatile std::uint64_t* words_;
    DeviceAddress dma_;
    std::uint32_t mask_;
    std::uint32_t rs_interval_;
    std::uint32_t max_frame_;
    std::uint32_t tdt_offset_;
    std::uint32_t next_to_use_ = 0;
    std::uint32_t next_to_clean_ = 0;
    std::uint32_t in_flight_ = 0;
    std::vector<PacketBuffer*> slots_;
    std::vector<std::uint32_t> group_end_;  // slot whose RS write-back covers this slot
    TxRingStats stats_;
};

}  // namespace dmakit::net::e1000e
