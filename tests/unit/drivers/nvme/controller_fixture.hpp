// The fixture of the Controller / IoQueue tests: a FakeNvmeBus on the DMA
// layer with the recording test IOMMU, short timeouts, and helpers.
#pragma once

#include "fake_bus.hpp"

#include "dma_test_fixture.hpp"

#include <dmakit/drivers/nvme/controller.hpp>
#include <dmakit/drivers/nvme/io_queue.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace dmakit::nvme::testing {

using namespace std::chrono_literals;

// Answers for FakeNvmeBus::on_admin and on_io.
inline Response refused(std::uint8_t type, std::uint8_t code) {
    Response r;
    r.status.sct = type;
    r.status.sc = code;
    return r;
}
inline Response never_completes() { return Response{{}, 0, true, false}; }

// The errno of a result, 0 if it succeeded: an unexpected success then
// fails the assertion instead of aborting the test program.
template <typename R>
[[nodiscard]] int error_code(const R& result) {
    return result.ok() ? 0 : result.error().code();
}

// Records every I/O callback.
struct Callbacks {
    std::vector<IoCompletion> done;
    static void on_done(void* self, const IoCompletion& c) noexcept { static_cast<Callbacks*>(self)->done.push_back(c); }
};

class ControllerTest : public dma::testing::DmaTest {
protected:
    void SetUp() override {
        DmaTest::SetUp();
        make_bus();
    }
    void make_bus() {
        owned_bus_ = std::make_unique<FakeNvmeBus>(*device_, *backend_, log_.logger);
        bus_ = owned_bus_.get();
        options_.admin_timeout = 200ms;
        options_.io_timeout = 20ms;
        options_.io_queue_depth = 16;
    }

    Result<std::unique_ptr<Controller>> open() {
        return Controller::open(std::make_unique<BorrowedBus>(*bus_), options_);
    }
    std::unique_ptr<Controller> open_ok() {
        auto c = open();
        EXPECT_TRUE(c.ok()) << c.error();
        return c.ok() ? std::move(c).value() : nullptr;
    }
    [[nodiscard]] bool logged(const std::string& text) const {
        return std::any_of(log_.lines.begin(), log_.lines.end(),
                           [&](const std::string& l) { return l.find(text) != std::string::npos; });
    }

    // The controller (kept in controller_) with one I/O queue of `depth`
    // (0: options_.io_queue_depth) in queue_.
    void open_with_queue(std::uint32_t depth = 0) {
        controller_ = open_ok();
        ASSERT_TRUE(controller_);
        auto q = controller_->create_io_queue(depth);
        ASSERT_TRUE(q.ok()) << q.error();
        queue_ = *q;
    }
    // The model answers admin commands with `opcode` with `response`, the others itself.
    void answer_admin(std::uint8_t opcode, Response response) {
        bus_->on_admin = [opcode, response](const SubmissionEntry& e) -> std::optional<Response> {
            if (e.opcode() == opcode) return response;
            return std::nullopt;
        };
    }
    // When the host next disables the controller (CC.EN=0), records in
    // writable_at_disable_ whether the device could still write at `iova`:
    // the moment of its last DMA, when nothing it owns may be freed yet.
    void watch_at_disable(std::uint64_t iova, std::size_t length = 4096) {
        bus_->on_disable = [this, iova, length] { writable_at_disable_ = device_can_write_at(iova, length); };
    }
    // An I/O queue whose commands the device holds until release_held().
    void create_queue_that_holds_io(Controller& c) {
        auto q = c.create_io_queue();
        ASSERT_TRUE(q.ok()) << q.error();
        queue_ = *q;
        bus_->on_io = [](const SubmissionEntry&) { return Response{{}, 0, false, true}; };
    }
    // Whether the device can write `length` bytes at `iova` now (the model
    // counts a failed try as a DMA fault).
    [[nodiscard]] bool device_can_write_at(std::uint64_t iova, std::size_t length = 4096) {
        return bus_->device_view(iova, length, iommu::Access::write) != nullptr;
    }

    // Outlives every controller of a test (they are locals of the test body).
    std::unique_ptr<FakeNvmeBus> owned_bus_;
    FakeNvmeBus* bus_ = nullptr;
    ControllerOptions options_;
    std::vector<std::byte> buffer_ = std::vector<std::byte>(4096);
    // Destroyed after the test body: hooks the model may call then must not
    // capture the body's locals.
    std::unique_ptr<Controller> controller_;
    IoQueue* queue_ = nullptr;
    bool writable_at_disable_ = false;
};

// The same over IommuPolicy::strict, where every coherent buffer has its own
// IOMMU mapping, torn down when it is freed: a ring or scratch page freed
// while the device could still write it is seen as a fault.
class StrictControllerTest : public ControllerTest {
protected:
    void SetUp() override {
        dma::testing::TestContextOptions options;
        options.context.policy = dma::IommuPolicy::strict;
        make_context(options);
        make_bus();
    }
};

}  // namespace dmakit::nvme::testing
