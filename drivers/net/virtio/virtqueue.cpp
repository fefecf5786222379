#include <dmakit/drivers/net/virtio/virtqueue.hpp>

#include <dmakit/drivers/net/virtio/spec.hpp>

#include <dmakit/support/mmio.hpp>

#include <bit>
#include <cerrno>
#include <cstring>
#include <string>

namespace dmakit::net::virtio {
namespace {

constexpr std::size_t kDescBytes = 16;  // §2.7.5: le64 addr, le32 len, le16 flags, le16 next

std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace

RingLayout RingLayout::for_size(std::uint32_t size) noexcept {
    RingLayout l;
    l.size = size;
    l.desc = 0;
    l.avail = kDescBytes * size;
    // §2.7.6: flags, idx, ring[size], used_event: 6 + 2 * size bytes.
    // The used ring's 8-byte elements start 4 bytes in (after flags and
    // idx). Starting the ring 4 bytes before a 64-byte line puts every
    // element on an 8-byte boundary, so none straddles a 4 KiB page: QEMU
    // 7.2 behind an IOMMU loses the length of an element that does (seen
    // under the strict policy: the element at 0xffc of a 512-entry ring
    // read length 0 on every pass).
    l.used = align_up(l.avail + 6 + 2 * std::size_t{size} + 4, 64) - 4;
    // §2.7.8: flags, idx, ring[size] of {le32 id, le32 len}, avail_event.
    l.bytes = l.used + 6 + 8 * std::size_t{size};
    return l;
}

Result<Virtqueue> Virtqueue::create(RingMemory memory, std::uint32_t size, bool interrupts) {
    if (size == 0 || size > vring::max_size || !std::has_single_bit(size)) {
        return Error(EINVAL, "virtqueue size " + std::to_string(size) +
                                 " must be a power of two from 1 to 32768 (virtio 1.2 §2.7)");
    }
    const RingLayout layout = RingLayout::for_size(size);
    if (memory.cpu == nullptr || memory.bytes < layout.bytes) {
        return Error(EINVAL, "virtqueue of " + std::to_string(size) + " entries needs " +
                                 std::to_string(layout.bytes) + " bytes of ring memory, got " +
                                 std::to_string(memory.bytes));
    }
    if (reinterpret_cast<std::uintptr_t>(memory.cpu) % kDescBytes != 0 || memory.dma % kDescBytes != 0) {
        return Error(EINVAL, "virtqueue memory must be 16-byte aligned (virtio 1.2 §2.7: descriptor table)");
    }
    return Virtqueue(memory, size, interrupts);
}

Virtqueue::Virtqueue(RingMemory memory, std::uint32_t size, bool interrupts)
    : base_(static_cast<std::byte*>(memory.cpu)),
      dma_(memory.dma),
      layout_(RingLayout::for_size(size)),
      size_(size),
      avail_flags_(interrupts ? 0 : vring::avail_f_no_interrupt),
      next_(size, 0),
      chain_len_(size, 0),
      writable_(size, 0) {
    reset_rings();
}

void Virtqueue::reset_rings() noexcept {
    volatile std::byte* p = base_;
    for (std::size_t i = 0; i < layout_.bytes; ++i) p[i] = std::byte{0};
    *avail_word(0) = avail_flags_;
    free_.clear();
    // Stack order: id 0 is handed out first.
    for (std::uint32_t i = size_; i-- > 0;) free_.push_back(static_cast<std::uint16_t>(i));
    std::fill(chain_len_.begin(), chain_len_.end(), 0);
    std::fill(writable_.begin(), writable_.end(), 0);
    avail_idx_ = published_idx_ = last_used_ = 0;
    in_flight_ = 0;
    broken_ = false;
}

volatile std::uint16_t* Virtqueue::avail_word(std::size_t i) const noexcept {
    return reinterpret_cast<volatile std::uint16_t*>(base_ + layout_.avail) + i;
}

volatile std::uint16_t* Virtqueue::used_word(std::size_t i) const noexcept {
    return reinterpret_cast<volatile std::uint16_t*>(base_ + layout_.used) + i;
}

std::uint16_t Virtqueue::add(std::span<const Segment> segments) {
    if (segments.empty() || segments.size() > max_chain || segments.size() > free_.size()) return no_id;
    // Take the ids first so each descriptor can name the next (§2.7.5).
    std::uint16_t taken[max_chain];
    for (std::size_t i = 0; i < segments.size(); ++i) {
        taken[i] = free_.back();
        free_.pop_back();
    }
    std::uint32_t writable = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
        const std::uint16_t id = taken[i];
        const bool last = i + 1 == segments.size();
        std::uint16_t flags = segments[i].device_writes ? vring::desc_f_write : 0;
        if (!last) flags |= vring::desc_f_next;
        volatile std::byte* d = base_ + layout_.desc + kDescBytes * id;
        *reinterpret_cast<volatile std::uint64_t*>(d) = segments[i].addr;
        *reinterpret_cast<volatile std::uint32_t*>(d + 8) = segments[i].length;
        *reinterpret_cast<volatile std::uint16_t*>(d + 12) = flags;
        *reinterpret_cast<volatile std::uint16_t*>(d + 14) = last ? 0 : taken[i + 1];
        next_[id] = last ? 0 : taken[i + 1];
        if (segments[i].device_writes) writable += segments[i].length;
    }
    const std::uint16_t head = taken[0];
    chain_len_[head] = static_cast<std::uint16_t>(segments.size());
    writable_[head] = writable;
    // §2.7.13.2: the head goes into the next available ring slot.
    *avail_word(2 + (avail_idx_ & (size_ - 1))) = head;
    ++avail_idx_;
    ++in_flight_;
    return head;
}

void Virtqueue::publish() {
    if (avail_idx_ == published_idx_) return;
    // §2.7.13.3: ring entries before the index that exposes them.
    mmio::dma_wmb();
    *avail_word(1) = avail_idx_;
    published_idx_ = avail_idx_;
    // §2.7.13.4.1 / §2.7.10: the index store must be visible before the
    // driver reads used->flags, or a device that just cleared NO_NOTIFY is
    // missed (a store-load order: only mfence gives it on x86).
    mmio::mb();
    const std::uint16_t used_flags = *used_word(0);
    if ((used_flags & vring::used_f_no_notify) != 0) {
        ++stats_.notify_suppressed;
        return;
    }
    ++stats_.notifications;
    if (notifier_) notifier_->notify();
}

bool Virtqueue::has_used() const noexcept {
    return !broken_ && *used_word(1) != last_used_;
}

std::size_t Virtqueue::collect(std::span<Completion> out) {
    if (broken_ || out.empty()) return 0;
    const std::uint16_t used_idx = *used_word(1);  // loaded once
    const std::uint16_t pending = static_cast<std::uint16_t>(used_idx - last_used_);
    if (pending == 0) return 0;
    if (pending > size_) {
        // More entries than the ring holds: the index is garbage. Follow
        // nothing; the queue stays dead until it is released.
        ++stats_.bad_used_index;
        broken_ = true;
        return 0;
    }
    mmio::dma_rmb();  // §2.7.14: entries after the index that exposed them
    std::size_t n = 0;
    const volatile std::byte* ring = base_ + layout_.used + 4;
    while (n < out.size() && last_used_ != used_idx) {
        const volatile std::byte* e = ring + 8 * (last_used_ & (size_ - 1));
        const std::uint32_t id = *reinterpret_cast<const volatile std::uint32_t*>(e);
        const std::uint32_t length = *reinterpret_cast<const volatile std::uint32_t*>(e + 4);
        ++last_used_;
        if (id >= size_ || chain_len_[id] == 0) {
            ++stats_.bad_used_id;  // not a chain the device holds
            continue;
        }
        // Free the chain by the driver's own links, never the device's.
        std::uint16_t d = static_cast<std::uint16_t>(id);
        for (std::uint16_t k = chain_len_[id]; k > 0; --k) {
            free_.push_back(d);
            d = next_[d];
        }
        chain_len_[id] = 0;
        --in_flight_;
        out[n++] = Completion{static_cast<std::uint16_t>(id), length, writable_[id]};
    }
    return n;
}

void Virtqueue::release_all(std::vector<std::uint16_t>& heads) {
    for (std::uint32_t id = 0; id < size_; ++id) {
        if (chain_len_[id] != 0) heads.push_back(static_cast<std::uint16_t>(id));
    }
    reset_rings();
}

}  // namespace dmakit::net::virtio
