// Controller and IoQueue against a software controller (FakeNvmeBus) on the
// DMA layer with the recording test IOMMU: bring-up, doorbell placement,
// failed queue deletes, timed-out synchronous I/O.
#include "controller_fixture.hpp"

#include <cerrno>
#include <string>
#include <type_traits>
#include <vector>

namespace dmakit::nvme {
namespace {

using namespace std::chrono_literals;
using testing::Callbacks;
using testing::ControllerTest;
using testing::Response;

// I/O callbacks are noexcept in their type, as completion callbacks are.
static_assert(!std::is_convertible_v<void (*)(void*, const IoCompletion&), IoCallback>);

TEST_F(ControllerTest, BringsUpAndMovesData) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    EXPECT_TRUE(bus_->ready());
    ASSERT_EQ(c->namespaces().size(), 1u);
    auto q = c->create_io_queue();
    ASSERT_TRUE(q.ok()) << q.error();
    std::vector<std::byte> buffer(4096);
    EXPECT_TRUE((*q)->write_host_sync(1, 0, 8, buffer.data()).ok());
    EXPECT_TRUE((*q)->read_host_sync(1, 0, 8, buffer.data()).ok());
    EXPECT_EQ(bus_->io_commands.size(), 2u);
    EXPECT_TRUE(c->delete_io_queue(*q).ok());
    EXPECT_EQ(bus_->disables, 0u);
    EXPECT_EQ(bus_->dma_faults, 0u);
}

// ---- Doorbells must lie in the mmapped part of BAR0 ------------------------------

TEST_F(ControllerTest, AdminDoorbellOutsideTheMappingIsRefusedBeforeEnabling) {
    bus_->mapped_bytes = 0x1004;  // SQ0TDBL mapped, CQ0HDBL at 0x1004 not
    auto c = open();
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code(), ERANGE);
    EXPECT_NE(c.error().message().find("0x1004"), std::string::npos) << c.error();
    EXPECT_NE(c.error().message().find("mmapped"), std::string::npos) << c.error();
    EXPECT_EQ(bus_->enables, 0u);
    EXPECT_EQ(bus_->doorbells_outside_mapping, 0u);
}

TEST_F(ControllerTest, LargeDoorbellStrideOutsideTheMappingIsRefused) {
    bus_->cap |= std::uint64_t{4} << 32;  // DSTRD 4: 64-byte stride, CQ0HDBL at 0x1040
    bus_->mapped_bytes = 0x1040;
    auto c = open();
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code(), ERANGE);
    EXPECT_NE(c.error().message().find("0x1040"), std::string::npos) << c.error();
    EXPECT_EQ(bus_->enables, 0u);
}

TEST_F(ControllerTest, IoDoorbellOutsideTheMappingIsRefused) {
    bus_->mapped_bytes = 0x1010;  // admin and queue 1 doorbells only
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->create_io_queue().ok());
    auto second = c->create_io_queue();
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().code(), ERANGE);
    EXPECT_EQ(c->io_queue_count(), 1u);
    EXPECT_EQ(bus_->doorbells_outside_mapping, 0u);
}

// ---- Queue depth keeps 4 generation bits in every CID -------------------------------

TEST_F(ControllerTest, DepthAbove4096IsRefusedWithAReason) {
    options_.io_queue_depth = 65536;
    auto refused = open();
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), EINVAL);
    EXPECT_NE(refused.error().message().find("generation bits"), std::string::npos) << refused.error();

    SetUp();
    bus_->cap = (bus_->cap & ~0xffffull) | 0xffff;  // MQES 65535: the device would take it
    auto c = open_ok();
    ASSERT_TRUE(c);
    auto q = c->create_io_queue(16384);
    ASSERT_FALSE(q.ok());
    EXPECT_EQ(q.error().code(), EINVAL);
    EXPECT_NE(q.error().message().find("4096"), std::string::npos) << q.error();
    EXPECT_TRUE(c->create_io_queue(max_queue_depth).ok());
}

// ---- A failed queue delete stops the controller before anything is freed --------

struct DisableObservation {
    bool seen = false;
    std::size_t callbacks_before = 0;
    bool buffer_reachable = false;
};

class FailedDelete : public ControllerTest {
protected:
    // One read of caller memory held by the device, then the delete.
    void start_held_read(Controller& c) {
        ASSERT_NO_FATAL_FAILURE(create_queue_that_holds_io(c));
        ASSERT_TRUE(queue_->read_host(1, 0, 8, buffer_.data(), &Callbacks::on_done, &callbacks_).ok());
        queue_->ring();
        ASSERT_EQ(bus_->io_commands.size(), 1u);
        const std::uint64_t prp1 = bus_->io_commands[0].prp1;
        bus_->on_disable = [this, prp1] {
            // The device's last DMA, at the moment it is told to stop.
            seen_.seen = true;
            seen_.callbacks_before = callbacks_.done.size();
            if (void* p = bus_->device_view(prp1, 4096, iommu::Access::write)) {
                std::memset(p, 0x5a, 4096);
                seen_.buffer_reachable = true;
            }
        };
    }

    // A held read, a refused delete, and a controller that neither disables
    // nor comes back from a function reset.
    void make_controller_unstoppable(Controller& c) {
        ASSERT_NO_FATAL_FAILURE(start_held_read(c));
        bus_->on_delete = [](const SubmissionEntry&) { return Response{{sc::internal_error, sct::generic}}; };
        bus_->hang_on_disable = true;
        bus_->function_reset_fails = true;
    }

    Callbacks callbacks_;
    DisableObservation seen_;
};

TEST_F(FailedDelete, RefusedDeleteDisablesThenFrees) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(start_held_read(*c));
    bus_->on_delete = [](const SubmissionEntry&) { return Response{{sc::invalid_field, sct::generic}}; };
    auto s = c->delete_io_queue(queue_);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("reset()"), std::string::npos) << s.error();
    // Disabled, and while it was being disabled nothing had been given back.
    EXPECT_EQ(bus_->disables, 1u);
    EXPECT_FALSE(bus_->ready());
    ASSERT_TRUE(seen_.seen);
    EXPECT_EQ(seen_.callbacks_before, 0u);
    EXPECT_TRUE(seen_.buffer_reachable);
    // Then the command completed as cancelled and the queue is gone.
    ASSERT_EQ(callbacks_.done.size(), 1u);
    EXPECT_TRUE(callbacks_.done[0].cancelled);
    EXPECT_EQ(c->io_queue_count(), 0u);
    EXPECT_EQ(c->leaked_io_queues(), 0u);
    EXPECT_EQ(bus_->admin_opcodes.back(), admin_opcode::delete_io_sq);  // no CQ delete after a failed SQ delete
    // Admin commands need reset() now; after it the controller works again.
    EXPECT_FALSE(c->smart_log().ok());
    ASSERT_TRUE(c->reset().ok());
    auto q = c->create_io_queue();
    ASSERT_TRUE(q.ok()) << q.error();
    bus_->on_io = nullptr;
    EXPECT_TRUE((*q)->read_host_sync(1, 0, 8, buffer_.data()).ok());
}

TEST_F(FailedDelete, TimedOutDeleteDisablesThenFrees) {
    options_.admin_timeout = 50ms;
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(start_held_read(*c));
    bus_->on_delete = [](const SubmissionEntry&) { return Response{{}, 0, true, false}; };
    auto s = c->delete_io_queue(queue_);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(bus_->disables, 1u);
    ASSERT_TRUE(seen_.seen);
    EXPECT_EQ(seen_.callbacks_before, 0u);
    ASSERT_EQ(callbacks_.done.size(), 1u);
    EXPECT_TRUE(callbacks_.done[0].cancelled);
    EXPECT_EQ(c->io_queue_count(), 0u);
}

// The controller will not stop: the queue's memory is leaked, mapped, and
// its command never "completes"; a later successful reset() frees it.
TEST_F(FailedDelete, ControllerThatWillNotStopLeaksTheQueue) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(make_controller_unstoppable(*c));
    auto s = c->delete_io_queue(queue_);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("leaked deliberately"), std::string::npos) << s.error();
    EXPECT_TRUE(logged("leaked deliberately"));
    EXPECT_EQ(bus_->function_resets, 1u);
    EXPECT_EQ(c->io_queue_count(), 0u);
    EXPECT_EQ(c->leaked_io_queues(), 1u);
    EXPECT_TRUE(callbacks_.done.empty());
    // Still mapped: the device can keep writing it without faulting.
    const std::uint64_t faults = bus_->dma_faults;
    EXPECT_NE(bus_->device_view(bus_->io_commands[0].prp1, 4096, iommu::Access::write), nullptr);
    EXPECT_EQ(bus_->dma_faults, faults);

    bus_->function_reset_fails = false;
    ASSERT_TRUE(c->reset().ok());
    EXPECT_EQ(c->leaked_io_queues(), 0u);
    ASSERT_EQ(callbacks_.done.size(), 1u);
    EXPECT_TRUE(callbacks_.done[0].cancelled);
}

TEST_F(FailedDelete, LeakedMemorySurvivesTheController) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(make_controller_unstoppable(*c));
    ASSERT_FALSE(c->delete_io_queue(queue_).ok());
    c.reset();  // must not free what the device may still write
    EXPECT_TRUE(callbacks_.done.empty());
    EXPECT_TRUE(logged("leaked deliberately (the device may still write them)"));
}

// ---- A timed-out sync I/O keeps its buffer quarantined ---------------------------------

class SyncTimeout : public ControllerTest {
protected:
    void time_out_one_read(Controller& c) {
        ASSERT_NO_FATAL_FAILURE(create_queue_that_holds_io(c));
        auto s = queue_->read_host_sync(1, 0, 8, buffer_.data());
        ASSERT_FALSE(s.ok());
        EXPECT_EQ(s.error().code(), ETIMEDOUT);
        EXPECT_NE(s.error().message().find("quarantined"), std::string::npos) << s.error();
        EXPECT_EQ(queue_->quarantined(), 1u);
        EXPECT_EQ(queue_->outstanding(), 1u);
        EXPECT_EQ(queue_->io_stats().orphaned, 1u);
        // The mapping is still there: a late device write lands in the buffer.
        void* p = bus_->device_view(bus_->io_commands.back().prp1, 4096, iommu::Access::write);
        ASSERT_NE(p, nullptr);
        std::memset(p, 0x6b, 4096);
        EXPECT_EQ(buffer_[100], std::byte{0x6b});
    }
};

TEST_F(SyncTimeout, LateCompletionReleasesTheQuarantine) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(time_out_one_read(*c));
    bus_->io_queue(queue_->qid())->release_held();
    queue_->poll();
    EXPECT_EQ(queue_->quarantined(), 0u);
    EXPECT_EQ(queue_->outstanding(), 0u);
    bus_->on_io = nullptr;
    EXPECT_TRUE(queue_->read_host_sync(1, 0, 8, buffer_.data()).ok());
}

TEST_F(SyncTimeout, ResetReleasesTheQuarantine) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(time_out_one_read(*c));
    const unsigned disables = bus_->disables;
    ASSERT_TRUE(c->reset().ok());
    EXPECT_EQ(bus_->disables, disables + 1);
    EXPECT_EQ(queue_->quarantined(), 0u);
    EXPECT_EQ(queue_->outstanding(), 0u);
    bus_->on_io = nullptr;
    EXPECT_TRUE(queue_->read_host_sync(1, 0, 8, buffer_.data()).ok());
}

// ---- Hot unplug: the kernel asks for the device back -----------------------------

class Removal : public ControllerTest {
protected:
    // Three reads of caller memory the device holds, rung.
    void start_held_reads(Controller& c) {
        ASSERT_NO_FATAL_FAILURE(create_queue_that_holds_io(c));
        for (int i = 0; i < 3; ++i) {
            ASSERT_TRUE(queue_->read_host(1, static_cast<std::uint64_t>(i) * 8, 8, buffer_.data(),
                                          &Callbacks::on_done, &callbacks_)
                            .ok());
        }
        queue_->ring();
        ASSERT_EQ(bus_->io_queue(queue_->qid())->held(), 3u);
    }
    static bool all_cancelled(const Callbacks& cb) {
        return std::all_of(cb.done.begin(), cb.done.end(), [](const IoCompletion& c) { return c.cancelled; });
    }

    Callbacks callbacks_;
};

TEST_F(Removal, DisablesReleasesAndCancelsWhatIsInFlight) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(start_held_reads(*c));
    EXPECT_FALSE(c->check_removal());
    EXPECT_FALSE(bus_->released);

    bus_->removal_asked = true;
    EXPECT_TRUE(c->check_removal());
    EXPECT_TRUE(c->removed());
    EXPECT_TRUE(bus_->released);
    // Stopped while it was still there, released after.
    EXPECT_FALSE(bus_->enabled_at_release);
    EXPECT_GE(bus_->disables, 1u);
    EXPECT_TRUE(logged("asked for the device back")) << "the removal is reported";

    // The queue's thread completes its commands as cancelled, once each.
    EXPECT_TRUE(callbacks_.done.empty());
    EXPECT_EQ(queue_->poll(), 3u);
    ASSERT_EQ(callbacks_.done.size(), 3u);
    EXPECT_TRUE(all_cancelled(callbacks_));
    EXPECT_EQ(queue_->outstanding(), 0u);
    EXPECT_EQ(queue_->poll(), 0u);
    EXPECT_EQ(callbacks_.done.size(), 3u);
    // Every unmap went through: nothing of the caller's memory stays mapped.
    EXPECT_EQ(queue_->io_stats().unmap_failures, 0u);
    EXPECT_EQ(bus_->device_view(bus_->io_commands[0].prp1, 4096, iommu::Access::write), nullptr);
}

TEST_F(Removal, EveryCallAfterwardsSaysRemovedAndWhatToDo) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(create_queue_that_holds_io(*c));
    bus_->removal_asked = true;
    ASSERT_TRUE(c->check_removal());
    auto r = queue_->read_host(1, 0, 8, buffer_.data(), &Callbacks::on_done, &callbacks_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ENODEV);
    EXPECT_NE(r.error().message().find("was removed"), std::string::npos) << r.error();
    EXPECT_NE(r.error().message().find("dmakit bind"), std::string::npos) << r.error();
    EXPECT_EQ(c->create_io_queue().error().code(), ENODEV);
    EXPECT_EQ(c->reset().error().code(), ENODEV);
    EXPECT_EQ(c->smart_log().error().code(), ENODEV);
    EXPECT_TRUE(callbacks_.done.empty()) << "a refused submission has no callback";
    // Deleting the queue and closing the controller touch nothing of the device.
    EXPECT_TRUE(c->delete_io_queue(queue_).ok());
    c.reset();
    EXPECT_TRUE(bus_->released);
}

TEST_F(Removal, PollingNoticesItWithoutAskingOnEveryPoll) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(start_held_reads(*c));
    bus_->removal_asked = true;
    const unsigned checks_before = bus_->removal_checks;
    std::uint32_t polls = 0;
    while (callbacks_.done.size() < 3 && polls < 100'000) {
        queue_->poll();
        ++polls;
    }
    ASSERT_EQ(callbacks_.done.size(), 3u) << "removal not noticed in " << polls << " polls";
    EXPECT_TRUE(all_cancelled(callbacks_));
    EXPECT_TRUE(bus_->released);
    EXPECT_LE(polls, 4096u);
    // One system call per 4096 polls, not one per poll.
    EXPECT_EQ(bus_->removal_checks - checks_before, 1u);
}

TEST_F(Removal, SyncIoWaitingOnTheDeviceFailsWithENODEV) {
    options_.io_timeout = 5s;  // the removal, not the deadline, must end the wait
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(create_queue_that_holds_io(*c));
    bus_->removal_asked = true;
    const auto start = std::chrono::steady_clock::now();
    auto s = queue_->read_host_sync(1, 0, 8, buffer_.data());
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ENODEV) << s.error();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    EXPECT_EQ(queue_->quarantined(), 0u);
    EXPECT_EQ(queue_->outstanding(), 0u);
}

TEST_F(Removal, QuarantinedBuffersAreFreedOnlyAfterTheRelease) {
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_NO_FATAL_FAILURE(create_queue_that_holds_io(*c));
    auto s = queue_->read_host_sync(1, 0, 8, buffer_.data());
    ASSERT_EQ(s.error().code(), ETIMEDOUT);
    ASSERT_EQ(queue_->quarantined(), 1u);
    bus_->removal_asked = true;
    ASSERT_TRUE(c->check_removal());
    EXPECT_EQ(queue_->poll(), 1u);
    EXPECT_EQ(queue_->quarantined(), 0u);
    EXPECT_EQ(bus_->device_view(bus_->io_commands.back().prp1, 4096, iommu::Access::write), nullptr);
}

}  // namespace
}  // namespace dmakit::nvme
