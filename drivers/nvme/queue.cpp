#include <dmakit/drivers/nvme/queue.hpp>

#include <dmakit/drivers/nvme/format.hpp>

#include <dmakit/support/mmio.hpp>

#include <bit>
#include <cstddef>
#include <cerrno>
#include <cstring>
#include <string>

namespace dmakit::nvme {

Result<QueuePair> QueuePair::create(const QueueConfig& config) {
    if (config.depth < 2 || config.depth > max_queue_depth) {
        return Error(EINVAL, "queue depth " + std::to_string(config.depth) + " is outside 2.." +
                                 std::to_string(max_queue_depth) +
                                 " entries (larger rings would leave command IDs fewer than " +
                                 std::to_string(min_generation_bits) + " generation bits); use a smaller depth");
    }
    if (config.sq == nullptr || config.cq == nullptr || config.doorbells == nullptr) {
        return Error(EINVAL, "queue " + std::to_string(config.qid) + " needs SQ and CQ ring memory and doorbells");
    }
    if (reinterpret_cast<std::uintptr_t>(config.sq) % alignof(SubmissionEntry) != 0 ||
        reinterpret_cast<std::uintptr_t>(config.cq) % alignof(CompletionEntry) != 0) {
        return Error(EINVAL, "queue " + std::to_string(config.qid) + " ring memory is misaligned");
    }
    return QueuePair(config);
}

QueuePair::QueuePair(const QueueConfig& config)
    : qid_(config.qid),
      ring_entries_(config.depth),
      sq_(config.sq),
      cq_(config.cq),
      doorbells_(config.doorbells),
      logger_(config.logger) {
    set_depth(config.depth);
    reset_rings();
}

void QueuePair::set_depth(std::uint32_t depth) {
    depth_ = depth;
    const std::uint32_t cap = capacity();
    tag_bits_ = static_cast<std::uint32_t>(std::bit_width(cap - 1));  // tags 0..cap-1
    generation_mask_ = (std::uint32_t{1} << (16 - tag_bits_)) - 1;
    static_assert(std::bit_width(max_queue_depth - 2) + min_generation_bits <= 16);
    // Generations start again: after a controller reset no completion from
    // before it can arrive (the controller deleted every queue, §7.3.2).
    slots_.assign(cap, Slot{});
}

Status QueuePair::rebuild(std::uint32_t depth, Doorbells* doorbells) {
    if (outstanding() != 0) {
        return Error(EBUSY, "queue " + std::to_string(qid_) + " still has " + std::to_string(outstanding()) +
                                " commands outstanding; cancel them first (cancel_all_and_reset)");
    }
    if (depth < 2 || depth > ring_entries_) {
        return Error(EINVAL, "queue " + std::to_string(qid_) + ": depth " + std::to_string(depth) +
                                 " is outside 2.." + std::to_string(ring_entries_) +
                                 ", the entries its rings were created with");
    }
    if (doorbells == nullptr) return Error(EINVAL, "queue " + std::to_string(qid_) + " needs doorbells");
    doorbells_ = doorbells;
    set_depth(depth);
    reset_rings();
    return {};
}

void QueuePair::reset_rings() noexcept {
    sq_tail_ = sq_tail_rung_ = sq_head_ = cq_head_ = 0;
    rung_seq_ = submit_seq_;
    phase_ = 1;
    std::memset(static_cast<void*>(cq_), 0, std::size_t{depth_} * sizeof(CompletionEntry));
    free_tags_.clear();
    free_tags_.reserve(slots_.size());
    // Reverse order so tag 0 is handed out first.
    for (std::size_t t = slots_.size(); t-- > 0;) free_tags_.push_back(static_cast<std::uint16_t>(t));
}

bool QueuePair::can_submit() const noexcept {
    return !free_tags_.empty() && (sq_tail_ + 1) % depth_ != sq_head_;
}

Result<std::uint16_t> QueuePair::submit(const SubmissionEntry& sqe, CompletionFn done, void* user_data,
                                        Clock::time_point deadline) {
    if (!can_submit()) {
        ++stats_.sq_full;
        return Error(EAGAIN, "queue " + std::to_string(qid_) + " is full (" + std::to_string(outstanding()) +
                                 " outstanding); poll for completions and retry");
    }
    const std::uint16_t tag = free_tags_.back();
    free_tags_.pop_back();
    Slot& slot = slots_[tag];
    std::uint16_t generation = slot.generation;
    do {
        generation = static_cast<std::uint16_t>((generation + 1) & generation_mask_);
    } while (make_cid(tag, generation) == 0xffffu);  // FFFFh means "no command" in the error log (§5.14.1.1)
    slot = Slot{done, user_data, deadline, submit_seq_++, generation, true, false};
    const std::uint16_t cid = make_cid(tag, generation);

    SubmissionEntry entry = sqe;
    entry.set_cid(cid);
    std::memcpy(static_cast<void*>(&sq_[sq_tail_]), &entry, sizeof entry);
    sq_tail_ = (sq_tail_ + 1) % depth_;
    ++stats_.submitted;
    return cid;
}

void QueuePair::ring_sq() noexcept {
    if (sq_tail_ == sq_tail_rung_) return;
    // SQEs must be globally visible before the controller sees the new tail
    // (the kernel's wmb before the doorbell; the MMIO write adds what the
    // platform needs). dma_wmb, not a thread fence: the ordering is against
    // the device, which ThreadSanitizer cannot see.
    mmio::dma_wmb();
    doorbells_->ring_sq_tail(static_cast<std::uint16_t>(sq_tail_));
    sq_tail_rung_ = sq_tail_;
    rung_seq_ = submit_seq_;
    ++stats_.sq_doorbells;
}

void QueuePair::report(std::uint64_t& counter, const char* what, const CompletionEntry& e) noexcept {
    ++counter;
    // Power-of-two counts only, so a misbehaving device cannot flood the log.
    if (logger_ == nullptr || (counter & (counter - 1)) != 0) return;
    try {
        logger_->warning("nvme queue " + std::to_string(qid_) + ": " + what + " (cid " + hex(e.cid) + " sqhd " +
                         std::to_string(e.sq_head) + " sqid " + std::to_string(e.sq_id) + " status " + hex(e.status) +
                         "), entry ignored; seen " + std::to_string(counter) + " times");
    } catch (...) {
        // Reporting must not turn a device error into a host failure.
    }
}

bool QueuePair::update_sq_head(std::uint16_t sqhd) noexcept {
    // The new head must lie in [head, last tail rung] walking forward: the
    // controller cannot have fetched entries the host has not published. A
    // head that went backwards looks the same and is refused too.
    if (sqhd >= depth_) return false;
    const std::uint32_t advance = (sqhd + depth_ - sq_head_) % depth_;
    const std::uint32_t published = (sq_tail_rung_ + depth_ - sq_head_) % depth_;
    if (advance > published) return false;
    sq_head_ = sqhd;
    return true;
}

std::uint32_t QueuePair::poll(std::uint32_t max_entries) {
    if (in_poll_) return 0;
    in_poll_ = true;
    std::uint32_t consumed = 0;
    std::uint32_t delivered = 0;
    // At most one pass over the ring per call: a device that keeps writing
    // entries with the expected phase cannot keep the host here forever.
    const std::uint32_t budget = max_entries < depth_ ? max_entries : depth_;
    while (consumed < budget) {
        CompletionEntry* slot = &cq_[cq_head_];
        // DW3 (CID + status with the phase tag) in one load, so the CID we
        // act on is the one written together with the phase we checked.
        std::uint32_t dw3;
        static_assert(offsetof(CompletionEntry, cid) == 12);
        dw3 = *reinterpret_cast<volatile const std::uint32_t*>(reinterpret_cast<const std::byte*>(slot) + 12);
        if (((dw3 >> 16) & 1u) != phase_) break;
        // Read the rest of the entry only after seeing its phase.
        mmio::dma_rmb();
        const auto* words = reinterpret_cast<volatile const std::uint32_t*>(slot);
        CompletionEntry e;
        e.dw0 = words[0];
        e.dw1 = words[1];
        const std::uint32_t dw2 = words[2];
        e.sq_head = static_cast<std::uint16_t>(dw2 & 0xffffu);
        e.sq_id = static_cast<std::uint16_t>(dw2 >> 16);
        e.cid = static_cast<std::uint16_t>(dw3 & 0xffffu);
        e.status = static_cast<std::uint16_t>(dw3 >> 16);

        if (++cq_head_ == depth_) {
            cq_head_ = 0;
            phase_ ^= 1u;
            ++stats_.cq_wraps;
        }
        ++consumed;

        if (e.sq_id != qid_) {
            report(stats_.bad_sq_id, "completion names another submission queue", e);
            continue;
        }
        // §4.6: SQHD is an index into the SQ. One at or past the ring's end
        // cannot be a head at all: the entry is malformed (a stray or torn
        // write), so its CID is not trusted either; the command stays
        // outstanding until a well-formed completion, an abort or a reset.
        if (e.sq_head >= depth_) {
            report(stats_.bad_sq_head, "SQ head outside the queue; entry not trusted", e);
            continue;
        }
        // A head behind the one known (§4.6: SQHD is the head when the entry
        // was created, so it may lag) or past the tail rung leaves the head
        // where it was; the CID may still be good.
        if (!update_sq_head(e.sq_head)) {
            report(stats_.bad_sq_head, "SQ head behind the known head or past the tail", e);
        }

        const std::uint32_t tag = e.cid & ((std::uint32_t{1} << tag_bits_) - 1);
        const auto generation = static_cast<std::uint16_t>(e.cid >> tag_bits_);
        if (tag >= slots_.size() || !slots_[tag].in_flight) {
            report(stats_.unknown_cid, "completion for a command ID that is not outstanding", e);
            continue;
        }
        Slot& s = slots_[tag];
        if (s.generation != generation) {
            report(stats_.stale_cid, "completion for an earlier use of a command ID", e);
            continue;
        }
        // The device cannot have fetched an SQE whose tail it was never told
        // about: the command stays outstanding and completes for real later.
        if (s.submit_seq >= rung_seq_) {
            report(stats_.unrung_cid, "completion for a command whose doorbell was not written yet", e);
            continue;
        }

        Completion c;
        c.cid = e.cid;
        c.status = CompletionStatus::decode(e.status);
        c.dw0 = e.dw0;
        c.dw1 = e.dw1;
        c.timed_out = s.timed_out;
        const CompletionFn done = s.done;
        void* const user = s.user_data;
        s.in_flight = false;
        s.done = nullptr;
        s.user_data = nullptr;
        free_tags_.push_back(static_cast<std::uint16_t>(tag));  // free before the callback: it may resubmit

        ++stats_.completed;
        if (!c.status.ok()) ++stats_.error_status;
        if (c.timed_out) ++stats_.late_completions;
        ++delivered;
        if (done != nullptr) done(user, c);
    }
    if (consumed > 0) {
        doorbells_->ring_cq_head(static_cast<std::uint16_t>(cq_head_));
        ++stats_.cq_doorbells;
    }
    in_poll_ = false;
    return delivered;
}

std::uint32_t QueuePair::scan_timeouts(Clock::time_point now,
                                       const std::function<void(const TimedOutCommand&)>& on_timeout) {
    std::uint32_t found = 0;
    for (std::uint32_t tag = 0; tag < slots_.size(); ++tag) {
        Slot& s = slots_[tag];
        if (!s.in_flight || s.timed_out || s.deadline > now) continue;
        s.timed_out = true;
        ++stats_.timeouts;
        ++found;
        if (on_timeout) on_timeout({make_cid(tag, s.generation), s.user_data, s.deadline});
    }
    return found;
}

std::uint32_t QueuePair::cancel_all_and_reset() {
    struct Pending {
        CompletionFn done;
        void* user;
        Completion completion;
    };
    std::vector<Pending> pending;
    for (std::uint32_t tag = 0; tag < slots_.size(); ++tag) {
        Slot& s = slots_[tag];
        if (!s.in_flight) continue;
        Completion c;
        c.cid = make_cid(tag, s.generation);
        c.status.sct = sct::generic;
        c.status.sc = sc::aborted_sq_deletion;
        c.timed_out = s.timed_out;
        c.cancelled = true;
        pending.push_back({s.done, s.user_data, c});
        s.in_flight = false;
        s.done = nullptr;
        s.user_data = nullptr;
    }
    // Reset before the callbacks so one that resubmits lands in the new rings.
    reset_rings();
    for (const Pending& p : pending) {
        ++stats_.cancelled;
        if (p.done != nullptr) p.done(p.user, p.completion);
    }
    return static_cast<std::uint32_t>(pending.size());
}

}  // namespace dmakit::nvme
