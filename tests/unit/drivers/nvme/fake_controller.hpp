// A software model of one NVMe queue pair's controller side, for unit tests.
//
// It works on the same SQ/CQ memory as the host QueuePair: a write to the SQ
// tail doorbell makes it fetch the new SQEs in order; each command gets a
// completion posted with the right phase tag, SQID and SQHD (NVMe 1.4 §4.1,
// §4.6). It never overwrites an entry the host has not released through the
// CQ head doorbell (the CQ-full rule), and it checks the host, counting CID
// conflicts and invalid doorbell values. Faults can be queued for the next
// commands to exercise the host's "never trust the device" paths.
//
// Shadow doorbells (NVMe 1.3 §5.7), as QEMU's controller does them
// (hw/nvme/ctrl.c since 7.1): once use_shadow() gave it the entries, a
// doorbell write only wakes it; it then takes the SQ tail and CQ head from
// the shadow buffer, and writes EventIdx = the SQ tail it has fetched up to
// and the CQ head it has seen, reading the shadow again after each EventIdx
// write. `deferred` makes it wake only on process() (QEMU's timer), so the
// host sees EventIdx lag behind and skips register writes.
#pragma once

#include <dmakit/drivers/nvme/commands.hpp>
#include <dmakit/drivers/nvme/queue.hpp>

#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <vector>

namespace dmakit::nvme::testing {

enum class FaultKind {
    status_error,    // complete with `status`
    drop,            // never complete
    hold,            // complete only on release_held()
    duplicate,       // post the completion twice
    unknown_cid,     // post a spurious completion with `cid` first, then the real one
    sq_head_outside, // SQHD = depth + 3
    sq_head_past_tail, // SQHD one past the tail the host rang
    wrong_sqid,      // SQID + 1 on the real completion (the command is then lost)
    wrong_phase,     // post the real completion with the stale phase (the host never sees it)
};

struct Fault {
    explicit Fault(FaultKind k, CompletionStatus s = {}, std::uint16_t c = 0) : kind(k), status(s), cid(c) {}
    FaultKind kind;
    CompletionStatus status;  // for status_error
    std::uint16_t cid;        // for unknown_cid
};

// What a command completes with: status and DW0.
struct Response {
    CompletionStatus status{};
    std::uint32_t dw0 = 0;
    bool drop = false;  // never complete (a hung command)
    bool hold = false;  // complete only on release_held()
};

class FakeController final : public Doorbells {
public:
    FakeController(SubmissionEntry* sq, CompletionEntry* cq, std::uint32_t depth, std::uint16_t sqid)
        : sq_(sq), cq_(cq), depth_(depth), sqid_(sqid) {}

    // Decides each command's response; default is success with DW0 = 0.
    std::function<Response(const SubmissionEntry&)> handler;

    // Doorbell writes only count; the work waits for process().
    bool deferred = false;

    void use_shadow(const volatile std::uint32_t* sq_tail, volatile std::uint32_t* sq_event,
                    const volatile std::uint32_t* cq_head, volatile std::uint32_t* cq_event) {
        shadow_sq_tail_ = sq_tail;
        sq_event_ = sq_event;
        shadow_cq_head_ = cq_head;
        cq_event_ = cq_event;
    }
    [[nodiscard]] bool shadowed() const noexcept { return shadow_sq_tail_ != nullptr; }

    // What the controller does when it wakes: fetch up to the SQ tail
    // (the shadow's, when shadowed) and post what it can.
    void process() noexcept {
        if (!shadowed()) {
            fetch_to(sq_tail_);
            drain_backlog();
            return;
        }
        read_shadow_cq_head();
        drain_backlog();
        // QEMU's loop: EventIdx = tail fetched, then the shadow again, until
        // no new tail shows up (so a host update between the two is seen).
        for (;;) {
            const std::uint32_t tail = *shadow_sq_tail_;
            if (tail >= depth_) {
                ++bad_doorbells;
                return;
            }
            fetch_to(tail);
            *sq_event_ = sq_tail_;
            if (*shadow_sq_tail_ == sq_tail_) break;
        }
    }

    // Faults apply in order to the next commands fetched (at the next SQ doorbell).
    void fault_next(Fault f) { faults_.push_back(f); }

    void ring_sq_tail(std::uint16_t tail) noexcept override {
        ++sq_doorbells;
        if (tail >= depth_) {
            ++bad_doorbells;  // a real controller raises an async event (§5.2)
            return;
        }
        if (shadowed()) {
            // §5.7: the register and the shadow must agree when both are written.
            if (*shadow_sq_tail_ != tail) ++shadow_mismatches;
        } else {
            sq_tail_ = tail;
        }
        if (!deferred) process();
    }

    void fetch_to(std::uint32_t tail) noexcept {
        sq_tail_ = tail;
        while (sq_head_ != sq_tail_) {
            SubmissionEntry e;
            std::memcpy(&e, &sq_[sq_head_], sizeof e);
            sq_head_ = (sq_head_ + 1) % depth_;
            ++fetched;
            fetched_opcodes.push_back(e.opcode());
            if (!outstanding_.insert(e.cid()).second) ++cid_conflicts;
            execute(e);
        }
    }

    void ring_cq_head(std::uint16_t head) noexcept override {
        ++cq_doorbells;
        if (shadowed()) {
            if (*shadow_cq_head_ != head) ++shadow_mismatches;
            if (!deferred) process();
            return;
        }
        move_cq_head(head);
        drain_backlog();
    }

    // Posts held completions, in submission order or as `order` permutes them.
    void release_held(const std::vector<std::size_t>& order = {}) {
        std::vector<Pending> held;
        held.swap(held_);
        if (order.empty()) {
            for (auto& p : held) post(p);
        } else {
            for (std::size_t i : order) post(held[i]);
        }
    }
    [[nodiscard]] std::size_t held() const { return held_.size(); }

    // Completes `cid` now (a command the handler dropped, e.g. an AER the
    // model keeps until an event) with `status` and `dw0`, in order with the rest.
    void complete(std::uint16_t cid, CompletionStatus status, std::uint32_t dw0) {
        Pending p;
        p.cqe.cid = cid;
        p.cqe.sq_id = sqid_;
        p.cqe.dw0 = dw0;
        p.cqe.status = status.encode();
        post(p);
    }

    // Writes a raw CQE at the next CQ slot with the current phase.
    void post_raw(CompletionEntry e) { write_cqe(e, false); }
    // A well-formed completion of `cid` as this controller would post it now
    // (its SQID, the current SQ head): for tests that spoil one field.
    [[nodiscard]] CompletionEntry completion_for(std::uint16_t cid, CompletionStatus status = {}) const {
        CompletionEntry e;
        e.cid = cid;
        e.sq_id = sqid_;
        e.sq_head = static_cast<std::uint16_t>(sq_head_);
        e.status = status.encode();
        return e;
    }
    // Writes `e` into the next CQ slot with the phase of the previous pass
    // and does not advance: the slot still reads as not yet posted (§4.6 P),
    // and the next completion goes to the same slot.
    void post_stale_phase(CompletionEntry e) {
        e.status = static_cast<std::uint16_t>((e.status & ~1u) | (phase_ ^ 1u));
        std::memcpy(&cq_[cq_tail_], &e, sizeof e);
    }

    // Counters for the tests to assert on.
    std::uint64_t sq_doorbells = 0;
    std::uint64_t cq_doorbells = 0;
    std::uint64_t bad_doorbells = 0;
    std::uint64_t cid_conflicts = 0;
    std::uint64_t fetched = 0;
    std::uint64_t posted = 0;
    std::uint64_t cq_full_stalls = 0;
    std::uint64_t shadow_mismatches = 0;  // a register written with another value than its shadow
    std::vector<std::uint8_t> fetched_opcodes;

private:
    // The head may only move over entries that were posted.
    void move_cq_head(std::uint32_t head) noexcept {
        const std::uint32_t advance = (head + depth_ - host_cq_head_) % depth_;
        const std::uint32_t posted = (cq_tail_ + depth_ - host_cq_head_) % depth_;
        if (head >= depth_ || advance > posted) {
            ++bad_doorbells;
            return;
        }
        host_cq_head_ = head;
    }
    void read_shadow_cq_head() noexcept {
        if (!shadowed()) return;
        move_cq_head(*shadow_cq_head_);
        *cq_event_ = host_cq_head_;
    }

    struct Pending {
        CompletionEntry cqe;
        bool duplicate = false;
        bool wrong_phase = false;
        std::optional<std::uint16_t> sq_head_override;
    };

    void execute(const SubmissionEntry& e) {
        Response r = handler ? handler(e) : Response{};
        Pending p;
        p.cqe.cid = e.cid();
        p.cqe.sq_id = sqid_;
        p.cqe.dw0 = r.dw0;
        p.cqe.status = r.status.encode();
        if (r.drop) return;
        if (r.hold) {
            held_.push_back(p);
            return;
        }
        std::optional<Fault> f;
        if (!faults_.empty()) {
            f = faults_.front();
            faults_.pop_front();
        }
        if (f) {
            switch (f->kind) {
            case FaultKind::status_error: p.cqe.status = f->status.encode(); break;
            case FaultKind::drop: return;
            case FaultKind::hold: held_.push_back(p); return;
            case FaultKind::duplicate: p.duplicate = true; break;
            case FaultKind::unknown_cid: {
                Pending bogus = p;
                bogus.cqe.cid = f->cid;
                post(bogus);
                break;
            }
            case FaultKind::sq_head_outside: p.sq_head_override = static_cast<std::uint16_t>(depth_ + 3); break;
            case FaultKind::sq_head_past_tail:
                p.sq_head_override = static_cast<std::uint16_t>((sq_tail_ + 1) % depth_);
                break;
            case FaultKind::wrong_sqid: p.cqe.sq_id = static_cast<std::uint16_t>(sqid_ + 1); break;
            case FaultKind::wrong_phase: p.wrong_phase = true; break;
            }
        }
        post(p);
    }

    void post(Pending p) {
        outstanding_.erase(p.cqe.cid);
        p.cqe.sq_head = p.sq_head_override ? *p.sq_head_override : static_cast<std::uint16_t>(sq_head_);
        backlog_.push_back(p.cqe);
        wrong_phase_.push_back(p.wrong_phase);
        if (p.duplicate) {
            backlog_.push_back(p.cqe);
            wrong_phase_.push_back(false);
        }
        drain_backlog();
    }

    void drain_backlog() {
        while (!backlog_.empty()) {
            // QEMU reads the shadow head when the CQ looks full.
            if ((cq_tail_ + 1) % depth_ == host_cq_head_) read_shadow_cq_head();
            if ((cq_tail_ + 1) % depth_ == host_cq_head_) {
                ++cq_full_stalls;  // §4.1.2: the controller waits for the host to free entries
                return;
            }
            write_cqe(backlog_.front(), wrong_phase_.front());
            backlog_.pop_front();
            wrong_phase_.pop_front();
        }
    }

    void write_cqe(CompletionEntry e, bool wrong_phase) {
        const std::uint16_t p = wrong_phase ? static_cast<std::uint16_t>(phase_ ^ 1u) : phase_;
        e.status = static_cast<std::uint16_t>((e.status & ~1u) | p);
        std::memcpy(&cq_[cq_tail_], &e, sizeof e);
        ++posted;
        if (++cq_tail_ == depth_) {
            cq_tail_ = 0;
            phase_ ^= 1u;
        }
    }

    SubmissionEntry* sq_;
    CompletionEntry* cq_;
    std::uint32_t depth_;
    std::uint16_t sqid_;
    std::uint32_t sq_head_ = 0;
    std::uint32_t sq_tail_ = 0;
    std::uint32_t cq_tail_ = 0;
    std::uint32_t host_cq_head_ = 0;
    std::uint16_t phase_ = 1;
    std::deque<Fault> faults_;
    std::vector<Pending> held_;
    std::deque<CompletionEntry> backlog_;
    std::deque<bool> wrong_phase_;
    std::set<std::uint16_t> outstanding_;
    const volatile std::uint32_t* shadow_sq_tail_ = nullptr;
    volatile std::uint32_t* sq_event_ = nullptr;
    const volatile std::uint32_t* shadow_cq_head_ = nullptr;
    volatile std::uint32_t* cq_event_ = nullptr;
};

// Ring memory for one queue pair, aligned as a DMA allocation would be.
struct TestRings {
    explicit TestRings(std::uint32_t depth) : sq(depth), cq(depth) {}
    std::vector<SubmissionEntry> sq;
    std::vector<CompletionEntry> cq;
};

}  // namespace dmakit::nvme::testing
