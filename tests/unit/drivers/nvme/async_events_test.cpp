// Asynchronous Event Requests (NVMe 1.4 §5.2) against the software
// controller: kept outstanding, decoded, the clearing log page read, passed
// to the callback and logged, resubmitted; a flood of more events than
// requests loses none; requests end cleanly at reset, removal and close.
#include "controller_fixture.hpp"

#include <dmakit/drivers/nvme/async_events.hpp>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace dmakit::nvme {
namespace {

using testing::ControllerTest;
using testing::error_code;
using testing::StrictControllerTest;

struct Events {
    std::vector<AsyncEvent> seen;
    static void on_event(void* self, const AsyncEvent& e) noexcept { static_cast<Events*>(self)->seen.push_back(e); }
};

// ---- protocol pieces -----------------------------------------------------------

TEST(AsyncEventProtocol, CompletionDw0DecodesTypeInformationAndLogPage) {
    const auto e = AsyncEventCompletion::decode(0x00040002u);
    EXPECT_EQ(e.type, 2u);
    EXPECT_EQ(e.info, 0u);
    EXPECT_EQ(e.log_page, 4u);
    EXPECT_EQ(e.encode(), 0x00040002u);
    EXPECT_EQ(async_event_name(e), "notice: namespace attribute changed");
    EXPECT_EQ(async_event_name(AsyncEventCompletion::decode(0x00020101u)), "SMART / health: temperature threshold");
    EXPECT_EQ(async_event_name(AsyncEventCompletion::decode(0x00030102u)), "notice: firmware activation starting");
    EXPECT_EQ(async_event_name(AsyncEventCompletion::decode(0x00000005u)), "reserved event type 5: information 0");
    EXPECT_EQ(async_event_request().opcode(), admin_opcode::async_event_request);
    const SubmissionEntry aec = set_async_event_config();
    EXPECT_EQ(aec.cdw10 & 0xffu, feature::async_event_config);
    EXPECT_EQ(aec.cdw11, 0x3ffu);
}

TEST(AsyncEventProtocol, ChangedNamespaceListParsesEndsAndOverflows) {
    std::vector<std::uint32_t> page(1024, 0);
    page[0] = 2;
    page[1] = 7;
    auto bytes = std::as_bytes(std::span(page));
    auto list = parse_changed_namespace_list(bytes);
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(list->nsids, (std::vector<std::uint32_t>{2, 7}));
    EXPECT_FALSE(list->overflow);
    page[0] = 0xffffffffu;
    list = parse_changed_namespace_list(bytes);
    ASSERT_TRUE(list.ok());
    EXPECT_TRUE(list->overflow);
    EXPECT_TRUE(list->nsids.empty());
    page[0] = 3;
    page[1] = 0xffffffffu;
    EXPECT_EQ(error_code(parse_changed_namespace_list(bytes)), EPROTO);
    EXPECT_EQ(error_code(parse_changed_namespace_list(bytes.first(100))), EINVAL);
    EXPECT_EQ(clearing_log_bytes(log_page::changed_namespace_list, 1, 4096), 4096u);
    EXPECT_EQ(clearing_log_bytes(log_page::smart_health, 1, 4096), 512u);
    EXPECT_EQ(clearing_log_bytes(log_page::error_information, 64, 4096), 4096u);
    EXPECT_EQ(clearing_log_bytes(log_page::error_information, 256, 4096), 4096u);
}

// ---- the controller -----------------------------------------------------------------

class AsyncEventsTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        options_.on_async_event = &Events::on_event;
        options_.async_event_user = &events_;
    }
    // process_events() until `n` events were delivered or 100 rounds passed.
    void process_until(std::size_t n) {
        for (int round = 0; round < 100 && events_.seen.size() < n; ++round) {
            auto r = controller_->process_events();
            ASSERT_TRUE(r.ok()) << r.error();
        }
    }
    Events events_;
};

TEST_F(AsyncEventsTest, OpenKeepsAerlPlusOneRequestsOutstandingAndEnablesTheEvents) {
    controller_ = open_ok();
    ASSERT_TRUE(controller_);
    EXPECT_EQ(bus_->async_event_config, async_event_config_all);
    EXPECT_EQ(controller_->async_events_outstanding(), 4u);  // AERL 3: four at most
    EXPECT_EQ(bus_->aers_outstanding(), 4u);
    EXPECT_EQ(bus_->aer_limit_refusals, 0u);
    auto none = controller_->process_events();
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(*none, 0u);
    // Admin commands still find room beside them.
    EXPECT_TRUE(controller_->smart_log().ok());
}

TEST_F(AsyncEventsTest, FewerWhenAskedAndNoneWhenTurnedOff) {
    options_.async_event_requests = 2;
    auto two = open_ok();
    ASSERT_TRUE(two);
    EXPECT_EQ(two->async_events_outstanding(), 2u);
    two.reset();
    options_.async_event_requests = 0;
    auto none = open_ok();
    ASSERT_TRUE(none);
    EXPECT_EQ(none->async_events_outstanding(), 0u);
    EXPECT_EQ(bus_->aers_outstanding(), 0u);
}

TEST_F(AsyncEventsTest, SmartEventIsDecodedClearedDeliveredLoggedAndTheRequestResubmitted) {
    controller_ = open_ok();
    ASSERT_TRUE(controller_);
    bus_->raise_event(AsyncEventType::smart_health, 0x01, log_page::smart_health);
    EXPECT_EQ(bus_->aers_outstanding(), 3u);
    auto n = controller_->process_events();
    ASSERT_TRUE(n.ok()) << n.error();
    EXPECT_EQ(*n, 1u);
    ASSERT_EQ(events_.seen.size(), 1u);
    const AsyncEvent& e = events_.seen[0];
    EXPECT_EQ(e.raw.type, static_cast<std::uint8_t>(AsyncEventType::smart_health));
    EXPECT_EQ(e.description, "SMART / health: temperature threshold");
    ASSERT_TRUE(e.smart.has_value());
    EXPECT_EQ(e.smart->temperature_kelvin, 300u);
    EXPECT_TRUE(e.log_error.empty()) << e.log_error;
    EXPECT_EQ(bus_->clearing_log_reads[log_page::smart_health], 1u);
    EXPECT_EQ(bus_->aers_outstanding(), 4u);
    EXPECT_EQ(controller_->async_events_outstanding(), 4u);
    EXPECT_EQ(controller_->async_events_seen(), 1u);
    EXPECT_TRUE(logged("asynchronous event: SMART / health: temperature threshold"));
}

TEST_F(AsyncEventsTest, NamespaceChangeRescansAndQueuesSeeTheNewNamespace) {
    bus_->namespace_count = 2;
    bus_->detached = {2};
    open_with_queue();
    ASSERT_EQ(controller_->namespaces().size(), 1u);
    EXPECT_EQ(error_code(queue_->read_host_sync(2, 0, 1, buffer_.data())), EINVAL);
    const auto old_table = controller_->namespaces();

    bus_->detached.clear();
    bus_->namespaces_changed({2});
    ASSERT_NO_FATAL_FAILURE(process_until(1));
    ASSERT_EQ(events_.seen.size(), 1u);
    EXPECT_EQ(events_.seen[0].description, "notice: namespace attribute changed");
    EXPECT_EQ(events_.seen[0].changed_namespaces, std::vector<std::uint32_t>{2});
    EXPECT_EQ(bus_->clearing_log_reads[log_page::changed_namespace_list], 1u);
    ASSERT_EQ(controller_->namespaces().size(), 2u);
    EXPECT_NE(controller_->find_namespace(2), nullptr);
    EXPECT_TRUE(queue_->read_host_sync(2, 0, 1, buffer_.data()).ok());
    // The table handed out before stays readable.
    ASSERT_EQ(old_table.size(), 1u);
    EXPECT_EQ(old_table[0].nsid, 1u);

    // Detached again: refused again.
    bus_->detached = {2};
    bus_->namespaces_changed({2});
    ASSERT_NO_FATAL_FAILURE(process_until(2));
    EXPECT_EQ(controller_->namespaces().size(), 1u);
    EXPECT_EQ(error_code(queue_->read_host_sync(2, 0, 1, buffer_.data())), EINVAL);
    EXPECT_TRUE(logged("namespaces changed: 2; 1 active now"));
}

TEST_F(AsyncEventsTest, FloodOfMoreEventsThanRequestsLosesNoneAndLeaksNothing) {
    controller_ = open_ok();
    ASSERT_TRUE(controller_);
    // 40 events of three types while four requests are outstanding: the
    // controller queues what it cannot post, one per type until cleared.
    constexpr int rounds = 40;
    for (int i = 0; i < rounds; ++i) {
        switch (i % 3) {
        case 0: bus_->raise_event(AsyncEventType::smart_health, 0x00, log_page::smart_health); break;
        case 1: bus_->raise_event(AsyncEventType::notice, notice_info::firmware_activation_starting,
                                  log_page::firmware_slot); break;
        case 2: bus_->raise_event(AsyncEventType::error_status, 0x04, log_page::error_information); break;
        }
    }
    EXPECT_GT(bus_->events_waiting(), 30u);
    ASSERT_NO_FATAL_FAILURE(process_until(rounds));
    ASSERT_EQ(events_.seen.size(), static_cast<std::size_t>(rounds));
    for (int i = 0; i < rounds; ++i) {
        const std::uint8_t want = i % 3 == 0 ? 1 : i % 3 == 1 ? 2 : 0;
        EXPECT_EQ(events_.seen[i].raw.type, want) << "event " << i;
        EXPECT_TRUE(events_.seen[i].log_error.empty()) << events_.seen[i].log_error;
    }
    EXPECT_EQ(bus_->events_waiting(), 0u);
    EXPECT_EQ(bus_->events_dropped, 0u);
    EXPECT_EQ(bus_->events_posted, static_cast<std::uint64_t>(rounds));
    unsigned reads = 0;
    for (const auto& [lid, count] : bus_->clearing_log_reads) reads += count;
    EXPECT_EQ(reads, static_cast<unsigned>(rounds));  // one clearing read per event
    EXPECT_EQ(controller_->async_events_outstanding(), 4u);
    EXPECT_EQ(bus_->aers_outstanding(), 4u);
    EXPECT_EQ(bus_->aer_limit_refusals, 0u);
    EXPECT_EQ(controller_->admin_stats().device_errors(), 0u);
    controller_.reset();
    EXPECT_EQ(device_->live_mappings(), 0u);
    EXPECT_EQ(bus_->dma_faults, 0u);
}

TEST_F(AsyncEventsTest, OneCallHandlesAtMost64EventsSoADeviceCannotHoldTheCaller) {
    controller_ = open_ok();
    ASSERT_TRUE(controller_);
    bus_->max_queued_events = 1000;
    for (int i = 0; i < 200; ++i) bus_->raise_event(AsyncEventType::error_status, 0x04, log_page::error_information);
    auto n = controller_->process_events();
    ASSERT_TRUE(n.ok());
    EXPECT_GE(*n, 64u);
    EXPECT_LT(*n, 200u);
    ASSERT_NO_FATAL_FAILURE(process_until(200));
    EXPECT_EQ(events_.seen.size(), 200u);
}

TEST_F(AsyncEventsTest, ARefusedRequestIsNotResubmitted) {
    bus_->aerl = 1;  // the device allows two
    options_.async_event_requests = 2;
    controller_ = open_ok();
    ASSERT_TRUE(controller_);
    // A device that fails its outstanding AERs (here: Limit Exceeded on both).
    bus_->on_admin = nullptr;
    testing::FakeController* admin = bus_->admin_queue();
    ASSERT_NE(admin, nullptr);
    for (const SubmissionEntry& e : bus_->admin_commands) {
        if (e.opcode() == admin_opcode::async_event_request) {
            admin->complete(e.cid(), {sc::async_event_limit_exceeded, sct::command_specific}, 0);
        }
    }
    auto n = controller_->process_events();
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 0u);
    EXPECT_TRUE(events_.seen.empty());
    EXPECT_EQ(controller_->async_events_outstanding(), 0u);
    EXPECT_TRUE(logged("Asynchronous Event Request Limit Exceeded"));
    const auto sent = bus_->admin_commands.size();
    ASSERT_TRUE(controller_->process_events().ok());
    EXPECT_EQ(bus_->admin_commands.size(), sent);  // nothing sent again
}

TEST_F(AsyncEventsTest, ResetCancelsTheRequestsWithoutDeliveringAndArmsThemAgain) {
    controller_ = open_ok();
    ASSERT_TRUE(controller_);
    ASSERT_TRUE(controller_->reset().ok());
    EXPECT_TRUE(events_.seen.empty());
    EXPECT_EQ(controller_->async_events_outstanding(), 4u);
    EXPECT_EQ(bus_->aers_outstanding(), 4u);
    bus_->raise_event(AsyncEventType::smart_health, 0x02, log_page::smart_health);
    ASSERT_NO_FATAL_FAILURE(process_until(1));
    EXPECT_EQ(events_.seen.size(), 1u);
}

TEST_F(AsyncEventsTest, AnEventWaitingAtRemovalIsNotDeliveredAndProcessingSaysRemoved) {
    controller_ = open_ok();
    ASSERT_TRUE(controller_);
    bus_->raise_event(AsyncEventType::smart_health, 0x00, log_page::smart_health);
    bus_->removal_asked = true;
    EXPECT_TRUE(controller_->check_removal());
    auto r = controller_->process_events();
    EXPECT_EQ(error_code(r), ENODEV);
    EXPECT_TRUE(events_.seen.empty());
    EXPECT_EQ(controller_->async_events_outstanding(), 0u);
}

TEST_F(AsyncEventsTest, ATimedOutLogReadLeavesTheControllerToReset) {
    controller_ = open_ok();
    ASSERT_TRUE(controller_);
    answer_admin(admin_opcode::get_log_page, testing::never_completes());
    bus_->raise_event(AsyncEventType::smart_health, 0x00, log_page::smart_health);
    auto n = controller_->process_events();
    ASSERT_TRUE(n.ok()) << n.error();
    ASSERT_EQ(events_.seen.size(), 1u);  // delivered, saying the log could not be read
    EXPECT_NE(events_.seen[0].log_error.find("timed out"), std::string::npos) << events_.seen[0].log_error;
    EXPECT_EQ(controller_->async_events_outstanding(), 0u);  // cancelled with the admin queue
    EXPECT_EQ(error_code(controller_->process_events()), EIO);
    bus_->on_admin = nullptr;
    ASSERT_TRUE(controller_->reset().ok());
    EXPECT_EQ(controller_->async_events_outstanding(), 4u);
}

TEST_F(StrictControllerTest, AsyncEventRequestsEndCleanlyAtClose) {
    const std::size_t maps_before = backend_maps();
    const std::size_t unmaps_before = backend_unmaps();
    {
        auto c = open_ok();
        ASSERT_TRUE(c);
        EXPECT_EQ(c->async_events_outstanding(), 4u);
        bus_->raise_event(AsyncEventType::notice, notice_info::firmware_activation_starting, log_page::firmware_slot);
    }  // an event posted, never processed: dropped with the admin queue
    EXPECT_EQ(backend_maps() - maps_before, backend_unmaps() - unmaps_before);
    EXPECT_EQ(bus_->dma_faults, 0u);
}

}  // namespace
}  // namespace dmakit::nvme
