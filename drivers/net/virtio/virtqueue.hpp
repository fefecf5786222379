// The driver side of one split virtqueue (virtio 1.2 §2.7): the descriptor
// table, the available ring the driver writes and the used ring the device
// writes, in one block of coherent DMA memory.
//
// The queue deals in descriptor chains and knows nothing of packets: the
// net queues (net_queues.hpp) and the control queue put buffers in and take
// completions out. Buffers are posted with add() (any number, staged) and
// made visible with publish(), which writes avail->idx once and rings the
// doorbell once per burst unless the device asked not to be notified
// (VRING_USED_F_NO_NOTIFY, §2.7.10).
//
// Never trust the device. Everything the driver needs to know about a chain
// (its descriptors, whether the device holds it) is kept out of band here,
// never read back from ring memory the device can write; and
//   - a used index that moved by more than the queue size is never followed:
//     the queue is marked broken (as Linux's BAD_RING does), counted, and
//     yields nothing more until it is released;
//   - a used entry naming a descriptor that is not the head of a chain the
//     device holds (never posted, or posted and already returned) is skipped
//     and counted;
//   - used->idx and each used entry are loaded once.
// Lengths are the caller's to check (completions carry the device's value
// and the posted length).
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/packet_buffer.hpp>
#include <dmakit/drivers/net/virtio/transport.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dmakit::net::virtio {

// Where a queue's rings go: byte offsets inside its memory block, and the
// block's size, for `size` descriptors (§2.7: descriptor table 16-byte
// aligned, available ring 2-byte, used ring 4-byte). The used ring's
// elements start on their own 64-byte line, so the device's writes do not
// share the driver's, and on 8-byte boundaries, so none crosses a page.
struct RingLayout {
    std::uint32_t size = 0;
    std::size_t desc = 0;
    std::size_t avail = 0;
    std::size_t used = 0;
    std::size_t bytes = 0;
    [[nodiscard]] static RingLayout for_size(std::uint32_t size) noexcept;
};

struct RingMemory {
    void* cpu = nullptr;
    DeviceAddress dma = 0;
    std::size_t bytes = 0;
};

// One buffer of a chain: device-readable, or device-writable (§2.7.5).
struct Segment {
    DeviceAddress addr = 0;
    std::uint32_t length = 0;
    bool device_writes = false;
};

struct Completion {
    std::uint16_t id = 0;        // head descriptor, as returned by add()
    std::uint32_t length = 0;    // what the device says it wrote (untrusted)
    std::uint32_t writable = 0;  // bytes the chain offered the device to write
};

struct VirtqueueStats {
    std::uint64_t notifications = 0;     // doorbells rung
    std::uint64_t notify_suppressed = 0; // bursts published without one (NO_NOTIFY)
    std::uint64_t bad_used_index = 0;    // used->idx moved more than the queue size
    std::uint64_t bad_used_id = 0;       // used entries for chains the device does not hold
};

class Virtqueue {
public:
    // `size` a power of two from 1 to 32768, the memory at least
    // RingLayout::for_size(size).bytes and 16-byte aligned (CPU and device
    // address). `interrupts` false sets VRING_AVAIL_F_NO_INTERRUPT (§2.7.7):
    // the device then signals nothing for this queue (polling). The rings
    // are zeroed. EINVAL for a bad size or memory.
    [[nodiscard]] static Result<Virtqueue> create(RingMemory memory, std::uint32_t size, bool interrupts);

    Virtqueue(Virtqueue&&) noexcept = default;
    Virtqueue& operator=(Virtqueue&&) noexcept = default;
    Virtqueue(const Virtqueue&) = delete;
    Virtqueue& operator=(const Virtqueue&) = delete;

    // The doorbell publish() rings; none yet: publish() only counts.
    void set_notifier(std::unique_ptr<QueueNotifier> notifier) { notifier_ = std::move(notifier); }

    [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
    [[nodiscard]] std::uint32_t free_descriptors() const noexcept { return static_cast<std::uint32_t>(free_.size()); }
    // Chains the device holds (posted, published or not, and not returned).
    [[nodiscard]] std::uint32_t in_flight() const noexcept { return in_flight_; }
    [[nodiscard]] bool broken() const noexcept { return broken_; }
    [[nodiscard]] DeviceAddress desc_dma() const noexcept { return dma_ + layout_.desc; }
    [[nodiscard]] DeviceAddress driver_dma() const noexcept { return dma_ + layout_.avail; }
    [[nodiscard]] DeviceAddress device_dma() const noexcept { return dma_ + layout_.used; }

    // Writes a chain of `segments` and stages it in the available ring;
    // returns its head id. The device sees it after publish(). no_id (and
    // nothing written) for an empty chain, one longer than max_chain, or
    // one that needs more than free_descriptors().
    static constexpr std::uint16_t no_id = 0xFFFF;
    static constexpr std::size_t max_chain = 16;
    [[nodiscard]] std::uint16_t add(std::span<const Segment> segments);
    // Makes every staged chain visible (one avail->idx store) and rings the
    // doorbell once, unless the device set VRING_USED_F_NO_NOTIFY.
    void publish();

    // Up to out.size() completions, validated as the file comment says;
    // their descriptors are free again.
    [[nodiscard]] std::size_t collect(std::span<Completion> out);
    // Whether the used ring shows entries not yet collected (one load).
    [[nodiscard]] bool has_used() const noexcept;

    // After the device was reset (it no longer touches the rings): appends
    // the head id of every chain it held, frees all descriptors and zeroes
    // the rings, as after create().
    void release_all(std::vector<std::uint16_t>& heads);

    [[nodiscard]] const VirtqueueStats& stats() const noexcept { return stats_; }

private:
    Virtqueue(RingMemory memory, std::uint32_t size, bool interrupts);
    void reset_rings() noexcept;
    [[nodiscard]] volatile std::uint16_t* avail_word(std::size_t i) const noexcept;
    [[nodiscard]] volatile std::uint16_t* used_word(std::size_t i) const noexcept;

    std::byte* base_;
    DeviceAddress dma_;
    RingLayout layout_;
    std::uint32_t size_;
    std::uint16_t avail_flags_;
    std::uint16_t avail_idx_ = 0;      // next free avail slot (free-running)
    std::uint16_t published_idx_ = 0; // what avail->idx says
    std::uint16_t last_used_ = 0;      // next used entry to read (free-running)
    std::uint32_t in_flight_ = 0;
    bool broken_ = false;
    std::vector<std::uint16_t> free_;        // free descriptor ids (a stack)
    std::vector<std::uint16_t> next_;        // chain links, the driver's own copy
    std::vector<std::uint16_t> chain_len_;   // per head: descriptors in the chain; 0: not a held head
    std::vector<std::uint32_t> writable_;    // per head: device-writable bytes
    std::unique_ptr<QueueNotifier> notifier_;
    VirtqueueStats stats_;
};

}  // namespace dmakit::net::virtio
