// Nic: the interface programs use to drive a network port, whatever the chip.
//
// The shape is DPDK's and ixy's: poll a queue for a burst of received buffers,
// hand a burst of buffers to a queue for sending. Buffers come from a
// PacketPool; ownership moves with the pointer:
//   rx_burst  fills out[0..n) with buffers the caller now owns (and frees).
//   tx_burst  takes pkts[0..n) and returns n; those now belong to the driver,
//             which frees them once the device is done: at the latest when
//             a later tx_burst needs their slots, or at tx_burst(q, {}),
//             which only reclaims. pkts[n..] stay the caller's: a full ring
//             pushes back, it never drops. A packet the device cannot send
//             (length 0 or over the MTU) is taken, freed and counted in
//             tx_errors.
// Both are single-threaded per queue and never block or allocate. A queue
// index >= queue_count() is refused with EINVAL in every build, before the
// driver sees it: nothing is received, taken or freed.
//
// Hot unplug: when the kernel asks for the device back (a removal or an
// unbind; vfio/removal_request.hpp), the driver notices within a few thousand
// bursts (or at once, through check_removal()), stops the port, returns every
// buffer it holds to its pool and releases the device so the removal can
// finish. From then on every call fails with ENODEV, naming the port.
// check_removal() and stats() may be called from another thread while the
// queues' threads run bursts (the drivers lock per burst, uncontended) or
// block in wait(): a removal leaves the interrupts' eventfds open, so such a
// wait times out and the next call fails with ENODEV.
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/packet_buffer.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dmakit::net {

struct MacAddress {
    std::array<std::uint8_t, 6> bytes{};

    // ff:ff:ff:ff:ff:ff, every station's.
    [[nodiscard]] static constexpr MacAddress broadcast() noexcept { return {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }

    [[nodiscard]] bool is_zero() const noexcept;
    [[nodiscard]] bool is_multicast() const noexcept { return (bytes[0] & 0x01) != 0; }
    // Usable as a station address: not zero, not multicast/broadcast.
    [[nodiscard]] bool is_valid_unicast() const noexcept { return !is_zero() && !is_multicast(); }
    [[nodiscard]] std::string to_string() const;  // "52:54:00:12:34:56"
    // The inverse of to_string: six two-digit hex bytes joined by ':' (either
    // case); anything else is EINVAL with the text and an example.
    [[nodiscard]] static Result<MacAddress> parse(std::string_view text);
    friend bool operator==(const MacAddress&, const MacAddress&) = default;
};

enum class Duplex { half, full };

struct LinkStatus {
    bool up = false;
    std::uint32_t speed_mbps = 0;  // 10, 100, 1000; 0 when down or not reported (virtio-net)
    Duplex duplex = Duplex::half;
};

// Per-queue software counters, kept by the driver on the hot path.
struct QueueStats {
    std::uint64_t rx_packets = 0;
    std::uint64_t rx_bytes = 0;     // frame bytes without FCS
    std::uint64_t rx_dropped = 0;   // frames the driver refused (see rx_errors)
    std::uint64_t rx_errors = 0;    // of those, ones the device flagged or got wrong
    std::uint64_t tx_packets = 0;   // handed to the device
    std::uint64_t tx_bytes = 0;
    std::uint64_t tx_dropped = 0;   // taken but never sent (invalid length)
    std::uint64_t tx_errors = 0;
    std::uint64_t tx_ring_full = 0; // tx_burst calls that could not take everything
};

struct NamedCounter {
    std::string_view name;  // static storage, e.g. "gprc"
    std::uint64_t value = 0;
};

// What the device itself counts, folded into 64 bits by the driver.
struct DeviceCounters {
    std::uint64_t rx_good_packets = 0;
    std::uint64_t tx_good_packets = 0;
    std::uint64_t rx_good_octets = 0;   // the device counts FCS bytes too
    std::uint64_t tx_good_octets = 0;
    std::uint64_t rx_missed = 0;        // dropped for lack of descriptors/FIFO
    std::uint64_t rx_errors = 0;        // CRC, symbol, length, alignment ...
    std::vector<NamedCounter> all;      // every hardware counter the driver reads
};

struct NicStats {
    std::vector<QueueStats> queues;
    DeviceCounters device;
};

class PacketPool;

class Nic {
public:
    Nic() = default;
    Nic(const Nic&) = delete;
    Nic& operator=(const Nic&) = delete;
    virtual ~Nic() = default;

    [[nodiscard]] virtual std::string_view driver_name() const noexcept = 0;
    [[nodiscard]] virtual std::size_t queue_count() const noexcept = 0;

    // Hot path: the number of buffers received / taken, or EINVAL for a
    // queue the port does not have.
    [[nodiscard]] Result<std::size_t> rx_burst(std::size_t queue, std::span<PacketBuffer*> out) {
        if (queue >= queue_count()) [[unlikely]] return bad_queue("rx_burst", queue);
        if (removed()) [[unlikely]] return removed_error("rx_burst");
        return receive(queue, out);
    }
    [[nodiscard]] Result<std::size_t> tx_burst(std::size_t queue, std::span<PacketBuffer* const> pkts) {
        if (queue >= queue_count()) [[unlikely]] return bad_queue("tx_burst", queue);
        if (removed()) [[unlikely]] return removed_error("tx_burst");
        return transmit(queue, pkts);
    }

    // Asks the kernel now (one system call) whether it wants the device
    // back, and if so stops the port and releases it (see above). Returns
    // whether the port is (now) removed. Not on the hot path: the driver
    // asks by itself every few thousand bursts.
    bool check_removal() { return removed() || detect_removal(); }
    [[nodiscard]] bool removed() const noexcept { return removed_.load(std::memory_order_acquire); }

    [[nodiscard]] virtual Result<LinkStatus> link() = 0;
    [[nodiscard]] virtual MacAddress mac_address() const = 0;
    [[nodiscard]] virtual Status set_promiscuous(bool enabled) = 0;
    // Reads (and folds) the device counters; fails when the device is gone.
    [[nodiscard]] virtual Result<NicStats> stats() = 0;

    // The pool RX buffers come from; programs allocate TX buffers here too.
    // Null for a driver without one.
    [[nodiscard]] virtual PacketPool* packet_pool() noexcept { return nullptr; }

    // Interrupt mode: blocks until the port signals work for `queue` (a frame
    // received, a TX write-back, a link change) or `timeout` passes; returns
    // whether it was signalled. Polling mode: returns true at once, so
    // `if (*rx_burst(...) == 0) wait(...)` loops work in both modes.
    [[nodiscard]] Result<bool> wait(std::size_t queue, std::chrono::milliseconds timeout) {
        if (queue >= queue_count()) return bad_queue("wait", queue);
        if (removed()) return removed_error("wait");
        return wait_for_work(queue, timeout);
    }

protected:
    // The driver's side of the calls above; `queue` < queue_count() is checked.
    [[nodiscard]] virtual std::size_t receive(std::size_t queue, std::span<PacketBuffer*> out) = 0;
    [[nodiscard]] virtual std::size_t transmit(std::size_t queue, std::span<PacketBuffer* const> pkts) = 0;
    [[nodiscard]] virtual Result<bool> wait_for_work(std::size_t queue, std::chrono::milliseconds timeout) {
        (void)queue;
        (void)timeout;
        return true;
    }
    // The driver's removal check: asks the kernel, and when it wants the
    // device, stops the port, frees its buffers, releases the device and
    // calls mark_removed(). A driver that cannot be removed says false.
    virtual bool detect_removal() { return false; }
    // `port` (the PCI address) names the port in every later error.
    void mark_removed(std::string port);
    [[nodiscard]] Error removed_error(const char* call) const;

private:
    // Out of line: keeps the string building off the inlined hot path.
    [[nodiscard]] Error bad_queue(const char* call, std::size_t queue) const;

    std::atomic<bool> removed_{false};
    std::string removed_port_;  // written once, before removed_ is set
};

}  // namespace dmakit::net
