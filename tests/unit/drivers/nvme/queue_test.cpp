#include "fake_controller.hpp"

#include <dmakit/drivers/nvme/queue.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <set>
#include <type_traits>
#include <string>
#include <vector>

namespace dmakit::nvme {
namespace {

using testing::FakeController;
using testing::Fault;
using testing::FaultKind;
using testing::Response;
using testing::TestRings;

// Records every callback.
struct Recorder {
    std::vector<Completion> done;
    std::vector<std::uintptr_t> users;
    static void on_done(void* self, const Completion& c) noexcept {
        auto* r = static_cast<Recorder*>(self);
        r->done.push_back(c);
    }
};

struct Tagged {
    Recorder* rec;
    std::uintptr_t id;
    static void on_done(void* self, const Completion& c) noexcept {
        auto* t = static_cast<Tagged*>(self);
        t->rec->done.push_back(c);
        t->rec->users.push_back(t->id);
    }
};

struct Fixture {
    explicit Fixture(std::uint32_t depth, std::uint16_t qid = 1, const Logger* logger = nullptr)
        : rings(depth), fake(rings.sq.data(), rings.cq.data(), depth, qid),
          queue(QueuePair::create({qid, depth, rings.sq.data(), rings.cq.data(), &fake, logger}).value()) {}

    std::uint16_t submit(Recorder& rec, Clock::time_point deadline = no_deadline) {
        auto cid = queue.submit(flush(1), &Recorder::on_done, &rec, deadline);
        EXPECT_TRUE(cid.ok()) << (cid.ok() ? "" : dmakit::to_string(cid.error()));
        return cid.ok() ? *cid : 0;
    }

    TestRings rings;
    FakeController fake;
    QueuePair queue;
};

// Posts a raw CQE for `cid` on queue 1, as a misbehaving device would.
void post_for(Fixture& f, std::uint16_t cid, std::uint32_t sq_head) {
    CompletionEntry e;
    e.cid = cid;
    e.sq_id = 1;
    e.sq_head = static_cast<std::uint16_t>(sq_head);
    f.fake.post_raw(e);
}

TEST(Queue, CreateRejectsBadConfig) {
    TestRings rings(8);
    testing::FakeController fake(rings.sq.data(), rings.cq.data(), 8, 1);
    EXPECT_EQ(QueuePair::create({1, 1, rings.sq.data(), rings.cq.data(), &fake, nullptr}).error().code(), EINVAL);
    EXPECT_FALSE(QueuePair::create({1, 65537, rings.sq.data(), rings.cq.data(), &fake, nullptr}).ok());
    EXPECT_FALSE(QueuePair::create({1, 8, nullptr, rings.cq.data(), &fake, nullptr}).ok());
    EXPECT_FALSE(QueuePair::create({1, 8, rings.sq.data(), rings.cq.data(), nullptr, nullptr}).ok());
}

TEST(Queue, CreateZeroesCompletionRing) {
    TestRings rings(4);
    for (auto& e : rings.cq) e.status = 0xffff;  // stale phase 1 everywhere would look like completions
    FakeController fake(rings.sq.data(), rings.cq.data(), 4, 1);
    auto q = QueuePair::create({1, 4, rings.sq.data(), rings.cq.data(), &fake, nullptr}).value();
    EXPECT_EQ(q.poll(), 0u);
    EXPECT_EQ(q.stats().device_errors(), 0u);
}

TEST(Queue, SubmitBatchesUntilRing) {
    Fixture f(8);
    Recorder rec;
    f.submit(rec);
    f.submit(rec);
    f.submit(rec);
    EXPECT_EQ(f.fake.sq_doorbells, 0u);
    EXPECT_EQ(f.fake.fetched, 0u);
    f.queue.ring_sq();
    f.queue.ring_sq();  // nothing new: no second doorbell write
    EXPECT_EQ(f.fake.sq_doorbells, 1u);
    EXPECT_EQ(f.fake.fetched, 3u);
    EXPECT_EQ(f.queue.poll(), 3u);
    EXPECT_EQ(f.fake.cq_doorbells, 1u);  // one CQ head write per poll
    EXPECT_EQ(f.queue.cq_head(), 3u);
    EXPECT_EQ(f.queue.sq_head(), 3u);   // from SQHD
    EXPECT_EQ(rec.done.size(), 3u);
    EXPECT_EQ(f.fake.bad_doorbells, 0u);
}

TEST(Queue, FullQueueKeepsOneSlotEmpty) {
    Fixture f(4);
    Recorder rec;
    EXPECT_EQ(f.queue.capacity(), 3u);
    for (int i = 0; i < 3; ++i) f.submit(rec);
    EXPECT_FALSE(f.queue.can_submit());
    const auto r = f.queue.submit(flush(1), &Recorder::on_done, &rec);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), EAGAIN);
    EXPECT_EQ(f.queue.stats().sq_full, 1u);
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 3u);
    EXPECT_TRUE(f.queue.can_submit());
}

TEST(Queue, CidGenerationsChangeOnReuse) {
    Fixture f(2);  // one usable slot: tag 0 every time
    Recorder rec;
    std::vector<std::uint16_t> cids;
    for (int i = 0; i < 5; ++i) {
        cids.push_back(f.submit(rec));
        f.queue.ring_sq();
        ASSERT_EQ(f.queue.poll(), 1u);
    }
    for (std::size_t i = 1; i < cids.size(); ++i) EXPECT_NE(cids[i], cids[i - 1]);
    for (std::size_t i = 0; i < cids.size(); ++i) EXPECT_EQ(rec.done[i].cid, cids[i]);
}

TEST(Queue, CompletionCarriesStatusAndDw0) {
    Fixture f(8);
    f.fake.handler = [](const SubmissionEntry& e) {
        Response r;
        if (e.opcode() == nvm_opcode::read) {
            r.status.sct = sct::generic;
            r.status.sc = sc::lba_out_of_range;
            r.status.do_not_retry = true;
        }
        r.dw0 = 0x00070003;
        return r;
    };
    Recorder rec;
    ASSERT_TRUE(f.queue.submit(read_blocks(1, 1ull << 40, 1, {0x1000, 0}).value(), &Recorder::on_done, &rec).ok());
    ASSERT_TRUE(f.queue.submit(flush(1), &Recorder::on_done, &rec).ok());
    f.queue.ring_sq();
    ASSERT_EQ(f.queue.poll(), 2u);
    EXPECT_EQ(status_name(rec.done[0].status), "LBA Out of Range");
    EXPECT_TRUE(rec.done[0].status.do_not_retry);
    EXPECT_TRUE(rec.done[1].status.ok());
    EXPECT_EQ(rec.done[1].dw0, 0x00070003u);
    EXPECT_EQ(f.queue.stats().error_status, 1u);
    EXPECT_EQ(f.fake.fetched_opcodes, (std::vector<std::uint8_t>{nvm_opcode::read, nvm_opcode::flush}));
}

// Many commands through small and large queues, random batch sizes, in-order
// and out-of-order completion: every command completes once with its own
// user data, the fake never sees two outstanding commands share a CID, and
// the host's phase matches the number of passes over the CQ.
struct WrapCase {
    std::uint32_t depth;
    bool shuffle;
};

class Wraparound : public ::testing::TestWithParam<WrapCase> {};

TEST_P(Wraparound, ThousandsOfCommands) {
    const auto [depth, shuffle] = GetParam();
    Fixture f(depth);
    Recorder rec;
    const std::uint64_t total = std::max<std::uint64_t>(5000, 8ull * depth);
    std::vector<Tagged> tags(total);
    std::vector<int> seen(total, 0);
    std::mt19937 rng(depth * 7 + shuffle);
    std::uint64_t next = 0;

    std::uint64_t rounds = 0;
    while (rec.done.size() < total) {
        // Each round completes at least one command when the queue works; a
        // stuck queue (e.g. a phase bug) fails here instead of hanging.
        ASSERT_LT(rounds++, total) << "no progress after " << rec.done.size() << " completions";
        // Hold every completion of this batch when shuffling, so they come back permuted.
        std::uint32_t batch = std::uniform_int_distribution<std::uint32_t>(1, f.queue.capacity())(rng);
        std::uint32_t n = 0;
        while (n < batch && next < total && f.queue.can_submit()) {
            if (shuffle) f.fake.fault_next(Fault(FaultKind::hold));
            tags[next] = Tagged{&rec, next};
            ASSERT_TRUE(f.queue.submit(flush(1), &Tagged::on_done, &tags[next]).ok());
            ++next;
            ++n;
        }
        f.queue.ring_sq();
        if (shuffle) {
            std::vector<std::size_t> order(f.fake.held());
            for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
            std::shuffle(order.begin(), order.end(), rng);
            f.fake.release_held(order);
        }
        // Poll with a small budget sometimes, to stop mid-ring.
        const std::uint32_t budget = std::uniform_int_distribution<std::uint32_t>(1, depth)(rng);
        f.queue.poll(budget);
        f.queue.poll();
    }

    ASSERT_EQ(rec.done.size(), total);
    for (std::uintptr_t id : rec.users) ++seen[id];
    EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
    for (const auto& c : rec.done) EXPECT_TRUE(c.status.ok());
    const auto& s = f.queue.stats();
    EXPECT_EQ(s.submitted, total);
    EXPECT_EQ(s.completed, total);
    EXPECT_EQ(s.device_errors(), 0u);
    EXPECT_EQ(f.fake.cid_conflicts, 0u);
    EXPECT_EQ(f.fake.bad_doorbells, 0u);
    EXPECT_EQ(f.fake.cq_full_stalls, 0u);
    EXPECT_EQ(s.cq_wraps, total / depth);
    EXPECT_EQ(f.queue.expected_phase(), 1u ^ ((total / depth) & 1u));
    EXPECT_EQ(f.queue.cq_head(), total % depth);
    EXPECT_EQ(f.queue.sq_head(), f.queue.sq_tail());
    EXPECT_EQ(f.queue.outstanding(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Depths, Wraparound,
                         ::testing::Values(WrapCase{2, false}, WrapCase{3, false}, WrapCase{4, true},
                                           WrapCase{5, false}, WrapCase{16, true}, WrapCase{64, false},
                                           WrapCase{255, true}, WrapCase{256, false}, WrapCase{1024, false},
                                           WrapCase{1024, true}),
                         [](const auto& info) {
                             return std::to_string(info.param.depth) + (info.param.shuffle ? "_shuffled" : "_in_order");
                         });

TEST(Queue, LargestDepthWorks) {
    Fixture f(max_queue_depth);
    Recorder rec;
    for (int i = 0; i < 100; ++i) f.submit(rec);
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 100u);
    EXPECT_EQ(f.fake.cid_conflicts, 0u);
}

// Past 4096 entries a 16-bit CID would keep fewer than 4 generation bits (none
// at 65536): such rings are refused, with a message saying why.
TEST(Queue, DepthsThatLeaveFewerThanFourGenerationBitsAreRefused) {
    for (std::uint32_t depth : {4097u, 16385u, 32768u, 65536u}) {
        TestRings rings(depth);
        FakeController fake(rings.sq.data(), rings.cq.data(), depth, 1);
        auto q = QueuePair::create({1, depth, rings.sq.data(), rings.cq.data(), &fake, nullptr});
        ASSERT_FALSE(q.ok()) << depth;
        EXPECT_EQ(q.error().code(), EINVAL);
        EXPECT_NE(q.error().message().find("generation bits"), std::string::npos) << q.error();
    }
}

// At every depth a tag reused 15 times gets 16 different CIDs, so a late
// completion of any of its last 15 uses is caught as stale.
TEST(Queue, EveryDepthKeepsFourGenerationBits) {
    for (std::uint32_t depth : {2u, 3u, 17u, 1000u, 2049u, max_queue_depth}) {
        Fixture f(depth);
        Recorder rec;
        std::vector<std::uint16_t> uses;
        for (int use = 0; use < 16; ++use) {
            uses.push_back(f.submit(rec));  // LIFO free list: always tag 0
            f.queue.ring_sq();
            ASSERT_EQ(f.queue.poll(), 1u);
        }
        EXPECT_EQ(std::set<std::uint16_t>(uses.begin(), uses.end()).size(), 16u) << "depth " << depth;
        // The tag in use again; a completion for its second use is stale.
        f.fake.fault_next(Fault(FaultKind::hold));
        (void)f.submit(rec);
        f.queue.ring_sq();
        post_for(f, uses[1], f.queue.sq_head());
        EXPECT_EQ(f.queue.poll(), 0u) << "depth " << depth;
        EXPECT_EQ(f.queue.stats().stale_cid, 1u) << "depth " << depth;
        EXPECT_EQ(f.queue.outstanding(), 1u);
    }
}

TEST(Queue, SubmitFromCallback) {
    Fixture f(4);
    struct Chain {
        QueuePair* q;
        int remaining;
        int completions = 0;
        static void on_done(void* self, const Completion&) noexcept {
            auto* c = static_cast<Chain*>(self);
            ++c->completions;
            EXPECT_EQ(c->q->poll(), 0u);  // no nested polling
            if (--c->remaining > 0) {
                EXPECT_TRUE(c->q->submit(flush(1), &Chain::on_done, c).ok());
                c->q->ring_sq();
            }
        }
    } chain{&f.queue, 20, 0};
    ASSERT_TRUE(f.queue.submit(flush(1), &Chain::on_done, &chain).ok());
    f.queue.ring_sq();
    while (f.queue.poll() > 0) {
    }
    EXPECT_EQ(chain.completions, 20);
    EXPECT_EQ(f.queue.stats().device_errors(), 0u);
}

// ---- Faults: each is detected, counted and skipped -------------------------------

TEST(QueueFaults, UnknownCid) {
    std::vector<std::string> logged;
    Logger logger(LogLevel::debug, [&](LogLevel, std::string_view m) { logged.emplace_back(m); });
    Fixture f(8, 1, &logger);
    Recorder rec;
    f.fake.fault_next(Fault(FaultKind::unknown_cid, {}, 0x0005));  // tag 5 is free
    f.submit(rec);
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 1u);  // the real one still completes
    EXPECT_EQ(f.queue.stats().unknown_cid, 1u);
    ASSERT_EQ(logged.size(), 1u);
    EXPECT_NE(logged[0].find("not outstanding"), std::string::npos) << logged[0];
    // A CID whose tag is beyond the queue's slots is never used as an index.
    f.fake.fault_next(Fault(FaultKind::unknown_cid, {}, 0x0007));
    f.submit(rec);
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 1u);
    EXPECT_EQ(f.queue.stats().unknown_cid, 2u);
    EXPECT_EQ(rec.done.size(), 2u);
}

TEST(QueueFaults, DuplicateCompletion) {
    Fixture f(8);
    Recorder rec;
    f.fake.fault_next(Fault(FaultKind::duplicate));
    f.submit(rec);
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 1u);
    EXPECT_EQ(rec.done.size(), 1u);
    EXPECT_EQ(f.queue.stats().unknown_cid, 1u);
}

TEST(QueueFaults, StaleCidAfterReuse) {
    Fixture f(2);  // one slot, so the old CID's tag is in use again
    Recorder rec;
    const std::uint16_t old_cid = f.submit(rec);
    f.queue.ring_sq();
    ASSERT_EQ(f.queue.poll(), 1u);
    f.fake.fault_next(Fault(FaultKind::hold));
    const std::uint16_t new_cid = f.submit(rec);
    ASSERT_NE(new_cid, old_cid);
    f.queue.ring_sq();
    CompletionEntry stale;
    stale.cid = old_cid;
    stale.sq_id = 1;
    stale.sq_head = static_cast<std::uint16_t>(f.queue.sq_tail());
    f.fake.post_raw(stale);
    EXPECT_EQ(f.queue.poll(), 0u);
    EXPECT_EQ(f.queue.stats().stale_cid, 1u);
    EXPECT_EQ(f.queue.outstanding(), 1u);  // the new command is still waiting
    f.fake.release_held();
    EXPECT_EQ(f.queue.poll(), 1u);
    EXPECT_EQ(rec.done.back().cid, new_cid);
}

// An SQHD at or past the ring's end cannot be a head: the entry is
// malformed, so its CID is not trusted either. The command stays outstanding
// and completes, once, with its next well-formed completion.
TEST(QueueFaults, SqHeadOutsideQueue) {
    Fixture f(8);
    Recorder rec;
    f.fake.fault_next(Fault(FaultKind::sq_head_outside));
    const std::uint16_t cid = f.submit(rec);
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 0u);
    EXPECT_EQ(f.queue.stats().bad_sq_head, 1u);
    EXPECT_EQ(f.queue.sq_head(), 0u);  // not moved
    EXPECT_EQ(f.queue.outstanding(), 1u);
    EXPECT_TRUE(rec.done.empty());
    post_for(f, cid, 1);
    EXPECT_EQ(f.queue.poll(), 1u);
    EXPECT_EQ(f.queue.sq_head(), 1u);
    ASSERT_EQ(rec.done.size(), 1u);
    EXPECT_EQ(rec.done[0].cid, cid);
    EXPECT_EQ(f.queue.poll(), 0u);
    EXPECT_EQ(f.queue.stats().device_errors(), 1u);
}

TEST(QueueFaults, SqHeadPastTail) {
    Fixture f(8);
    Recorder rec;
    f.submit(rec);
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 1u);
    EXPECT_EQ(f.queue.sq_head(), 1u);
    // Faults apply to the next command the fake fetches.
    f.fake.fault_next(Fault(FaultKind::sq_head_past_tail));
    f.submit(rec);
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 1u);
    EXPECT_EQ(f.queue.stats().bad_sq_head, 1u);
    EXPECT_EQ(f.queue.sq_head(), 1u);  // SQHD 3 with tail 2 is refused
}

// A CQE naming a command written to the SQ but not yet rung: the device
// cannot have fetched it, so it is a device error and the command stays
// outstanding until its real completion.
TEST(QueueFaults, CompletionForUnrungCommandIsRefused) {
    Fixture f(8);
    Recorder rec;
    const std::uint16_t cid = f.submit(rec);
    post_for(f, cid, 0);
    EXPECT_EQ(f.queue.poll(), 0u);
    EXPECT_EQ(f.queue.stats().unrung_cid, 1u);
    EXPECT_EQ(f.queue.stats().device_errors(), 1u);
    EXPECT_TRUE(rec.done.empty());
    EXPECT_EQ(f.queue.outstanding(), 1u);
    f.queue.ring_sq();
    ASSERT_EQ(f.queue.poll(), 1u);
    EXPECT_EQ(rec.done[0].cid, cid);
    EXPECT_EQ(f.queue.stats().completed, 1u);
}

// Same with rung commands around it: only the unrung one is refused.
TEST(QueueFaults, UnrungAmongRungCommands) {
    Fixture f(8);
    Recorder rec;
    f.fake.fault_next(Fault(FaultKind::hold));
    const std::uint16_t rung = f.submit(rec);
    f.queue.ring_sq();
    const std::uint16_t unrung = f.submit(rec);
    post_for(f, unrung, 1);
    f.fake.release_held();
    EXPECT_EQ(f.queue.poll(), 1u);
    ASSERT_EQ(rec.done.size(), 1u);
    EXPECT_EQ(rec.done[0].cid, rung);
    EXPECT_EQ(f.queue.stats().unrung_cid, 1u);
    EXPECT_EQ(f.queue.outstanding(), 1u);
}

// Callbacks are noexcept in their type: a function that may throw does not
// even convert, so no exception can leave poll() with the queue half updated.
static_assert(!std::is_convertible_v<void (*)(void*, const Completion&), CompletionFn>);
static_assert(std::is_convertible_v<void (*)(void*, const Completion&) noexcept, CompletionFn>);

TEST(QueueFaults, SqHeadBeyondUnrungTailIsRefused) {
    Fixture f(8);
    Recorder rec;
    f.submit(rec);
    f.queue.ring_sq();
    f.submit(rec);  // written but not rung: the device cannot have fetched it
    CompletionEntry e;
    e.cid = 0x7fff;  // unknown too; only SQHD matters here
    e.sq_id = 1;
    e.sq_head = 2;
    f.fake.post_raw(e);
    f.queue.poll();
    EXPECT_EQ(f.queue.stats().bad_sq_head, 1u);
    EXPECT_EQ(f.queue.sq_head(), 1u);
}

TEST(QueueFaults, WrongSqid) {
    Fixture f(8);
    Recorder rec;
    f.fake.fault_next(Fault(FaultKind::wrong_sqid));
    f.submit(rec);
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 0u);
    EXPECT_EQ(f.queue.stats().bad_sq_id, 1u);
    EXPECT_EQ(f.queue.outstanding(), 1u);
}

TEST(QueueFaults, StatusErrorIsDeliveredNotCounted) {
    Fixture f(8);
    Recorder rec;
    CompletionStatus media;
    media.sct = sct::media_error;
    media.sc = sc::write_fault;
    f.fake.fault_next(Fault(FaultKind::status_error, media));
    f.submit(rec);
    f.queue.ring_sq();
    ASSERT_EQ(f.queue.poll(), 1u);
    EXPECT_EQ(status_name(rec.done[0].status), "Write Fault");
    EXPECT_EQ(f.queue.stats().error_status, 1u);
    EXPECT_EQ(f.queue.stats().device_errors(), 0u);
}

TEST(QueueFaults, TimeoutReportedOnceThenLateCompletion) {
    Fixture f(8);
    Recorder rec;
    const auto t0 = Clock::time_point{} + std::chrono::seconds(100);
    f.fake.fault_next(Fault(FaultKind::hold));
    const std::uint16_t slow = f.submit(rec, t0 + std::chrono::seconds(5));
    f.submit(rec, t0 + std::chrono::seconds(5));  // completes at once
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 1u);

    std::vector<TimedOutCommand> expired;
    auto collect = [&](const TimedOutCommand& t) { expired.push_back(t); };
    EXPECT_EQ(f.queue.scan_timeouts(t0 + std::chrono::seconds(4), collect), 0u);
    EXPECT_EQ(f.queue.scan_timeouts(t0 + std::chrono::seconds(5), collect), 1u);
    EXPECT_EQ(f.queue.scan_timeouts(t0 + std::chrono::seconds(9), collect), 0u);  // only once
    ASSERT_EQ(expired.size(), 1u);
    EXPECT_EQ(expired[0].cid, slow);
    EXPECT_EQ(expired[0].user_data, &rec);
    EXPECT_EQ(f.queue.stats().timeouts, 1u);
    EXPECT_EQ(f.queue.outstanding(), 1u);  // still owned by the device

    f.fake.release_held();
    EXPECT_EQ(f.queue.poll(), 1u);
    EXPECT_TRUE(rec.done.back().timed_out);
    EXPECT_EQ(f.queue.stats().late_completions, 1u);
}

TEST(QueueFaults, DroppedCommandTimesOut) {
    Fixture f(8);
    Recorder rec;
    const auto now = Clock::now();
    f.fake.fault_next(Fault(FaultKind::drop));
    f.submit(rec, now);
    f.submit(rec);  // no deadline: never reported
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 1u);
    EXPECT_EQ(f.queue.scan_timeouts(now + std::chrono::hours(1), nullptr), 1u);
}

TEST(QueueFaults, WrongPhaseLooksLikeNothingAndTimesOut) {
    Fixture f(8);
    Recorder rec;
    const auto now = Clock::now();
    f.fake.fault_next(Fault(FaultKind::wrong_phase));
    f.submit(rec, now);
    f.submit(rec, now);  // posted after it, in the next slot: stuck behind it
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(), 0u);
    EXPECT_EQ(f.queue.scan_timeouts(now, nullptr), 2u);
    // Reset path: the controller is assumed stopped; everything is cancelled.
    EXPECT_EQ(f.queue.cancel_all_and_reset(), 2u);
    ASSERT_EQ(rec.done.size(), 2u);
    EXPECT_TRUE(rec.done[0].cancelled);
    EXPECT_TRUE(rec.done[0].timed_out);
    EXPECT_EQ(status_name(rec.done[0].status), "Command Aborted due to SQ Deletion");
    EXPECT_EQ(f.queue.outstanding(), 0u);
    EXPECT_EQ(f.queue.stats().cancelled, 2u);
}

TEST(Queue, ResetQueueWorksWithFreshController) {
    Fixture f(4);
    Recorder rec;
    f.fake.fault_next(Fault(FaultKind::drop));
    f.submit(rec);
    f.submit(rec);
    f.queue.ring_sq();
    f.queue.poll();
    EXPECT_EQ(f.queue.cancel_all_and_reset(), 1u);
    EXPECT_EQ(f.queue.sq_tail(), 0u);
    EXPECT_EQ(f.queue.expected_phase(), 1u);
    // A controller reset also resets its queue state: model it with a new fake.
    FakeController fresh(f.rings.sq.data(), f.rings.cq.data(), 4, 1);
    auto q = QueuePair::create({1, 4, f.rings.sq.data(), f.rings.cq.data(), &fresh, nullptr}).value();
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(q.submit(flush(1), &Recorder::on_done, &rec).ok());
        q.ring_sq();
        ASSERT_EQ(q.poll(), 1u);
    }
    EXPECT_EQ(q.stats().device_errors(), 0u);
}

// ---- rebuild: the same rings after a controller reset that changed CAP ---------

TEST(Queue, RebuildTakesASmallerDepthAndNewDoorbells) {
    Fixture f(16);
    Recorder rec;
    for (int i = 0; i < 5; ++i) f.submit(rec);
    f.queue.ring_sq();
    ASSERT_EQ(f.queue.poll(), 5u);
    // The controller was reset; its new CAP.MQES allows 4 entries and the
    // doorbells moved (a new controller model answers there).
    FakeController moved(f.rings.sq.data(), f.rings.cq.data(), 4, 1);
    ASSERT_TRUE(f.queue.rebuild(4, &moved).ok());
    EXPECT_EQ(f.queue.depth(), 4u);
    EXPECT_EQ(f.queue.ring_entries(), 16u);
    EXPECT_EQ(f.queue.capacity(), 3u);
    for (int round = 0; round < 10; ++round) {
        for (int i = 0; i < 3; ++i) f.submit(rec);
        EXPECT_FALSE(f.queue.can_submit());
        f.queue.ring_sq();
        ASSERT_EQ(f.queue.poll(), 3u);
    }
    EXPECT_EQ(f.fake.sq_doorbells, 1u);  // the old doorbells were never written again
    EXPECT_EQ(moved.fetched, 30u);
    EXPECT_EQ(moved.bad_doorbells, 0u);
    EXPECT_EQ(moved.cid_conflicts, 0u);
    EXPECT_EQ(f.queue.stats().completed, 35u);  // counters survive
    EXPECT_EQ(f.queue.stats().device_errors(), 0u);
    // And back up to what the rings hold.
    ASSERT_TRUE(f.queue.rebuild(16, &f.fake).ok());
    EXPECT_EQ(f.queue.capacity(), 15u);
}

TEST(Queue, RebuildIsRefusedWithCommandsOutstandingOrBeyondTheRings) {
    Fixture f(8);
    Recorder rec;
    f.fake.fault_next(Fault(FaultKind::hold));
    f.submit(rec);
    f.queue.ring_sq();
    auto busy = f.queue.rebuild(8, &f.fake);
    ASSERT_FALSE(busy.ok());
    EXPECT_EQ(busy.error().code(), EBUSY);
    EXPECT_EQ(f.queue.outstanding(), 1u);
    EXPECT_EQ(f.queue.cancel_all_and_reset(), 1u);
    for (std::uint32_t depth : {0u, 1u, 9u, 4096u}) {
        auto r = f.queue.rebuild(depth, &f.fake);
        ASSERT_FALSE(r.ok()) << depth;
        EXPECT_EQ(r.error().code(), EINVAL);
    }
    EXPECT_EQ(f.queue.rebuild(8, nullptr).error().code(), EINVAL);
    EXPECT_EQ(f.queue.depth(), 8u);  // refusals change nothing
}

TEST(QueueFaults, LogIsRateLimited) {
    std::vector<std::string> logged;
    Logger logger(LogLevel::debug, [&](LogLevel, std::string_view m) { logged.emplace_back(m); });
    Fixture f(64, 1, &logger);
    for (int i = 0; i < 40; ++i) {
        CompletionEntry e;
        e.cid = 0x3e;  // tag 62: never handed out here
        e.sq_id = 1;
        f.fake.post_raw(e);
        f.queue.poll();
    }
    EXPECT_EQ(f.queue.stats().unknown_cid, 40u);
    EXPECT_EQ(logged.size(), 6u);  // at 1, 2, 4, 8, 16, 32
}

TEST(QueueFaults, PollBudgetBoundsWork) {
    Fixture f(16);
    Recorder rec;
    for (int i = 0; i < 10; ++i) f.submit(rec);
    f.queue.ring_sq();
    EXPECT_EQ(f.queue.poll(4), 4u);
    EXPECT_EQ(f.queue.poll(4), 4u);
    EXPECT_EQ(f.queue.poll(4), 2u);
    EXPECT_EQ(f.fake.cq_doorbells, 3u);
}

}  // namespace
}  // namespace dmakit::nvme
