// Controller against a controller model that fails: CSTS.CFS at enable and
// with commands in flight (NVMe 1.4 §3.1.6, §10.5), CAP changing between
// resets (§3.1.1), admin commands refused or never completed (§5). Each ends
// in a clear error within its timeout, and no memory the device may still
// write is freed: the strict IOMMU fixture unmaps a coherent buffer when it
// is freed, so "freed too early" shows as a device write that faults.
#include "controller_fixture.hpp"

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

namespace dmakit::nvme {
namespace {

using namespace std::chrono_literals;
using testing::Callbacks;
using testing::ControllerTest;
using testing::error_code;
using testing::never_completes;
using testing::refused;
using testing::Response;
using testing::StrictControllerTest;

using Stopwatch = std::chrono::steady_clock;

bool has(const Error& e, const std::string& text) { return e.message().find(text) != std::string::npos; }

// The latest admin command with `opcode` the model saw.
const SubmissionEntry* last_admin(const testing::FakeNvmeBus& bus, std::uint8_t opcode) {
    for (auto it = bus.admin_commands.rbegin(); it != bus.admin_commands.rend(); ++it) {
        if (it->opcode() == opcode) return &*it;
    }
    return nullptr;
}

// ---- CSTS.CFS ----------------------------------------------------------------------------

TEST_F(ControllerTest, FatalStatusAtEnableFailsOpenAtOnceSayingWhatToDo) {
    bus_->fatal_on_enable = true;
    const auto t0 = Stopwatch::now();
    auto c = open();
    const auto took = Stopwatch::now() - t0;
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(error_code(c), EIO);
    EXPECT_TRUE(has(c.error(), "enabling the controller")) << c.error();
    EXPECT_TRUE(has(c.error(), "CSTS.CFS")) << c.error();
    EXPECT_TRUE(has(c.error(), "reset the controller")) << c.error();
    EXPECT_TRUE(has(c.error(), "check the device")) << c.error();
    EXPECT_EQ(bus_->enables, 1u);
    // Not the CAP.TO wait (500 ms) for a RDY that will not come.
    EXPECT_LT(took, 400ms);
    EXPECT_TRUE(bus_->admin_opcodes.empty());
    // The fault passes with the reset open() starts with.
    bus_->fatal_on_enable = false;
    EXPECT_TRUE(open_ok());
}

// The device takes a read, then reports CFS. The sync read ends with EIO
// naming CFS long before io_timeout + admin_timeout (no Abort is sent to a
// controller that processes nothing), its buffer stays mapped, admin
// commands fail at once, and reset() brings everything back.
TEST_F(ControllerTest, FatalStatusWithSyncIoInFlightEndsTheWaitAndResetRecovers) {
    options_.admin_timeout = 5000ms;  // waiting for an Abort would show
    ASSERT_NO_FATAL_FAILURE(open_with_queue());
    bus_->on_io = [this](const SubmissionEntry&) {
        bus_->fatal = true;
        return Response{{}, 0, false, true};
    };
    const auto t0 = Stopwatch::now();
    auto s = queue_->read_host_sync(1, 0, 8, buffer_.data());
    const auto took = Stopwatch::now() - t0;
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(error_code(s), EIO);
    EXPECT_TRUE(has(s.error(), "CSTS.CFS")) << s.error();
    EXPECT_TRUE(has(s.error(), "quarantined")) << s.error();
    EXPECT_TRUE(has(s.error(), "Controller::reset()")) << s.error();
    EXPECT_GE(took, options_.io_timeout);
    EXPECT_LT(took, 1000ms);
    EXPECT_EQ(queue_->io_stats().aborts_sent, 0u);
    EXPECT_EQ(queue_->quarantined(), 1u);
    EXPECT_TRUE(controller_->failed());
    const std::uint64_t prp1 = bus_->io_commands.back().prp1;
    EXPECT_TRUE(device_can_write_at(prp1));

    const auto t1 = Stopwatch::now();
    auto smart = controller_->smart_log();
    ASSERT_FALSE(smart.ok());
    EXPECT_EQ(error_code(smart), EIO);
    EXPECT_TRUE(has(smart.error(), "CSTS.CFS")) << smart.error();
    EXPECT_LT(Stopwatch::now() - t1, 1000ms);

    watch_at_disable(prp1);
    bus_->on_io = nullptr;
    ASSERT_TRUE(controller_->reset().ok());  // CC.EN=0 clears this fault
    EXPECT_TRUE(writable_at_disable_);
    EXPECT_FALSE(controller_->failed());
    EXPECT_EQ(queue_->quarantined(), 0u);
    EXPECT_FALSE(device_can_write_at(prp1));
    EXPECT_TRUE(queue_->read_host_sync(1, 0, 8, buffer_.data()).ok());
    EXPECT_TRUE(controller_->smart_log().ok());
}

TEST_F(ControllerTest, FatalStatusThatPersistsFailsResetClearlyUntilItClears) {
    ASSERT_NO_FATAL_FAILURE(open_with_queue());
    bus_->fatal = true;
    bus_->fatal_persists = true;
    auto s = controller_->reset();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(error_code(s), EIO);
    EXPECT_TRUE(has(s.error(), "CSTS.CFS")) << s.error();
    EXPECT_TRUE(has(s.error(), "check the device")) << s.error();
    // Nothing is sent to it meanwhile: I/O and admin commands are refused.
    const std::size_t sent = bus_->admin_commands.size();
    auto io = queue_->read_host_sync(1, 0, 8, buffer_.data());
    ASSERT_FALSE(io.ok());
    EXPECT_EQ(error_code(io), EIO);
    EXPECT_TRUE(has(io.error(), "not on the controller")) << io.error();
    EXPECT_FALSE(queue_->active());
    EXPECT_FALSE(controller_->smart_log().ok());
    EXPECT_EQ(bus_->admin_commands.size(), sent);
    EXPECT_EQ(bus_->doorbells_while_fatal, 0u);

    bus_->fatal_persists = false;
    ASSERT_TRUE(controller_->reset().ok());
    EXPECT_TRUE(queue_->active());
    EXPECT_TRUE(queue_->read_host_sync(1, 0, 8, buffer_.data()).ok());
}

TEST_F(ControllerTest, FatalStatusOnAnAsyncTimeoutIsReportedWithoutAnAbort) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(create_queue_that_holds_io(*c));
    Callbacks callbacks;
    ASSERT_TRUE(queue_->read_host(1, 0, 8, buffer_.data(), &Callbacks::on_done, &callbacks).ok());
    queue_->ring();
    bus_->fatal = true;
    std::this_thread::sleep_for(options_.io_timeout + 5ms);
    EXPECT_EQ(queue_->check_timeouts(), 1u);
    EXPECT_EQ(queue_->io_stats().aborts_sent, 0u);
    EXPECT_TRUE(logged("no Abort sent")) << (log_.lines.empty() ? "" : log_.lines.back());
    EXPECT_TRUE(logged("CSTS.CFS"));
    EXPECT_TRUE(callbacks.done.empty());
    EXPECT_EQ(queue_->outstanding(), 1u);
    EXPECT_TRUE(c->reset().ok());
    ASSERT_EQ(callbacks.done.size(), 1u);
    EXPECT_TRUE(callbacks.done[0].cancelled);
}

// ---- CAP read again at reset (§3.1.1) ------------------------------------------------------

TEST_F(ControllerTest, SmallerMqesAfterResetShrinksTheQueueAndBackAgain) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(create_queue_that_holds_io(*c));
    ASSERT_EQ(queue_->depth(), 16u);
    bus_->cap = (bus_->cap & ~0xffffull) | 7;  // MQES 7: 8 entries
    ASSERT_TRUE(c->reset().ok());
    EXPECT_EQ(c->max_io_queue_depth(), 8u);
    EXPECT_EQ(queue_->depth(), 8u);
    EXPECT_EQ(queue_->capacity(), 7u);
    for (std::uint8_t opcode : {admin_opcode::create_io_cq, admin_opcode::create_io_sq}) {
        const SubmissionEntry* create = last_admin(*bus_, opcode);
        ASSERT_NE(create, nullptr);
        EXPECT_EQ(create->cdw10 >> 16, 7u);  // QSIZE, 0-based
    }
    // Seven in flight fill it; the device sees each CID once.
    Callbacks callbacks;
    for (int i = 0; i < 7; ++i) {
        ASSERT_TRUE(queue_->read_host(1, 0, 8, buffer_.data(), &Callbacks::on_done, &callbacks).ok()) << i;
    }
    EXPECT_FALSE(queue_->can_submit());
    EXPECT_EQ(error_code(queue_->read_host(1, 0, 8, buffer_.data(), &Callbacks::on_done, &callbacks)), EAGAIN);
    queue_->ring();
    bus_->io_queue(queue_->qid())->release_held();
    EXPECT_EQ(queue_->poll(), 7u);
    EXPECT_EQ(bus_->io_queue(queue_->qid())->cid_conflicts, 0u);
    EXPECT_EQ(queue_->stats().device_errors(), 0u);

    bus_->cap = testing::FakeNvmeBus::default_cap;
    ASSERT_TRUE(c->reset().ok());
    EXPECT_EQ(queue_->depth(), 16u);  // what its rings hold
}

TEST_F(ControllerTest, NewDoorbellStrideAfterResetIsUsed) {
    ASSERT_NO_FATAL_FAILURE(open_with_queue());
    bus_->cap |= std::uint64_t{2} << 32;  // DSTRD 2: 16-byte stride
    ASSERT_TRUE(controller_->reset().ok());
    EXPECT_EQ(controller_->cap().doorbell_stride_bytes(), 16u);
    EXPECT_TRUE(queue_->read_host_sync(1, 0, 8, buffer_.data()).ok());
    EXPECT_TRUE(controller_->smart_log().ok());
    auto second = controller_->create_io_queue();
    ASSERT_TRUE(second.ok());
    EXPECT_TRUE((*second)->read_host_sync(1, 0, 8, buffer_.data()).ok());
    EXPECT_EQ(bus_->doorbells_misplaced, 0u);
    EXPECT_EQ(bus_->doorbells_to_no_queue, 0u);
}

TEST_F(ControllerTest, NewReadyTimeoutAfterResetIsUsed) {
    bus_->cap = (bus_->cap & ~(0xffull << 24)) | (4ull << 24);  // TO 4: 2 s
    auto c = open_ok();
    ASSERT_TRUE(c);
    bus_->cap = (bus_->cap & ~(0xffull << 24)) | (1ull << 24);  // TO 1: 500 ms
    bus_->hang_on_enable = true;
    const auto t0 = Stopwatch::now();
    auto s = c->reset();
    const auto took = Stopwatch::now() - t0;
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(error_code(s), ETIMEDOUT);
    EXPECT_TRUE(has(s.error(), "CAP.TO 500 ms")) << s.error();
    EXPECT_GE(took, 500ms);
    EXPECT_LT(took, 1500ms);  // the old TO would take more than 2 s
    bus_->hang_on_enable = false;
    ASSERT_TRUE(c->reset().ok());
    EXPECT_TRUE(c->smart_log().ok());
}

// A CAP the driver cannot use after a reset is refused before the controller
// is enabled again; it stays disabled, refuses admin commands and I/O, and a
// later reset with a usable CAP brings everything back.
struct BadCap {
    const char* name;
    std::uint64_t (*change)(std::uint64_t cap);
    int code;
    const char* says;
};

const BadCap bad_caps[] = {
    {"PageSizeAboveTheHosts", [](std::uint64_t cap) -> std::uint64_t { return cap | (1ull << 48) | (1ull << 52); }, ENOTSUP,
     "host page size 4096"},
    {"NoNvmCommandSet", [](std::uint64_t cap) -> std::uint64_t { return (cap & ~(0xffull << 37)) | (0x80ull << 37); }, ENOTSUP,
     "NVM command set"},
    {"MqesZero", [](std::uint64_t cap) -> std::uint64_t { return cap & ~0xffffull; }, EPROTO, "CAP.MQES=0"},
    {"ReadyTimeoutZero", [](std::uint64_t cap) -> std::uint64_t { return cap & ~(0xffull << 24); }, EPROTO, "CAP.TO=0"},
    {"StridePutsDoorbellsOutsideBar0", [](std::uint64_t cap) -> std::uint64_t { return cap | (15ull << 32); }, ERANGE, "DSTRD=15"},
    {"AllOnes", [](std::uint64_t) -> std::uint64_t { return ~std::uint64_t{0}; }, ENODEV, "all ones"},
};

class CapAfterReset : public ControllerTest, public ::testing::WithParamInterface<BadCap> {};

TEST_P(CapAfterReset, UnusableCapIsRefusedAndTheControllerStaysDown) {
    const BadCap& bad = GetParam();
    ASSERT_NO_FATAL_FAILURE(open_with_queue());
    const std::uint64_t good = bus_->cap;
    const unsigned enables = bus_->enables;
    bus_->cap = bad.change(good);
    auto s = controller_->reset();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(error_code(s), bad.code) << s.error();
    EXPECT_TRUE(has(s.error(), "after the reset")) << s.error();
    EXPECT_TRUE(has(s.error(), bad.says)) << s.error();
    EXPECT_EQ(bus_->enables, enables);
    EXPECT_FALSE(bus_->ready());
    EXPECT_EQ(controller_->cap().raw, good);  // only an accepted CAP is kept
    const std::size_t sent = bus_->admin_commands.size();
    EXPECT_EQ(error_code(controller_->smart_log()), EIO);
    EXPECT_EQ(error_code(controller_->create_io_queue()), EIO);
    EXPECT_EQ(error_code(queue_->read_host_sync(1, 0, 8, buffer_.data())), EIO);
    EXPECT_EQ(bus_->admin_commands.size(), sent);
    EXPECT_EQ(bus_->io_commands.size(), 0u);

    bus_->cap = good;
    ASSERT_TRUE(controller_->reset().ok());
    EXPECT_TRUE(queue_->read_host_sync(1, 0, 8, buffer_.data()).ok());
}

INSTANTIATE_TEST_SUITE_P(Values, CapAfterReset, ::testing::ValuesIn(bad_caps),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(ControllerTest, ResetGrantingFewerQueuesLeavesTheOthersInactive) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    auto first = c->create_io_queue();
    auto second = c->create_io_queue();
    ASSERT_TRUE(first.ok() && second.ok());
    bus_->queues_granted = 1;
    auto s = c->reset();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(error_code(s), EIO);
    EXPECT_TRUE(has(s.error(), "I/O queue 2: the controller now grants 1")) << s.error();
    EXPECT_TRUE(has(s.error(), "delete_io_queue")) << s.error();
    EXPECT_TRUE((*first)->active());
    EXPECT_TRUE((*first)->read_host_sync(1, 0, 8, buffer_.data()).ok());
    EXPECT_FALSE((*second)->active());
    EXPECT_EQ(error_code((*second)->read_host_sync(1, 0, 8, buffer_.data())), EIO);
    // Not on the controller: deleting it sends nothing.
    const std::size_t sent = bus_->admin_commands.size();
    EXPECT_TRUE(c->delete_io_queue(*second).ok());
    EXPECT_EQ(bus_->admin_commands.size(), sent);
    EXPECT_EQ(c->io_queue_count(), 1u);
    EXPECT_TRUE(c->smart_log().ok());
}

// After a failed delete stopped the controller, the other queues refuse I/O
// at once instead of ringing doorbells of a disabled controller until a timeout.
TEST_F(ControllerTest, OtherQueuesRefuseIoOnceTheControllerWasStopped) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    auto doomed = c->create_io_queue();
    auto other = c->create_io_queue();
    ASSERT_TRUE(doomed.ok() && other.ok());
    bus_->on_delete = [](const SubmissionEntry&) { return Response{{sc::internal_error, sct::generic}}; };
    ASSERT_FALSE(c->delete_io_queue(*doomed).ok());
    const auto t0 = Stopwatch::now();
    auto s = (*other)->read_host_sync(1, 0, 8, buffer_.data());
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(error_code(s), EIO);
    EXPECT_TRUE(has(s.error(), "Controller::reset()")) << s.error();
    EXPECT_LT(Stopwatch::now() - t0, options_.io_timeout);
    EXPECT_EQ((*other)->quarantined(), 0u);
    bus_->on_delete = nullptr;
    ASSERT_TRUE(c->reset().ok());
    EXPECT_TRUE((*other)->read_host_sync(1, 0, 8, buffer_.data()).ok());
}

// ---- Admin commands refused or never completed ----------------------------------------------

// An admin command of the bring-up refused: open() fails naming the command
// and the status, with the errno the status maps to.
struct RefusalAtOpen {
    const char* name;
    std::uint8_t opcode;
    std::uint8_t sct;
    std::uint8_t sc;
    int code;
    const char* says;
};

const RefusalAtOpen refusals_at_open[] = {
    {"IdentifyControllerInvalidField", admin_opcode::identify, sct::generic, sc::invalid_field, EINVAL,
     "Identify Controller: Invalid Field in Command"},
    {"IdentifyControllerInternalError", admin_opcode::identify, sct::generic, sc::internal_error, EIO,
     "Identify Controller: Internal Error"},
    {"NumberOfQueuesInvalidField", admin_opcode::set_features, sct::generic, sc::invalid_field, EINVAL,
     "Set Features Number of Queues: Invalid Field in Command"},
};

class RefusedAtOpen : public ControllerTest, public ::testing::WithParamInterface<RefusalAtOpen> {};

TEST_P(RefusedAtOpen, OpenFailsNamingTheCommandAndStatus) {
    const RefusalAtOpen& r = GetParam();
    answer_admin(r.opcode, refused(r.sct, r.sc));
    auto c = open();
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(error_code(c), r.code);
    EXPECT_TRUE(has(c.error(), r.says)) << c.error();
    EXPECT_FALSE(bus_->ready());  // left disabled
}

INSTANTIATE_TEST_SUITE_P(Commands, RefusedAtOpen, ::testing::ValuesIn(refusals_at_open),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(StrictControllerTest, IdentifyThatNeverCompletesFailsOpenInTimeAndItsPageOutlivesTheDevice) {
    answer_admin(admin_opcode::identify, never_completes());
    bus_->on_disable = [this] {
        if (const SubmissionEntry* id = last_admin(*bus_, admin_opcode::identify)) {
            writable_at_disable_ = device_can_write_at(id->prp1);  // its late DMA, as it is told to stop
        }
    };
    const auto t0 = Stopwatch::now();
    auto c = open();
    const auto took = Stopwatch::now() - t0;
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(error_code(c), ETIMEDOUT);
    EXPECT_TRUE(has(c.error(), "Identify Controller (opcode 0x6")) << c.error();
    EXPECT_TRUE(has(c.error(), "timed out after 200 ms")) << c.error();
    EXPECT_GE(took, options_.admin_timeout);
    EXPECT_LT(took, options_.admin_timeout + 800ms);
    EXPECT_TRUE(writable_at_disable_);
    EXPECT_FALSE(bus_->ready());
    // Freed once the controller was disabled.
    EXPECT_FALSE(device_can_write_at(last_admin(*bus_, admin_opcode::identify)->prp1));
}

// The same with a controller that does not stop: the identify page, the
// admin rings are leaked on purpose, still mapped.
TEST_F(StrictControllerTest, IdentifyTimeoutOnAControllerThatWillNotStopLeaksItsPage) {
    answer_admin(admin_opcode::identify, never_completes());
    bus_->hang_on_disable = true;
    bus_->function_reset_fails = true;
    auto c = open();
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(error_code(c), ETIMEDOUT);
    EXPECT_TRUE(device_can_write_at(last_admin(*bus_, admin_opcode::identify)->prp1));
    EXPECT_TRUE(logged("leaked deliberately"));
}

TEST_F(ControllerTest, IdentifyNamespaceRefusedSkipsOnlyThatNamespace) {
    bus_->namespace_count = 2;
    bus_->on_admin = [](const SubmissionEntry& e) -> std::optional<Response> {
        if (e.opcode() == admin_opcode::identify && (e.cdw10 & 0xff) == 0 && e.nsid == 1) {
            return refused(sct::generic, sc::namespace_not_ready);
        }
        return std::nullopt;
    };
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_EQ(c->namespaces().size(), 1u);
    EXPECT_EQ(c->namespaces()[0].nsid, 2u);
    EXPECT_TRUE(logged("namespace 1 skipped"));
    EXPECT_TRUE(logged("Namespace Not Ready"));
}

TEST_F(ControllerTest, FewerQueuesGrantedThanAskedBoundCreation) {
    options_.max_io_queues = 8;
    bus_->queues_granted = 2;
    auto c = open_ok();
    ASSERT_TRUE(c);
    EXPECT_EQ(c->io_queues_granted(), 2u);
    ASSERT_TRUE(c->create_io_queue().ok());
    ASSERT_TRUE(c->create_io_queue().ok());
    auto third = c->create_io_queue();
    ASSERT_FALSE(third.ok());
    EXPECT_EQ(error_code(third), EBUSY);
    EXPECT_TRUE(has(third.error(), "all 2 I/O queues the controller granted are in use")) << third.error();
}

TEST_F(ControllerTest, MoreQueuesGrantedThanAskedAreNotUsed) {
    options_.max_io_queues = 3;
    answer_admin(admin_opcode::set_features, Response{{}, 0xffffffffu});  // 65536 of each
    auto c = open_ok();
    ASSERT_TRUE(c);
    EXPECT_EQ(c->io_queues_granted(), 3u);
}

TEST_F(StrictControllerTest, CreateCqRefusedFreesTheQueueAndSaysWhy) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    answer_admin(admin_opcode::create_io_cq, refused(sct::command_specific, sc::invalid_queue_size));
    auto q = c->create_io_queue();
    ASSERT_FALSE(q.ok());
    EXPECT_EQ(error_code(q), EINVAL);
    EXPECT_TRUE(has(q.error(), "Create I/O Completion Queue 1: Invalid Queue Size")) << q.error();
    EXPECT_EQ(last_admin(*bus_, admin_opcode::create_io_sq), nullptr);
    EXPECT_EQ(c->io_queue_count(), 0u);
    EXPECT_EQ(c->leaked_io_queues(), 0u);
    EXPECT_EQ(bus_->disables, 0u);
    EXPECT_FALSE(device_can_write_at(last_admin(*bus_, admin_opcode::create_io_cq)->prp1));
    bus_->on_admin = nullptr;
    auto again = c->create_io_queue();
    ASSERT_TRUE(again.ok()) << again.error();
    EXPECT_EQ((*again)->qid(), 1u);
}

TEST_F(StrictControllerTest, CreateSqRefusedDeletesTheCqAndFreesTheQueue) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    answer_admin(admin_opcode::create_io_sq, refused(sct::generic, sc::invalid_field));
    auto q = c->create_io_queue();
    ASSERT_FALSE(q.ok());
    EXPECT_TRUE(has(q.error(), "Create I/O Submission Queue 1: Invalid Field in Command")) << q.error();
    EXPECT_EQ(bus_->admin_opcodes.back(), admin_opcode::delete_io_cq);
    EXPECT_EQ(c->leaked_io_queues(), 0u);
    EXPECT_EQ(bus_->disables, 0u);
    EXPECT_FALSE(device_can_write_at(last_admin(*bus_, admin_opcode::create_io_cq)->prp1));
}

// The SQ is refused and the CQ will not go: the controller keeps a CQ on our
// ring, so the queue is kept (and its QID reserved) until reset() has
// disabled the controller.
TEST_F(StrictControllerTest, CreateSqRefusedAndTheCqStaysKeepsTheRingsUntilReset) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    bus_->on_admin = [](const SubmissionEntry& e) -> std::optional<Response> {
        if (e.opcode() == admin_opcode::create_io_sq) return refused(sct::generic, sc::invalid_field);
        if (e.opcode() == admin_opcode::delete_io_cq) return refused(sct::generic, sc::internal_error);
        return std::nullopt;
    };
    auto q = c->create_io_queue();
    ASSERT_FALSE(q.ok());
    EXPECT_TRUE(has(q.error(), "Delete I/O Completion Queue 1: Internal Error")) << q.error();
    EXPECT_TRUE(has(q.error(), "kept")) << q.error();
    EXPECT_EQ(c->leaked_io_queues(), 1u);
    EXPECT_EQ(bus_->disables, 0u);
    const std::uint64_t cq_ring = last_admin(*bus_, admin_opcode::create_io_cq)->prp1;
    EXPECT_TRUE(device_can_write_at(cq_ring));
    bus_->on_admin = nullptr;
    auto next = c->create_io_queue();
    ASSERT_TRUE(next.ok()) << next.error();
    EXPECT_EQ((*next)->qid(), 2u);  // 1 is still the controller's

    watch_at_disable(cq_ring);
    ASSERT_TRUE(c->reset().ok());
    EXPECT_TRUE(writable_at_disable_);
    EXPECT_EQ(c->leaked_io_queues(), 0u);
    EXPECT_FALSE(device_can_write_at(cq_ring));
}

TEST_F(StrictControllerTest, CreateCqThatNeverCompletesKeepsTheRingsUntilReset) {
    options_.admin_timeout = 50ms;
    auto c = open_ok();
    ASSERT_TRUE(c);
    answer_admin(admin_opcode::create_io_cq, never_completes());
    const auto t0 = Stopwatch::now();
    auto q = c->create_io_queue();
    ASSERT_FALSE(q.ok());
    EXPECT_EQ(error_code(q), ETIMEDOUT);
    EXPECT_LT(Stopwatch::now() - t0, options_.admin_timeout + 800ms);
    EXPECT_TRUE(has(q.error(), "Create I/O Completion Queue 1 (opcode 0x5")) << q.error();
    EXPECT_TRUE(has(q.error(), "reset()")) << q.error();
    EXPECT_EQ(c->leaked_io_queues(), 1u);
    EXPECT_EQ(bus_->disables, 0u);
    const std::uint64_t cq_ring = last_admin(*bus_, admin_opcode::create_io_cq)->prp1;
    EXPECT_TRUE(device_can_write_at(cq_ring));
    EXPECT_EQ(error_code(c->create_io_queue()), EIO);  // admin queue unusable until reset()

    watch_at_disable(cq_ring);
    bus_->on_admin = nullptr;
    ASSERT_TRUE(c->reset().ok());
    EXPECT_TRUE(writable_at_disable_);
    EXPECT_EQ(c->leaked_io_queues(), 0u);
    EXPECT_FALSE(device_can_write_at(cq_ring));
    EXPECT_TRUE(c->create_io_queue().ok());
}

// A Get Log Page that never completes: the scratch page it names stays the
// device's (a late write lands there harmlessly), the admin queue refuses
// further commands, I/O queues go on, and reset() makes it usable again.
TEST_F(StrictControllerTest, AdminCommandThatNeverCompletesKeepsItsPageUntilReset) {
    ASSERT_NO_FATAL_FAILURE(open_with_queue());
    answer_admin(admin_opcode::get_log_page, never_completes());
    const auto t0 = Stopwatch::now();
    auto smart = controller_->smart_log();
    const auto took = Stopwatch::now() - t0;
    ASSERT_FALSE(smart.ok());
    EXPECT_EQ(error_code(smart), ETIMEDOUT);
    EXPECT_TRUE(has(smart.error(), "Get Log Page SMART / Health Information (opcode 0x2")) << smart.error();
    EXPECT_TRUE(has(smart.error(), "needs reset()")) << smart.error();
    EXPECT_GE(took, options_.admin_timeout);
    EXPECT_LT(took, options_.admin_timeout + 800ms);
    const std::uint64_t page = last_admin(*bus_, admin_opcode::get_log_page)->prp1;
    EXPECT_TRUE(device_can_write_at(page, 512));

    const std::size_t sent = bus_->admin_commands.size();
    auto refused = controller_->error_log();
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(error_code(refused), EIO);
    EXPECT_TRUE(has(refused.error(), "call reset()")) << refused.error();
    EXPECT_EQ(bus_->admin_commands.size(), sent);
    EXPECT_TRUE(queue_->read_host_sync(1, 0, 8, buffer_.data()).ok());

    watch_at_disable(page, 512);
    bus_->on_admin = nullptr;
    ASSERT_TRUE(controller_->reset().ok());
    EXPECT_TRUE(writable_at_disable_);
    EXPECT_TRUE(controller_->smart_log().ok());
}

// Destroyed with a timed-out admin command outstanding on a controller that
// will not stop: its page is leaked, not freed under the device.
TEST_F(StrictControllerTest, ControllerThatWillNotStopAfterAnAdminTimeoutLeaksThePage) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    answer_admin(admin_opcode::get_log_page, never_completes());
    ASSERT_EQ(error_code(c->smart_log()), ETIMEDOUT);
    const std::uint64_t page = last_admin(*bus_, admin_opcode::get_log_page)->prp1;
    bus_->hang_on_disable = true;
    bus_->function_reset_fails = true;
    c.reset();
    EXPECT_TRUE(device_can_write_at(page, 512));
    EXPECT_TRUE(logged("leaked deliberately"));
}

TEST_F(StrictControllerTest, ControllerDestroyedAfterAnAdminTimeoutFreesThePageOnlyOnceDisabled) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    answer_admin(admin_opcode::get_log_page, never_completes());
    ASSERT_EQ(error_code(c->smart_log()), ETIMEDOUT);
    const std::uint64_t page = last_admin(*bus_, admin_opcode::get_log_page)->prp1;
    watch_at_disable(page, 512);
    c.reset();
    EXPECT_TRUE(writable_at_disable_);
    EXPECT_FALSE(bus_->ready());
    EXPECT_FALSE(device_can_write_at(page, 512));
}

}  // namespace
}  // namespace dmakit::nvme
