// virtio-net's receive and transmit queues (virtio 1.2 §5.1.6): packet
// buffers on a Virtqueue, one descriptor per frame.
//
// The 12-byte struct virtio_net_hdr (§5.1.6) travels in the buffer's
// headroom, right in front of the frame, so header and frame are one
// descriptor and no byte is copied (VERSION_1 allows any layout, §2.6.4):
//   RX: the device writes header + frame at data() - 12; the frame lands at
//       data(). A buffer needs at least 12 bytes of headroom.
//   TX: the driver zeroes the header (no offloads negotiated: flags 0,
//       gso_type NONE, §5.1.6.2) and posts header + frame.
// Without VIRTIO_NET_F_MRG_RXBUF each RX buffer holds a whole frame
// (§5.1.6.3.1: at least 1526 bytes with the header).
//
// Never trust the device (beyond what Virtqueue already checks): an RX
// length that does not cover the header and at least one byte, or exceeds
// what the buffer offered; a header claiming GSO or a missing checksum,
// which this driver never negotiated: the frame is dropped and counted, its
// buffer goes straight back to the device on the next refill.
#pragma once

#include <dmakit/drivers/net/virtio/virtqueue.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dmakit::net::virtio {

struct RxQueueStats {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t length_errors = 0;  // length <= header or > the buffer offered
    std::uint64_t header_errors = 0;  // GSO or NEEDS_CSUM in a header we never asked for
    [[nodiscard]] std::uint64_t dropped() const noexcept { return length_errors + header_errors; }
};

class RxQueue {
public:
    // Buffers must offer at least `min_room` bytes of frame (room()).
    [[nodiscard]] static Result<RxQueue> create(Virtqueue queue, std::uint32_t min_room);

    RxQueue(RxQueue&&) noexcept = default;
    RxQueue& operator=(RxQueue&&) noexcept = default;

    [[nodiscard]] Virtqueue& virtqueue() noexcept { return queue_; }
    [[nodiscard]] const Virtqueue& virtqueue() const noexcept { return queue_; }
    // Buffers the device holds.
    [[nodiscard]] std::uint32_t posted() const noexcept { return queue_.in_flight(); }
    // Empty descriptors (size() - posted()).
    [[nodiscard]] std::uint32_t free_slots() const noexcept { return queue_.free_descriptors(); }
    // Fresh buffers the next refill can use (free slots not taken by a
    // recycled buffer).
    [[nodiscard]] std::uint32_t wanted() const noexcept;

    // Posts recycled buffers, then `fresh` in order, and publishes once.
    // Returns how many of `fresh` it took; the rest stay the caller's. A
    // fresh buffer without 12 bytes of headroom, with less than min_room, or
    // without a device address stops the refill.
    [[nodiscard]] std::size_t refill(std::span<PacketBuffer* const> fresh);

    // Up to out.size() received frames (length set), in completion order.
    [[nodiscard]] std::size_t harvest(std::span<PacketBuffer*> out);

    // Every buffer the queue holds (posted or parked for recycling), for
    // teardown. Only after the device was reset.
    void release_buffers(std::vector<PacketBuffer*>& out);

    [[nodiscard]] const RxQueueStats& stats() const noexcept { return stats_; }

private:
    RxQueue(Virtqueue queue, std::uint32_t min_room);
    [[nodiscard]] bool postable(const PacketBuffer* b) const noexcept;
    [[nodiscard]] bool post(PacketBuffer* b);

    Virtqueue queue_;
    std::uint32_t min_room_;
    std::vector<PacketBuffer*> slots_;     // by head id: the buffer the device holds
    std::vector<PacketBuffer*> recycled_;  // dropped frames' buffers, posted again first
    RxQueueStats stats_;
};

struct TxQueueStats {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t ring_full = 0;        // enqueue calls that could not take everything
    std::uint64_t invalid_packets = 0;  // enqueue calls stopped at a packet it cannot send
};

class TxQueue {
public:
    // Frames of 1..max_frame bytes (without FCS).
    [[nodiscard]] static Result<TxQueue> create(Virtqueue queue, std::uint32_t max_frame);

    TxQueue(TxQueue&&) noexcept = default;
    TxQueue& operator=(TxQueue&&) noexcept = default;

    [[nodiscard]] Virtqueue& virtqueue() noexcept { return queue_; }
    [[nodiscard]] const Virtqueue& virtqueue() const noexcept { return queue_; }
    [[nodiscard]] std::uint32_t in_flight() const noexcept { return queue_.in_flight(); }
    [[nodiscard]] std::uint32_t free_slots() const noexcept { return queue_.free_descriptors(); }
    [[nodiscard]] std::uint32_t max_frame() const noexcept { return max_frame_; }

    // A packet the device can send: length 1..max_frame inside the buffer,
    // 12 bytes of headroom for the header, a device address.
    [[nodiscard]] bool sendable(const PacketBuffer* p) const noexcept;

    // Queues pkts[0..n) and publishes once; returns n. Stops when the queue
    // is full (back-pressure) or at the first packet it cannot send (left
    // to the caller, counted).
    [[nodiscard]] std::size_t enqueue(std::span<PacketBuffer* const> pkts);

    // Buffers the device is done with, into out[0..n).
    [[nodiscard]] std::size_t reclaim(std::span<PacketBuffer*> out);

    // Every buffer still queued, for teardown (after the device reset).
    void release_buffers(std::vector<PacketBuffer*>& out);

    [[nodiscard]] const TxQueueStats& stats() const noexcept { return stats_; }

private:
    TxQueue(Virtqueue queue, std::uint32_t max_frame);

    Virtqueue queue_;
    std::uint32_t max_frame_;
    std::vector<PacketBuffer*> slots_;  // by head id
    TxQueueStats stats_;
};

}  // namespace dmakit::net::virtio
