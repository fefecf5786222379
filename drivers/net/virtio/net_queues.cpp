#include <dmakit/drivers/net/virtio/net_queues.hpp>

#include <dmakit/drivers/net/virtio/spec.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>

namespace dmakit::net::virtio {
namespace {

constexpr std::size_t kCollectChunk = 64;
// §5.1.6: VIRTIO_NET_HDR_F_NEEDS_CSUM; only meaningful with GUEST_CSUM.
constexpr std::uint8_t kHdrNeedsCsum = 1;

}  // namespace

// ---------------------------------------------------------------- RX ----

Result<RxQueue> RxQueue::create(Virtqueue queue, std::uint32_t min_room) {
    if (min_room == 0) return Error(EINVAL, "virtio-net RX: buffers must offer at least one byte");
    return RxQueue(std::move(queue), min_room);
}

RxQueue::RxQueue(Virtqueue queue, std::uint32_t min_room)
    : queue_(std::move(queue)), min_room_(min_room), slots_(queue_.size(), nullptr) {
    recycled_.reserve(queue_.size());
}

std::uint32_t RxQueue::wanted() const noexcept {
    const auto parked = static_cast<std::uint32_t>(recycled_.size());
    return free_slots() > parked ? free_slots() - parked : 0;
}

bool RxQueue::postable(const PacketBuffer* b) const noexcept {
    return b != nullptr && b->headroom >= net_hdr::size && b->headroom <= b->capacity && b->room() >= min_room_ &&
           b->data_dma() != 0;
}

bool RxQueue::post(PacketBuffer* b) {
    const Segment s{b->data_dma() - net_hdr::size, net_hdr::size + b->room(), true};
    const std::uint16_t id = queue_.add(std::span(&s, 1));
    if (id == Virtqueue::no_id) return false;
    slots_[id] = b;
    return true;
}

std::size_t RxQueue::refill(std::span<PacketBuffer* const> fresh) {
    while (!recycled_.empty() && queue_.free_descriptors() != 0) {
        if (!post(recycled_.back())) break;
        recycled_.pop_back();
    }
    std::size_t taken = 0;
    while (taken < fresh.size() && queue_.free_descriptors() != 0 && postable(fresh[taken])) {
        if (!post(fresh[taken])) break;
        ++taken;
    }
    queue_.publish();  // one index store, at most one doorbell
    return taken;
}

std::size_t RxQueue::harvest(std::span<PacketBuffer*> out) {
    std::size_t n = 0;
    std::array<Completion, kCollectChunk> done;
    while (n < out.size()) {
        const std::size_t got = queue_.collect(std::span(done).first(std::min(done.size(), out.size() - n)));
        for (std::size_t i = 0; i < got; ++i) {
            const Completion& c = done[i];
            PacketBuffer* b = slots_[c.id];
            slots_[c.id] = nullptr;
            if (c.length <= net_hdr::size || c.length > c.writable) {
                ++stats_.length_errors;
                recycled_.push_back(b);
                continue;
            }
            const std::byte* header = b->data() - net_hdr::size;
            const auto flags = static_cast<std::uint8_t>(header[net_hdr::flags]);
            const auto gso = static_cast<std::uint8_t>(header[net_hdr::gso_type]);
            if ((flags & kHdrNeedsCsum) != 0 || gso != net_hdr::gso_none) {
                ++stats_.header_errors;
                recycled_.push_back(b);
                continue;
            }
            b->length = c.length - net_hdr::size;
            out[n++] = b;
            ++stats_.packets;
            stats_.bytes += b->length;
        }
        if (got < done.size()) break;
    }
    return n;
}

void RxQueue::release_buffers(std::vector<PacketBuffer*>& out) {
    std::vector<std::uint16_t> heads;
    queue_.release_all(heads);
    for (std::uint16_t id : heads) {
        if (slots_[id] != nullptr) out.push_back(slots_[id]);
        slots_[id] = nullptr;
    }
    out.insert(out.end(), recycled_.begin(), recycled_.end());
    recycled_.clear();
}

// ---------------------------------------------------------------- TX ----

Result<TxQueue> TxQueue::create(Virtqueue queue, std::uint32_t max_frame) {
    if (max_frame == 0) return Error(EINVAL, "virtio-net TX: max_frame must be at least 1");
    return TxQueue(std::move(queue), max_frame);
}

TxQueue::TxQueue(Virtqueue queue, std::uint32_t max_frame)
    : queue_(std::move(queue)), max_frame_(max_frame), slots_(queue_.size(), nullptr) {}

bool TxQueue::sendable(const PacketBuffer* p) const noexcept {
    return p != nullptr && p->length != 0 && p->length <= max_frame_ && p->headroom >= net_hdr::size &&
           p->headroom <= p->capacity && p->length <= p->room() && p->data_dma() != 0;
}

std::size_t TxQueue::enqueue(std::span<PacketBuffer* const> pkts) {
    std::size_t taken = 0;
    while (taken < pkts.size() && queue_.free_descriptors() != 0 && sendable(pkts[taken])) {
        PacketBuffer* p = pkts[taken];
        std::memset(p->data() - net_hdr::size, 0, net_hdr::size);  // no offloads: all zero (§5.1.6.2)
        const Segment s{p->data_dma() - net_hdr::size, net_hdr::size + p->length, false};
        const std::uint16_t id = queue_.add(std::span(&s, 1));
        if (id == Virtqueue::no_id) break;
        slots_[id] = p;
        stats_.bytes += p->length;
        ++taken;
    }
    if (taken < pkts.size()) {
        if (queue_.free_descriptors() == 0) ++stats_.ring_full;
        else ++stats_.invalid_packets;
    }
    stats_.packets += taken;
    queue_.publish();
    return taken;
}

std::size_t TxQueue::reclaim(std::span<PacketBuffer*> out) {
    std::size_t n = 0;
    std::array<Completion, kCollectChunk> done;
    while (n < out.size()) {
        const std::size_t got = queue_.collect(std::span(done).first(std::min(done.size(), out.size() - n)));
        // The device writes nothing into a TX chain; its length is not used.
        for (std::size_t i = 0; i < got; ++i) {
            out[n++] = slots_[done[i].id];
            slots_[done[i].id] = nullptr;
        }
        if (got < done.size()) break;
    }
    return n;
}

void TxQueue::release_buffers(std::vector<PacketBuffer*>& out) {
    std::vector<std::uint16_t> heads;
    queue_.release_all(heads);
    for (std::uint16_t id : heads) {
        if (slots_[id] != nullptr) out.push_back(slots_[id]);
        slots_[id] = nullptr;
    }
}

}  // namespace dmakit::net::virtio
