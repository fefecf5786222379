// Shadow doorbells: the Doorbell Buffer Config command (NVMe 1.3 §5.7,
// opcode 7Ch, supported when Identify Controller OACS bit 8 is set).
//
// The host gives the controller two buffers in its own memory: the shadow
// doorbell buffer, where the host writes every SQ tail and CQ head it would
// write to a doorbell register, and the EventIdx buffer, where the controller
// writes, per doorbell, the value after which it wants an MMIO write again.
// Both are laid out like the doorbell registers (§3.1.24/25): SQ y tail at
// (2y) * (4 << CAP.DSTRD), CQ y head at (2y + 1) * (4 << CAP.DSTRD). A
// controller that polls the shadow while it works (an emulated one: each MMIO
// write is a VM exit) is then told about new work only when it is idle.
//
// The rule is virtio's "need event": after moving a doorbell from `old` to
// `new`, write the register iff the controller's EventIdx lies in [old, new)
// walking forward mod 2^16, i.e. (new - event - 1) mod 2^16 < (new - old) mod 2^16.
// For the admin queue the host updates the shadow and always writes the
// register too (§5.7: "the host shall also update the controller's
// corresponding doorbell property").
//
// Never trust the device: the old value is kept in host memory (the shadow
// is device-readable memory the controller may write, as QEMU does for the
// admin queue); EventIdx is only used to skip or make an MMIO write, so a bad
// value costs a needless write or a command that waits for its timeout.
#pragma once

#include <dmakit/drivers/nvme/queue.hpp>

#include <dmakit/dma/coherent.hpp>
#include <dmakit/dma/device.hpp>
#include <dmakit/support/result.hpp>

#include <cstdint>
#include <memory>

namespace dmakit::nvme {

// virtio's vring_need_event for 16-bit doorbell values. Ring indices wrap at
// the queue depth, not at 2^16; a wrapped range then only looks larger, so
// the test errs towards an MMIO write, never against one.
[[nodiscard]] constexpr bool doorbell_needs_mmio(std::uint16_t event_idx, std::uint16_t new_value,
                                                 std::uint16_t old_value) noexcept {
    return static_cast<std::uint16_t>(new_value - event_idx - 1) < static_cast<std::uint16_t>(new_value - old_value);
}

// One queue pair's entries in the two buffers.
struct ShadowSlots {
    volatile std::uint32_t* sq_tail = nullptr;
    volatile std::uint32_t* cq_head = nullptr;
    const volatile std::uint32_t* sq_event = nullptr;
    const volatile std::uint32_t* cq_event = nullptr;
};

// Doorbell writes of one queue pair, counted by where they went.
struct DoorbellCounts {
    std::uint64_t mmio_writes = 0;   // register writes
    std::uint64_t mmio_skipped = 0;  // shadow updates the EventIdx rule let go without one
};

// A queue pair's doorbells: the register (MMIO) doorbells, plus the shadow
// entries once attach() was called. Detached it forwards every write.
class ShadowDoorbells final : public Doorbells {
public:
    // `admin`: the admin queue, whose register is written on every update.
    ShadowDoorbells(std::unique_ptr<Doorbells> registers, bool admin)
        : registers_(std::move(registers)), admin_(admin) {}

    // Uses `slots` from now on, starting from the ring's current values,
    // which are written to the shadow at once. Only while the queue is quiet.
    void attach(const ShadowSlots& slots, std::uint16_t sq_tail, std::uint16_t cq_head) noexcept;
    // Back to register writes only (Doorbell Buffer Config refused, or not sent yet).
    void detach() noexcept { slots_ = {}; }
    [[nodiscard]] bool shadowed() const noexcept { return slots_.sq_tail != nullptr; }
    [[nodiscard]] const DoorbellCounts& counts() const noexcept { return counts_; }

    void ring_sq_tail(std::uint16_t tail) noexcept override;
    void ring_cq_head(std::uint16_t head) noexcept override;

private:
    // Writes the shadow; true when the register must be written too.
    [[nodiscard]] bool update(volatile std::uint32_t* shadow, const volatile std::uint32_t* event,
                              std::uint16_t& last, std::uint16_t value) noexcept;
    // update() when shadowed, and the count; true when the register is to be written.
    [[nodiscard]] bool register_write_needed(volatile std::uint32_t* shadow, const volatile std::uint32_t* event,
                                             std::uint16_t& last, std::uint16_t value) noexcept;

    std::unique_ptr<Doorbells> registers_;
    bool admin_;
    ShadowSlots slots_;
    std::uint16_t last_sq_tail_ = 0;  // host copies: the shadow itself is device-writable
    std::uint16_t last_cq_head_ = 0;
    DoorbellCounts counts_;
};

// The shadow doorbell and EventIdx buffers: page-aligned coherent memory
// (Doorbell Buffer Config PRP1/PRP2 must be page aligned), sized for queue
// IDs 0..max_qid at the doorbell stride.
class DoorbellBuffer {
public:
    [[nodiscard]] static Result<DoorbellBuffer> allocate(dma::DmaDevice& dma, std::uint16_t max_qid,
                                                         std::uint32_t stride_shift, std::uint64_t page_size);
    DoorbellBuffer() = default;

    // Whether queue IDs 0..max_qid at this stride have their entries inside.
    [[nodiscard]] bool covers(std::uint16_t max_qid, std::uint32_t stride_shift) const noexcept;
    [[nodiscard]] ShadowSlots slots(std::uint16_t qid, std::uint32_t stride_shift) const noexcept;
    // Zeroes both buffers (before they are given to the controller).
    void clear() noexcept;
    // Zeroes one queue's entries (before the queue is created: a new queue starts at 0).
    void clear_queue(std::uint16_t qid, std::uint32_t stride_shift) noexcept;

    [[nodiscard]] dma::DmaAddr shadow_dma() const noexcept { return shadow_.dma(); }
    [[nodiscard]] dma::DmaAddr event_dma() const noexcept { return event_.dma(); }
    [[nodiscard]] explicit operator bool() const noexcept { return static_cast<bool>(shadow_); }
    // For a controller that would not stop: its memory is never freed (see Controller).
    [[nodiscard]] dma::CoherentBuffer take_shadow() noexcept { return std::move(shadow_); }
    [[nodiscard]] dma::CoherentBuffer take_event() noexcept { return std::move(event_); }

private:
    DoorbellBuffer(dma::CoherentBuffer shadow, dma::CoherentBuffer event)
        : shadow_(std::move(shadow)), event_(std::move(event)) {}

    dma::CoherentBuffer shadow_;
    dma::CoherentBuffer event_;
};

}  // namespace dmakit::nvme
