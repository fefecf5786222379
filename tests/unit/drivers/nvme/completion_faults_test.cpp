// Completions a controller should never post, seen through Controller and
// IoQueue (NVMe 1.4 §4.6): a CID of a free slot or beyond the slots, a CID
// of an earlier use of a slot, another SQ's ID, an SQ head outside the
// ring, a stale phase tag, duplicates; and the status bits DNR and M.
// Each bad entry is counted and reported, completes nothing, indexes
// nothing out of bounds (the ASan build checks that), and the command it
// names keeps its buffer mapped until its own completion comes, once.
#include "controller_fixture.hpp"

#include <bit>
#include <cerrno>
#include <string>
#include <vector>

namespace dmakit::nvme {
namespace {

using testing::Callbacks;
using testing::ControllerTest;
using testing::Fault;
using testing::FaultKind;
using testing::FakeController;
using testing::Response;

// Tag bits of a CID on a queue with `capacity` slots (queue.hpp: generation << tag_bits | tag).
std::uint32_t tag_bits(std::uint32_t capacity) { return static_cast<std::uint32_t>(std::bit_width(capacity - 1)); }

// One way to spoil a well-formed completion of the command in flight on a
// queue of `depth` entries (a power of two here, so the all-ones tag lies
// beyond the depth - 1 slots).
struct Garbage {
    const char* name;
    void (*spoil)(CompletionEntry& e, std::uint32_t depth);
    std::uint64_t QueueStats::*counter;
};

CompletionStatus internal_error_dnr_more() {
    CompletionStatus s;
    s.sct = sct::generic;
    s.sc = sc::internal_error;
    s.do_not_retry = true;
    s.more = true;
    return s;
}

const Garbage garbage[] = {
    {"CidOfAFreeSlot", [](CompletionEntry& e, std::uint32_t) { e.cid = static_cast<std::uint16_t>(e.cid + 1); },
     &QueueStats::unknown_cid},
    {"CidBeyondTheSlots",
     [](CompletionEntry& e, std::uint32_t depth) {
         e.cid = static_cast<std::uint16_t>(e.cid | ((1u << tag_bits(depth - 1)) - 1));
     },
     &QueueStats::unknown_cid},
    {"CidFFFF", [](CompletionEntry& e, std::uint32_t) { e.cid = 0xffff; }, &QueueStats::unknown_cid},
    {"CidOfAnEarlierUse",
     [](CompletionEntry& e, std::uint32_t depth) {
         e.cid = static_cast<std::uint16_t>(e.cid ^ (1u << tag_bits(depth - 1)));
     },
     &QueueStats::stale_cid},
    {"AnotherSqId", [](CompletionEntry& e, std::uint32_t) { e.sq_id = static_cast<std::uint16_t>(e.sq_id + 1); },
     &QueueStats::bad_sq_id},
    {"SqIdFFFF", [](CompletionEntry& e, std::uint32_t) { e.sq_id = 0xffff; }, &QueueStats::bad_sq_id},
    {"SqHeadAtTheQueueSize", [](CompletionEntry& e, std::uint32_t depth) { e.sq_head = static_cast<std::uint16_t>(depth); },
     &QueueStats::bad_sq_head},
    {"SqHeadFFFF", [](CompletionEntry& e, std::uint32_t) { e.sq_head = 0xffff; }, &QueueStats::bad_sq_head},
    // An error with DNR and M on an entry that names no command: still garbage, not a status.
    {"FreeSlotCidWithDnrAndMore",
     [](CompletionEntry& e, std::uint32_t) {
         e.cid = static_cast<std::uint16_t>(e.cid + 1);
         e.status = internal_error_dnr_more().encode();
     },
     &QueueStats::unknown_cid},
};

class GarbageCompletion : public ControllerTest, public ::testing::WithParamInterface<Garbage> {};

TEST_P(GarbageCompletion, OnAnIoQueueCompletesNothingAndTheRealOneCompletesOnce) {
    const Garbage& g = GetParam();
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(create_queue_that_holds_io(*c));
    ASSERT_EQ(queue_->depth(), 16u);
    Callbacks callbacks;
    auto cid = queue_->read_host(1, 0, 8, buffer_.data(), &Callbacks::on_done, &callbacks);
    ASSERT_TRUE(cid.ok()) << cid.error();
    queue_->ring();
    ASSERT_EQ(bus_->io_commands.size(), 1u);
    const std::uint64_t prp1 = bus_->io_commands[0].prp1;
    FakeController* device = bus_->io_queue(queue_->qid());
    ASSERT_NE(device, nullptr);

    CompletionEntry bad = device->completion_for(*cid);
    g.spoil(bad, queue_->depth());
    device->post_raw(bad);
    EXPECT_EQ(queue_->poll(), 0u);
    EXPECT_TRUE(callbacks.done.empty());
    EXPECT_EQ(queue_->outstanding(), 1u);
    EXPECT_EQ(queue_->stats().*g.counter, 1u);
    EXPECT_EQ(queue_->stats().device_errors(), 1u);
    EXPECT_EQ(queue_->stats().error_status, 0u);
    EXPECT_TRUE(logged("entry ignored"));
    // Still the device's command: its buffer stays mapped for it.
    EXPECT_TRUE(device_can_write_at(prp1));

    device->release_held();
    EXPECT_EQ(queue_->poll(), 1u);
    ASSERT_EQ(callbacks.done.size(), 1u);
    EXPECT_EQ(callbacks.done[0].cid, *cid);
    EXPECT_TRUE(callbacks.done[0].ok());
    EXPECT_EQ(queue_->poll(), 0u);
    EXPECT_EQ(callbacks.done.size(), 1u);
    EXPECT_EQ(queue_->outstanding(), 0u);
    EXPECT_EQ(queue_->stats().device_errors(), 1u);
    // Completed: unmapped before the callback ran.
    EXPECT_FALSE(device_can_write_at(prp1));
}

TEST_P(GarbageCompletion, OnTheAdminQueueCompletesNothingAndTheRealOneCompletesOnce) {
    const Garbage& g = GetParam();
    auto c = open_ok();
    ASSERT_TRUE(c);
    const QueueStats before = c->admin_stats();
    // The garbage lands in the admin CQ just before the command's own completion.
    bus_->on_admin = [&](const SubmissionEntry& e) -> std::optional<Response> {
        if (e.opcode() != admin_opcode::get_features) return std::nullopt;
        CompletionEntry bad = bus_->admin_queue()->completion_for(e.cid());
        g.spoil(bad, options_.admin_queue_depth);
        bad.dw0 = 0xdead;
        bus_->admin_queue()->post_raw(bad);
        return Response{{}, 0x1234};
    };
    auto r = c->admin(get_features(feature::number_of_queues));
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_TRUE(r->status.ok());
    EXPECT_EQ(r->dw0, 0x1234u);  // its own completion's, never the garbage's
    const QueueStats after = c->admin_stats();
    EXPECT_EQ(after.*g.counter - before.*g.counter, 1u);
    EXPECT_EQ(after.device_errors() - before.device_errors(), 1u);
    EXPECT_EQ(after.completed - before.completed, 1u);
    EXPECT_EQ(after.error_status, before.error_status);
    // The admin queue goes on working.
    bus_->on_admin = nullptr;
    EXPECT_TRUE(c->smart_log().ok());
}

INSTANTIATE_TEST_SUITE_P(Entries, GarbageCompletion, ::testing::ValuesIn(garbage),
                         [](const auto& info) { return std::string(info.param.name); });

// An entry written with the phase of the previous pass reads as a slot not
// yet posted: nothing to count (the host cannot tell it from an empty
// slot), nothing completes, and the command completes once when its entry is
// written with the right phase.
TEST_F(ControllerTest, CompletionWithTheStalePhaseIsNotSeenUntilItsEntryIsWrittenRight) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(create_queue_that_holds_io(*c));
    Callbacks callbacks;
    auto cid = queue_->read_host(1, 0, 8, buffer_.data(), &Callbacks::on_done, &callbacks);
    ASSERT_TRUE(cid.ok());
    queue_->ring();
    const std::uint64_t prp1 = bus_->io_commands.back().prp1;
    FakeController* device = bus_->io_queue(queue_->qid());
    device->post_stale_phase(device->completion_for(*cid));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(queue_->poll(), 0u);
    EXPECT_TRUE(callbacks.done.empty());
    EXPECT_EQ(queue_->outstanding(), 1u);
    EXPECT_EQ(queue_->stats().device_errors(), 0u);
    EXPECT_TRUE(device_can_write_at(prp1));
    device->release_held();  // the same slot, now with the current phase
    EXPECT_EQ(queue_->poll(), 1u);
    EXPECT_EQ(queue_->poll(), 0u);
    ASSERT_EQ(callbacks.done.size(), 1u);
    EXPECT_EQ(callbacks.done[0].cid, *cid);
    EXPECT_FALSE(device_can_write_at(prp1));
}

// ---- DNR and M (§4.6.1) ----------------------------------------------------------------

TEST_F(ControllerTest, ErrorWithDnrAndMoreCompletesOnceAndSaysSo) {
    ASSERT_NO_FATAL_FAILURE(open_with_queue());
    CompletionStatus failed;
    failed.sct = sct::media_error;
    failed.sc = sc::unrecovered_read_error;
    failed.do_not_retry = true;
    failed.more = true;
    bus_->io_queue(queue_->qid())->fault_next(Fault(FaultKind::status_error, failed));
    auto s = queue_->read_host_sync(1, 0, 8, buffer_.data());
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), EIO);
    EXPECT_NE(s.error().message().find("Unrecovered Read Error"), std::string::npos) << s.error();
    EXPECT_NE(s.error().message().find("do not retry"), std::string::npos) << s.error();
    EXPECT_NE(s.error().message().find("Error Information log"), std::string::npos) << s.error();
    EXPECT_EQ(bus_->io_commands.size(), 1u);  // not retried
    EXPECT_EQ(queue_->stats().completed, 1u);
    EXPECT_EQ(queue_->stats().error_status, 1u);
    EXPECT_EQ(queue_->stats().device_errors(), 0u);
    EXPECT_EQ(queue_->outstanding(), 0u);
    EXPECT_FALSE(device_can_write_at(bus_->io_commands[0].prp1));
}

// SCT/SC say whether a command failed; DNR and M on a success change nothing
// (Linux's nvme_error_status masks them off the same way).
TEST_F(ControllerTest, SuccessWithDnrAndMoreIsASuccess) {
    ASSERT_NO_FATAL_FAILURE(open_with_queue());
    CompletionStatus odd;
    odd.do_not_retry = true;
    odd.more = true;
    bus_->on_io = [odd](const SubmissionEntry&) { return Response{odd}; };
    auto buf = device_->alloc_coherent(4096);
    ASSERT_TRUE(buf.ok());
    const DmaSegment seg{buf->dma().value(), 4096};
    auto r = queue_->read_sync_completion(1, 0, 8, {&seg, 1});
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_TRUE(r->ok());
    EXPECT_TRUE(r->status.do_not_retry);
    EXPECT_TRUE(r->status.more);
    EXPECT_TRUE(queue_->read_host_sync(1, 0, 8, buffer_.data()).ok());
    EXPECT_EQ(queue_->stats().error_status, 0u);
}

// ---- Duplicates ---------------------------------------------------------------------------

TEST_F(ControllerTest, DuplicateCompletionCompletesOnce) {
    ASSERT_NO_FATAL_FAILURE(open_with_queue());
    bus_->io_queue(queue_->qid())->fault_next(Fault(FaultKind::duplicate));
    Callbacks callbacks;
    auto cid = queue_->read_host(1, 0, 8, buffer_.data(), &Callbacks::on_done, &callbacks);
    ASSERT_TRUE(cid.ok());
    EXPECT_EQ(queue_->poll(), 1u);
    EXPECT_EQ(queue_->poll(), 0u);
    ASSERT_EQ(callbacks.done.size(), 1u);
    EXPECT_EQ(callbacks.done[0].cid, *cid);
    EXPECT_EQ(queue_->stats().unknown_cid, 1u);
    EXPECT_EQ(queue_->stats().completed, 1u);
}

// One slot (depth 2): command B reuses A's slot with the next generation.
// A's completion posted again is stale: B is not completed by it and its
// buffer stays mapped until B's own completion.
TEST_F(ControllerTest, DuplicateAfterTheSlotWasReusedLeavesTheNewCommandAlone) {
    ASSERT_NO_FATAL_FAILURE(open_with_queue(2));
    ASSERT_EQ(queue_->capacity(), 1u);
    Callbacks callbacks;
    std::vector<std::byte> second(4096);
    auto a = queue_->read_host(1, 0, 8, buffer_.data(), &Callbacks::on_done, &callbacks);
    ASSERT_TRUE(a.ok());
    ASSERT_EQ(queue_->poll(), 1u);
    bus_->on_io = [](const SubmissionEntry&) { return Response{{}, 0, false, true}; };
    auto b = queue_->read_host(1, 8, 8, second.data(), &Callbacks::on_done, &callbacks);
    ASSERT_TRUE(b.ok());
    ASSERT_NE(*a, *b);
    queue_->ring();
    const std::uint64_t b_prp1 = bus_->io_commands.back().prp1;
    FakeController* device = bus_->io_queue(queue_->qid());
    device->post_raw(device->completion_for(*a));
    EXPECT_EQ(queue_->poll(), 0u);
    EXPECT_EQ(queue_->stats().stale_cid, 1u);
    EXPECT_EQ(callbacks.done.size(), 1u);
    EXPECT_EQ(queue_->outstanding(), 1u);
    EXPECT_TRUE(device_can_write_at(b_prp1));
    device->release_held();
    EXPECT_EQ(queue_->poll(), 1u);
    ASSERT_EQ(callbacks.done.size(), 2u);
    EXPECT_EQ(callbacks.done[1].cid, *b);
    EXPECT_FALSE(device_can_write_at(b_prp1));
}

// The duplicate sits right behind the original in the CQ, and the
// original's callback has already reused the slot (freed tags are reused
// last-in first-out) by the time the same poll reaches it.
TEST_F(ControllerTest, DuplicateInTheSamePollAfterTheCallbackReusedTheSlot) {
    ASSERT_NO_FATAL_FAILURE(open_with_queue());
    struct Resubmit {
        IoQueue* queue;
        std::byte* buffer;
        std::vector<IoCompletion> done;
        std::uint16_t second = 0;
        static void on_done(void* self, const IoCompletion& completion) noexcept {
            auto* r = static_cast<Resubmit*>(self);
            r->done.push_back(completion);
            if (r->done.size() == 1) {
                auto cid = r->queue->read_host(1, 8, 8, r->buffer, &Resubmit::on_done, r);
                if (cid.ok()) r->second = *cid;
            }
        }
    };
    std::vector<std::byte> second(4096);
    Resubmit resubmit{queue_, second.data(), {}};
    bus_->on_io = [commands = 0](const SubmissionEntry&) mutable { return Response{{}, 0, false, ++commands > 1}; };
    FakeController* device = bus_->io_queue(queue_->qid());
    device->fault_next(Fault(FaultKind::duplicate));
    auto a = queue_->read_host(1, 0, 8, buffer_.data(), &Resubmit::on_done, &resubmit);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(queue_->poll(), 1u);
    ASSERT_EQ(resubmit.done.size(), 1u);
    ASSERT_NE(resubmit.second, 0u);
    const std::uint32_t tag_mask = (1u << tag_bits(queue_->capacity())) - 1;
    ASSERT_EQ(resubmit.second & tag_mask, *a & tag_mask);  // the same slot, another generation
    EXPECT_EQ(queue_->stats().stale_cid, 1u);
    EXPECT_EQ(queue_->outstanding(), 1u);
    queue_->poll();  // rings B's doorbell; the device holds it
    ASSERT_EQ(bus_->io_commands.size(), 2u);
    EXPECT_TRUE(device_can_write_at(bus_->io_commands[1].prp1));
    EXPECT_EQ(resubmit.done.size(), 1u);
    device->release_held();
    EXPECT_EQ(queue_->poll(), 1u);
    ASSERT_EQ(resubmit.done.size(), 2u);
    EXPECT_EQ(resubmit.done[1].cid, resubmit.second);
    EXPECT_FALSE(device_can_write_at(bus_->io_commands[1].prp1));
}

TEST_F(ControllerTest, DuplicateAdminCompletionDoesNotAnswerTheNextCommand) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    const QueueStats before = c->admin_stats();
    std::uint32_t answers = 0;
    bus_->on_admin = [&](const SubmissionEntry& e) -> std::optional<Response> {
        if (e.opcode() != admin_opcode::get_features) return std::nullopt;
        return Response{{}, ++answers};
    };
    bus_->admin_queue()->fault_next(Fault(FaultKind::duplicate));
    auto first = c->admin(get_features(feature::number_of_queues));
    auto next = c->admin(get_features(feature::number_of_queues));
    ASSERT_TRUE(first.ok() && next.ok());
    EXPECT_EQ(first->dw0, 1u);
    EXPECT_EQ(next->dw0, 2u);
    const QueueStats after = c->admin_stats();
    EXPECT_EQ(after.unknown_cid + after.stale_cid - before.unknown_cid - before.stale_cid, 1u);
    EXPECT_EQ(after.completed - before.completed, 2u);
    bus_->on_admin = nullptr;  // it refers to this body's locals
}

}  // namespace
}  // namespace dmakit::nvme
