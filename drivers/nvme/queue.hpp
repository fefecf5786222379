// One NVMe submission/completion queue pair: ring logic only (NVMe 1.4 §4.1).
//
// The rings are memory the caller allocated (coherent DMA buffers in the
// driver, plain arrays in tests); doorbells go through a small interface
// (MMIO writes in the driver, a software controller in tests). The queue
// does command-ID allocation, submission with optional batching, completion
// polling by phase tag, SQ head tracking, per-command callbacks and deadlines.
//
// Never trust the device: every CQE field used as an index (CID, SQHD, SQID)
// is checked first; a bad one is counted in QueueStats, reported to the
// Logger and the entry is skipped (an SQHD that merely lags or runs ahead of
// the tail only leaves the head where it was). All per-command state lives
// in host memory the device cannot write.
//
// Not thread-safe: one queue pair per thread.
#pragma once

#include <dmakit/drivers/nvme/commands.hpp>

#include <dmakit/support/log.hpp>
#include <dmakit/support/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

namespace dmakit::nvme {

// Doorbell writes for one queue pair (NVMe 1.4 §3.1.24 SQyTDBL, §3.1.25
// CQyHDBL). The queue issues a release fence before ring_sq_tail; an MMIO
// implementation must still order its write after earlier stores to DMA
// memory (a wmb on weakly ordered CPUs).
class Doorbells {
public:
    virtual ~Doorbells() = default;
    virtual void ring_sq_tail(std::uint16_t tail) noexcept = 0;
    virtual void ring_cq_head(std::uint16_t head) noexcept = 0;
};

using Clock = std::chrono::steady_clock;
inline constexpr Clock::time_point no_deadline = Clock::time_point::max();

// What a completion callback receives.
struct Completion {
    std::uint16_t cid = 0;
    CompletionStatus status;
    std::uint32_t dw0 = 0;        // command specific result (e.g. Set Features)
    std::uint32_t dw1 = 0;
    bool timed_out = false;       // it had been reported by scan_timeouts before it completed
    bool cancelled = false;       // synthesized by cancel_all_and_reset, not from the device
};
// noexcept is part of the type (C++17): a function that may throw does not
// convert, so an exception can never leave poll() half way through a CQE
// (queue state, CQ head doorbell). Report failures through user_data.
using CompletionFn = void (*)(void* user_data, const Completion& completion) noexcept;

// Largest ring a QueuePair takes. A CID is generation << tag_bits | tag in 16
// bits; 4096 entries need 12 tag bits and leave 4 generation bits, so a late
// or duplicated completion is only mistaken for a reused tag's current
// command after 16 reuses (NVMe allows 65536 entries; we do not go there).
inline constexpr std::uint32_t max_queue_depth = 4096;
inline constexpr std::uint32_t min_generation_bits = 4;

struct QueueStats {
    std::uint64_t submitted = 0;
    std::uint64_t completed = 0;        // callbacks run for device completions
    std::uint64_t error_status = 0;     // completions whose status was not success
    std::uint64_t sq_full = 0;          // submits refused: no free CID or SQ slot
    std::uint64_t sq_doorbells = 0;
    std::uint64_t cq_doorbells = 0;
    std::uint64_t cq_wraps = 0;         // times the expected phase flipped
    // Device misbehaviour, each entry skipped:
    std::uint64_t unknown_cid = 0;      // CID names no outstanding command (spurious or duplicate)
    std::uint64_t stale_cid = 0;        // CID of an earlier use of a slot that is in use again
    std::uint64_t unrung_cid = 0;       // CID of a command whose SQ doorbell was not written yet
    // SQHD >= depth: no head can be there, the entry is malformed and skipped whole.
    // SQHD beyond the last tail rung: head not moved, the entry's CID still used.
    std::uint64_t bad_sq_head = 0;
    std::uint64_t bad_sq_id = 0;        // SQID is not this queue's
    // Timeouts:
    std::uint64_t timeouts = 0;         // commands past their deadline (reported once each)
    std::uint64_t late_completions = 0; // of those, completed afterwards
    std::uint64_t cancelled = 0;

    [[nodiscard]] std::uint64_t device_errors() const noexcept {
        return unknown_cid + stale_cid + unrung_cid + bad_sq_head + bad_sq_id;
    }
};

struct TimedOutCommand {
    std::uint16_t cid = 0;
    void* user_data = nullptr;
    Clock::time_point deadline;
};

struct QueueConfig {
    std::uint16_t qid = 0;                  // 0 = admin; checked against each CQE's SQID
    std::uint32_t depth = 0;                // entries in each ring, 2..max_queue_depth
    SubmissionEntry* sq = nullptr;          // depth * 64 bytes
    CompletionEntry* cq = nullptr;          // depth * 16 bytes, zeroed by create()
    Doorbells* doorbells = nullptr;         // must outlive the queue
    const Logger* logger = nullptr;         // optional; device errors are reported here
};

class QueuePair {
public:
    // Checks the config and zeroes the CQ ring: every entry starts with phase
    // 0 and the host expects phase 1 on the first pass (§4.6, §4.1).
    [[nodiscard]] static Result<QueuePair> create(const QueueConfig& config);

    QueuePair(const QueuePair&) = delete;
    QueuePair& operator=(const QueuePair&) = delete;
    QueuePair(QueuePair&&) noexcept = default;
    QueuePair& operator=(QueuePair&&) noexcept = default;
    ~QueuePair() = default;

    // Copies `sqe` into the SQ with a fresh CID and advances the tail, without
    // ringing the doorbell (call ring_sq() once per batch). `done` runs from
    // poll() with `user_data`. EAGAIN when no CID or SQ slot is free.
    [[nodiscard]] Result<std::uint16_t> submit(const SubmissionEntry& sqe, CompletionFn done, void* user_data,
                                               Clock::time_point deadline = no_deadline);
    // Writes the SQ tail doorbell if anything was submitted since the last ring.
    void ring_sq() noexcept;
    [[nodiscard]] bool can_submit() const noexcept;

    // Consumes up to `max_entries` new CQEs (never more than depth() per
    // call), runs callbacks and writes the CQ head doorbell once. Returns the
    // number of callbacks run. Callbacks may submit; a poll() from inside a
    // callback returns 0.
    std::uint32_t poll(std::uint32_t max_entries = 0xffffffffu);

    // Reports each outstanding command whose deadline is <= now, once. The
    // command stays outstanding (the device may still DMA into its buffers)
    // until it completes, is aborted, or cancel_all_and_reset() runs.
    std::uint32_t scan_timeouts(Clock::time_point now, const std::function<void(const TimedOutCommand&)>& on_timeout);

    // For after the controller stopped using the rings (disabled, reset or
    // queue deleted): completes every outstanding command with `cancelled`
    // set, then resets the rings to empty (heads/tails 0, phase 1, CQ zeroed).
    std::uint32_t cancel_all_and_reset();

    // For after a controller reset (§7.3.2), with nothing outstanding (call
    // cancel_all_and_reset first): the same ring memory used for `depth`
    // entries (2..ring_entries(); CAP.MQES may shrink across a reset, §3.1.1)
    // and new doorbells (CAP.DSTRD may move them). Counters are kept; the
    // rings are reset as by cancel_all_and_reset.
    [[nodiscard]] Status rebuild(std::uint32_t depth, Doorbells* doorbells);

    [[nodiscard]] std::uint16_t qid() const noexcept { return qid_; }
    [[nodiscard]] std::uint32_t depth() const noexcept { return depth_; }
    // Entries the ring memory holds: the depth the queue was created with.
    [[nodiscard]] std::uint32_t ring_entries() const noexcept { return ring_entries_; }
    // Commands that can be outstanding at once: depth - 1 (a full SQ keeps a slot empty, §4.1.2).
    [[nodiscard]] std::uint32_t capacity() const noexcept { return depth_ - 1; }
    [[nodiscard]] std::uint32_t outstanding() const noexcept {
        return capacity() - static_cast<std::uint32_t>(free_tags_.size());
    }
    [[nodiscard]] std::uint32_t sq_head() const noexcept { return sq_head_; }
    [[nodiscard]] std::uint32_t sq_tail() const noexcept { return sq_tail_; }
    [[nodiscard]] std::uint32_t cq_head() const noexcept { return cq_head_; }
    [[nodiscard]] std::uint16_t expected_phase() const noexcept { return phase_; }
    [[nodiscard]] const QueueStats& stats() const noexcept { return stats_; }

private:
    struct Slot {
        CompletionFn done = nullptr;
        void* user_data = nullptr;
        Clock::time_point deadline = no_deadline;
        std::uint64_t submit_seq = 0;   // submitted_ before this command: rung once < rung_seq_
        std::uint16_t generation = 0;
        bool in_flight = false;
        bool timed_out = false;
    };

    explicit QueuePair(const QueueConfig& config);
    void set_depth(std::uint32_t depth);
    [[nodiscard]] std::uint16_t make_cid(std::uint32_t tag, std::uint16_t generation) const noexcept {
        return static_cast<std::uint16_t>((std::uint32_t{generation} << tag_bits_) | tag);
    }
    [[nodiscard]] bool update_sq_head(std::uint16_t sqhd) noexcept;
    void report(std::uint64_t& counter, const char* what, const CompletionEntry& e) noexcept;
    void reset_rings() noexcept;

    std::uint16_t qid_ = 0;
    std::uint32_t depth_ = 0;
    std::uint32_t ring_entries_ = 0;
    SubmissionEntry* sq_ = nullptr;
    CompletionEntry* cq_ = nullptr;
    Doorbells* doorbells_ = nullptr;
    const Logger* logger_ = nullptr;

    std::uint32_t sq_tail_ = 0;       // next slot the host writes
    std::uint32_t sq_tail_rung_ = 0;  // last tail written to the doorbell
    std::uint64_t submit_seq_ = 0;    // commands submitted so far
    std::uint64_t rung_seq_ = 0;      // submit_seq_ at the last doorbell: later ones are unrung
    std::uint32_t sq_head_ = 0;       // device's head, from validated SQHD
    std::uint32_t cq_head_ = 0;
    std::uint16_t phase_ = 1;
    bool in_poll_ = false;

    // CID = generation << tag_bits_ | tag; the generation catches a late or
    // duplicated completion for a tag that has been reused since.
    std::uint32_t tag_bits_ = 0;
    std::uint32_t generation_mask_ = 0;
    std::vector<Slot> slots_;              // indexed by tag, capacity() entries
    std::vector<std::uint16_t> free_tags_; // LIFO keeps recently used slots warm
    QueueStats stats_;
};

}  // namespace dmakit::nvme
