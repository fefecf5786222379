// Shadow doorbells (Doorbell Buffer Config, NVMe 1.3 §5.7): the EventIdx
// rule, the doorbell wrapper over plain memory, and the Controller against
// FakeNvmeBus, which takes doorbell values from the shadow buffer and writes
// EventIdx as QEMU's controller does.
#include "controller_fixture.hpp"

#include <dmakit/drivers/nvme/shadow_doorbells.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <string>
#include <vector>

namespace dmakit::nvme {
namespace {

using namespace std::chrono_literals;
using testing::Callbacks;
using testing::FakeController;
using testing::ControllerTest;
using testing::Response;

// ---- the EventIdx rule ------------------------------------------------------------

TEST(DoorbellNeedsMmio, WritesWhenTheEventIndexWasPassed) {
    struct Case {
        std::uint16_t event, new_value, old_value;
        bool write;
    };
    const Case cases[] = {
        // Moving 5 -> 8 passes indices 5, 6, 7: an EventIdx there asks for a write.
        {5, 8, 5, true}, {7, 8, 5, true},
        // Not caught up to 5 yet (it will read the shadow), or ahead: no write.
        {4, 8, 5, false}, {8, 8, 5, false}, {0, 3, 2, false},
        {5, 5, 5, false},  // no movement
        // Mod 2^16: 65534 -> 1 passes 65534, 65535, 0.
        {65535, 1, 65534, true}, {0, 1, 65534, true}, {1, 1, 65534, false},
        // A ring of 8 wrapping 6 -> 1 looks like a long move: 6, 7 (passed)
        // and 0 ask for a write; never fewer writes than needed.
        {6, 1, 6, true}, {7, 1, 6, true}, {0, 1, 6, true},
    };
    for (const Case& c : cases) {
        EXPECT_EQ(doorbell_needs_mmio(c.event, c.new_value, c.old_value), c.write)
            << "EventIdx " << c.event << ", " << c.old_value << " -> " << c.new_value;
    }
}

// ---- the wrapper, over plain memory ---------------------------------------------

struct RecordingRegisters final : Doorbells {
    std::vector<std::uint16_t> sq, cq;
    void ring_sq_tail(std::uint16_t tail) noexcept override { sq.push_back(tail); }
    void ring_cq_head(std::uint16_t head) noexcept override { cq.push_back(head); }
};

struct WrapperTest : ::testing::Test {
    std::array<std::uint32_t, 4> memory{};  // shadow SQ, shadow CQ, EventIdx SQ, EventIdx CQ
    ShadowSlots slots{&memory[0], &memory[1], &memory[2], &memory[3]};
    RecordingRegisters* registers = nullptr;
    std::unique_ptr<ShadowDoorbells> make(bool admin) {
        auto r = std::make_unique<RecordingRegisters>();
        registers = r.get();
        return std::make_unique<ShadowDoorbells>(std::move(r), admin);
    }
};

TEST_F(WrapperTest, DetachedEveryValueGoesToTheRegister) {
    auto db = make(false);
    db->ring_sq_tail(3);
    db->ring_cq_head(2);
    EXPECT_EQ(registers->sq, (std::vector<std::uint16_t>{3}));
    EXPECT_EQ(registers->cq, (std::vector<std::uint16_t>{2}));
    EXPECT_EQ(memory, (std::array<std::uint32_t, 4>{}));
    EXPECT_EQ(db->counts().mmio_writes, 2u);
}

TEST_F(WrapperTest, AttachedTheShadowAlwaysAndTheRegisterWhenEventIdxSaysSo) {
    auto db = make(false);
    db->attach(slots, 0, 0);
    db->ring_sq_tail(1);  // EventIdx 0 in [0, 1): write
    memory[2] = 0;        // the controller has not moved on
    db->ring_sq_tail(2);  // EventIdx 0 not in [1, 2): shadow only
    db->ring_sq_tail(3);
    EXPECT_EQ(memory[0], 3u);
    EXPECT_EQ(registers->sq, (std::vector<std::uint16_t>{1}));
    memory[2] = 3;  // it fetched up to 3 and wants to hear of anything after
    db->ring_sq_tail(4);
    EXPECT_EQ(registers->sq, (std::vector<std::uint16_t>{1, 4}));
    EXPECT_EQ(db->counts().mmio_writes, 2u);
    EXPECT_EQ(db->counts().mmio_skipped, 2u);
    // The CQ head the same way, with its own EventIdx.
    memory[3] = 0;
    db->ring_cq_head(2);
    memory[3] = 1;  // not in [2, 3)
    db->ring_cq_head(3);
    EXPECT_EQ(memory[1], 3u);
    EXPECT_EQ(registers->cq, (std::vector<std::uint16_t>{2}));
}

TEST_F(WrapperTest, TheOldValueIsTheHostsNotWhatTheDeviceWroteIntoTheShadow) {
    auto db = make(false);
    db->attach(slots, 0, 0);
    db->ring_sq_tail(1);
    memory[2] = 1;
    memory[0] = 9;  // a device scribbling on the shadow must not decide the next write
    db->ring_sq_tail(2);  // old is 1 (host copy): EventIdx 1 in [1, 2) -> write
    EXPECT_EQ(registers->sq, (std::vector<std::uint16_t>{1, 2}));
}

TEST_F(WrapperTest, AttachWritesTheCurrentValuesAndAdminAlwaysWritesTheRegister) {
    auto db = make(true);
    db->attach(slots, 7, 5);
    EXPECT_EQ(memory[0], 7u);
    EXPECT_EQ(memory[1], 5u);
    memory[2] = 0;  // EventIdx says "no write": the admin queue writes anyway (§5.7)
    db->ring_sq_tail(8);
    db->ring_sq_tail(9);
    EXPECT_EQ(memory[0], 9u);
    EXPECT_EQ(registers->sq, (std::vector<std::uint16_t>{8, 9}));
    db->detach();
    db->ring_sq_tail(10);
    EXPECT_EQ(memory[0], 9u);  // detached: the shadow is left alone
}

// ---- the Controller against FakeNvmeBus ----------------------------------------

std::size_t count_opcode(const std::vector<std::uint8_t>& ops, std::uint8_t op) {
    return static_cast<std::size_t>(std::count(ops.begin(), ops.end(), op));
}

class ShadowDoorbellsTest : public ControllerTest {
protected:
    // Read 8 blocks into `buffer_` on queue_, synchronously.
    Status read_one(std::uint64_t lba = 0) { return queue_->read_host_sync(1, lba, 8, buffer_.data()); }
};

TEST_F(ShadowDoorbellsTest, ConfiguredAtOpenAndUsedByEveryQueue) {
    open_with_queue();
    ASSERT_TRUE(queue_);
    EXPECT_TRUE(controller_->shadow_doorbells_active());
    EXPECT_EQ(count_opcode(bus_->admin_opcodes, admin_opcode::doorbell_buffer_config), 1u);
    EXPECT_NE(bus_->doorbell_buffer(), 0u);
    EXPECT_EQ(bus_->doorbell_buffer() % 4096, 0u);
    EXPECT_EQ(bus_->eventidx_buffer() % 4096, 0u);
    EXPECT_NE(bus_->doorbell_buffer(), bus_->eventidx_buffer());
    EXPECT_TRUE(queue_->shadow_doorbells());
    ASSERT_NE(bus_->io_queue(queue_->qid()), nullptr);
    EXPECT_TRUE(bus_->io_queue(queue_->qid())->shadowed());
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(read_one(std::uint64_t(i) * 8).ok());  // wraps the 16-entry ring
    EXPECT_EQ(bus_->io_commands.size(), 40u);
    ASSERT_TRUE(controller_->smart_log().ok());
    // Registers written agree with their shadows, on the admin queue too.
    EXPECT_EQ(bus_->admin_queue()->shadow_mismatches, 0u);
    EXPECT_EQ(bus_->io_queue(queue_->qid())->shadow_mismatches, 0u);
    EXPECT_EQ(bus_->io_queue(queue_->qid())->bad_doorbells, 0u);
    EXPECT_EQ(queue_->stats().device_errors(), 0u);
    EXPECT_EQ(bus_->dma_faults, 0u);
}

// A controller that has not caught up (EventIdx behind) is not told again:
// the host only updates the shadow, and the controller finds it all there.
TEST_F(ShadowDoorbellsTest, ABusyControllerGetsOneRegisterWriteForABatch) {
    bus_->defer_io = true;
    open_with_queue();
    ASSERT_TRUE(queue_);
    FakeController* device = bus_->io_queue(queue_->qid());
    ASSERT_NE(device, nullptr);
    Callbacks cb;
    std::vector<std::byte> data(8 * 4096);
    for (int i = 0; i < 8; ++i) {
        ASSERT_TRUE(queue_->read_host(1, std::uint64_t(i) * 8, 8, data.data() + i * 4096, &Callbacks::on_done, &cb).ok());
        queue_->ring();  // one doorbell per command, the worst case for register writes
    }
    EXPECT_EQ(queue_->doorbell_counts().mmio_writes, 1u);  // EventIdx 0: the first one only
    EXPECT_EQ(queue_->doorbell_counts().mmio_skipped, 7u);
    EXPECT_EQ(device->sq_doorbells, 1u);
    EXPECT_EQ(device->fetched, 0u);
    device->process();  // the controller wakes (QEMU's timer) and reads the shadow tail
    EXPECT_EQ(device->fetched, 8u);
    while (cb.done.size() < 8) ASSERT_GT(queue_->poll(), 0u);
    for (const IoCompletion& c : cb.done) EXPECT_TRUE(c.ok());
    // It fetched up to 8 and said so: the next command writes the register.
    ASSERT_TRUE(queue_->read_host(1, 0, 8, data.data(), &Callbacks::on_done, &cb).ok());
    queue_->ring();
    EXPECT_EQ(device->sq_doorbells, 2u);
    device->process();
    while (cb.done.size() < 9) ASSERT_GT(queue_->poll(), 0u);  // nothing left to call into `cb` later
    EXPECT_EQ(device->shadow_mismatches, 0u);
}

TEST_F(ShadowDoorbellsTest, RefusedFallsBackToRegistersWithALogLine) {
    answer_admin(admin_opcode::doorbell_buffer_config, testing::refused(sct::generic, sc::invalid_field));
    open_with_queue();
    ASSERT_TRUE(queue_);
    EXPECT_FALSE(controller_->shadow_doorbells_active());
    EXPECT_TRUE(logged("shadow doorbells off")) << "no log line for the fallback";
    EXPECT_FALSE(queue_->shadow_doorbells());
    EXPECT_FALSE(bus_->io_queue(queue_->qid())->shadowed());
    ASSERT_TRUE(read_one().ok());
    EXPECT_EQ(queue_->doorbell_counts().mmio_skipped, 0u);
    EXPECT_GE(queue_->doorbell_counts().mmio_writes, 2u);  // SQ tail and CQ head
}

TEST_F(ShadowDoorbellsTest, NotSentWhenNotOfferedOrNotWanted) {
    bus_->offer_doorbell_buffer = false;
    auto c = open_ok();
    ASSERT_TRUE(c);
    EXPECT_FALSE(c->shadow_doorbells_active());
    EXPECT_EQ(count_opcode(bus_->admin_opcodes, admin_opcode::doorbell_buffer_config), 0u);
    c.reset();

    make_bus();
    options_.shadow_doorbells = false;
    auto off = open_ok();
    ASSERT_TRUE(off);
    EXPECT_FALSE(off->shadow_doorbells_active());
    EXPECT_EQ(count_opcode(bus_->admin_opcodes, admin_opcode::doorbell_buffer_config), 0u);
}

TEST_F(ShadowDoorbellsTest, TimedOutConfigFailsOpenNamingTheCommand) {
    answer_admin(admin_opcode::doorbell_buffer_config, testing::never_completes());
    auto c = open();
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code(), ETIMEDOUT);
    EXPECT_NE(c.error().message().find("Doorbell Buffer Config"), std::string::npos) << c.error();
}

TEST_F(ShadowDoorbellsTest, SentAgainAfterAReset) {
    open_with_queue();
    ASSERT_TRUE(queue_);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(read_one().ok());
    ASSERT_TRUE(controller_->reset().ok());
    EXPECT_EQ(count_opcode(bus_->admin_opcodes, admin_opcode::doorbell_buffer_config), 2u);
    EXPECT_TRUE(bus_->doorbell_buffer_enabled());
    EXPECT_TRUE(controller_->shadow_doorbells_active());
    EXPECT_TRUE(bus_->io_queue(queue_->qid())->shadowed());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(read_one().ok());
    EXPECT_EQ(bus_->io_queue(queue_->qid())->shadow_mismatches, 0u);
}

// A queue created again with the same QID starts at 0; the EventIdx the old
// queue left (5) would otherwise hold back its first doorbell for good.
TEST_F(ShadowDoorbellsTest, AQueueCreatedAgainStartsFromCleanEntries) {
    open_with_queue();
    ASSERT_TRUE(queue_);
    const std::uint16_t qid = queue_->qid();
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(read_one().ok());
    ASSERT_TRUE(controller_->delete_io_queue(queue_).ok());
    auto again = controller_->create_io_queue();
    ASSERT_TRUE(again.ok()) << again.error();
    queue_ = *again;
    ASSERT_EQ(queue_->qid(), qid);
    auto s = read_one();
    EXPECT_TRUE(s.ok()) << s.error();
    EXPECT_EQ(queue_->doorbell_counts().mmio_skipped, 0u);
}

// Bad input: the controller stops answering mid-run (it never looks at the
// shadow again). A clear error within the timeouts, the buffer quarantined
// until reset(), and everything works after it.
TEST_F(ShadowDoorbellsTest, AControllerThatStopsAnsweringMidRunTimesOutAndResetRecovers) {
    open_with_queue();
    ASSERT_TRUE(queue_);
    ASSERT_TRUE(read_one().ok());
    bus_->io_queue(queue_->qid())->deferred = true;  // from now on it never wakes
    const auto t0 = std::chrono::steady_clock::now();
    auto s = read_one(8);
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ETIMEDOUT);
    EXPECT_NE(s.error().message().find("quarantined"), std::string::npos) << s.error();
    EXPECT_LT(took, options_.io_timeout + options_.admin_timeout + 2s);
    EXPECT_EQ(queue_->quarantined(), 1u);
    ASSERT_TRUE(controller_->reset().ok());
    EXPECT_EQ(queue_->quarantined(), 0u);
    EXPECT_TRUE(read_one().ok());
}

}  // namespace
}  // namespace dmakit::nvme
