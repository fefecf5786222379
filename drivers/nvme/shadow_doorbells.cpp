#include <dmakit/drivers/nvme/shadow_doorbells.hpp>

#include <dmakit/support/mmio.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string>

namespace dmakit::nvme {

void ShadowDoorbells::attach(const ShadowSlots& slots, std::uint16_t sq_tail, std::uint16_t cq_head) noexcept {
    slots_ = slots;
    last_sq_tail_ = sq_tail;
    last_cq_head_ = cq_head;
    *slots_.sq_tail = sq_tail;
    *slots_.cq_head = cq_head;
}

bool ShadowDoorbells::update(volatile std::uint32_t* shadow, const volatile std::uint32_t* event,
                             std::uint16_t& last, std::uint16_t value) noexcept {
    // Ring entries (new SQEs, consumed CQEs) before the shadow value that
    // publishes them; QueuePair already ordered the SQEs for the register.
    mmio::dma_wmb();
    const std::uint16_t old = last;
    *shadow = value;
    last = value;
    // The shadow store must be visible before EventIdx is read (a store then
    // a load: only a full barrier orders them). The controller orders its
    // EventIdx write before it reads the shadow again, so one of the two
    // sides always sees the other's update and no doorbell is lost.
    mmio::mb();
    const auto event_idx = static_cast<std::uint16_t>(*event);
    return doorbell_needs_mmio(event_idx, value, old);
}

void ShadowDoorbells::ring_sq_tail(std::uint16_t tail) noexcept {
    if (register_write_needed(slots_.sq_tail, slots_.sq_event, last_sq_tail_, tail)) {
        registers_->ring_sq_tail(tail);
    }
}

void ShadowDoorbells::ring_cq_head(std::uint16_t head) noexcept {
    if (register_write_needed(slots_.cq_head, slots_.cq_event, last_cq_head_, head)) {
        registers_->ring_cq_head(head);
    }
}

bool ShadowDoorbells::register_write_needed(volatile std::uint32_t* shadow, const volatile std::uint32_t* event,
                                            std::uint16_t& last, std::uint16_t value) noexcept {
    if (shadowed() && !update(shadow, event, last, value) && !admin_) {
        ++counts_.mmio_skipped;
        return false;
    }
    ++counts_.mmio_writes;
    return true;
}

namespace {

// Byte offset of the SQ tail (cq = false) or CQ head entry of `qid`, as the
// doorbell registers are laid out (§3.1.24/25) without the 1000h base.
std::uint64_t entry_offset(std::uint16_t qid, bool cq, std::uint32_t stride_shift) noexcept {
    return (2 * std::uint64_t{qid} + (cq ? 1 : 0)) * (std::uint64_t{4} << stride_shift);
}

}  // namespace

Result<DoorbellBuffer> DoorbellBuffer::allocate(dma::DmaDevice& dma, std::uint16_t max_qid,
                                                std::uint32_t stride_shift, std::uint64_t page_size) {
    if (stride_shift > 15) return Error(EINVAL, "doorbell stride shift " + std::to_string(stride_shift) + " is above 15");
    // At least one controller page each; alloc_coherent aligns to the
    // power-of-two size, so each buffer starts on a page (§5.7: PRP1/PRP2).
    const std::uint64_t needed = entry_offset(max_qid, true, stride_shift) + 4;
    const std::size_t bytes = std::max<std::uint64_t>(page_size, std::bit_ceil(needed));
    DMAKIT_ASSIGN_OR_RETURN(dma::CoherentBuffer shadow, dma.alloc_coherent(bytes));
    DMAKIT_ASSIGN_OR_RETURN(dma::CoherentBuffer event, dma.alloc_coherent(bytes));
    if (shadow.dma().value() % page_size != 0 || event.dma().value() % page_size != 0) {
        return Error(EINVAL, "doorbell buffers are not page aligned (device addresses " +
                                 std::to_string(shadow.dma().value()) + ", " + std::to_string(event.dma().value()) +
                                 ")");
    }
    DoorbellBuffer b(std::move(shadow), std::move(event));
    b.clear();
    return b;
}

bool DoorbellBuffer::covers(std::uint16_t max_qid, std::uint32_t stride_shift) const noexcept {
    return shadow_ && stride_shift <= 15 && entry_offset(max_qid, true, stride_shift) + 4 <= shadow_.size();
}

ShadowSlots DoorbellBuffer::slots(std::uint16_t qid, std::uint32_t stride_shift) const noexcept {
    auto at = [&](const dma::CoherentBuffer& b, bool cq) {
        return reinterpret_cast<volatile std::uint32_t*>(b.as<std::byte>() + entry_offset(qid, cq, stride_shift));
    };
    return ShadowSlots{at(shadow_, false), at(shadow_, true), at(event_, false), at(event_, true)};
}

void DoorbellBuffer::clear() noexcept {
    std::memset(shadow_.cpu(), 0, shadow_.size());
    std::memset(event_.cpu(), 0, event_.size());
}

void DoorbellBuffer::clear_queue(std::uint16_t qid, std::uint32_t stride_shift) noexcept {
    for (const dma::CoherentBuffer* b : {&shadow_, &event_}) {
        for (bool cq : {false, true}) {
            *reinterpret_cast<volatile std::uint32_t*>(b->as<std::byte>() + entry_offset(qid, cq, stride_shift)) = 0;
        }
    }
}

}  // namespace dmakit::nvme
