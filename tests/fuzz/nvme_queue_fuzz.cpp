// Fuzzes QueuePair (drivers/nvme/queue.*) as a hostile controller would: the
// input is a script of host steps (submit, ring the SQ doorbell, poll, scan
// timeouts, cancel) interleaved with completion entries the "device" writes
// anywhere in the CQ ring with any CID, phase, SQ head, SQ id and status.
// After every step the queue must still keep its promises:
//   - no command completes twice, and none before its SQ doorbell was rung
//     (only cancel_all_and_reset may finish an unrung one);
//   - a completion names the CID its command was given;
//   - outstanding() equals what the harness counts as submitted and not done;
//   - head, tail and doorbell values stay inside the ring; ASan catches any
//     access outside it.
#include "fuzz_check.hpp"

#include <dmakit/drivers/nvme/queue.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

using namespace dmakit::nvme;

namespace {

constexpr std::uint32_t kMaxDepth = 64;  // small rings wrap often; logic is size-independent

struct RecordingDoorbells final : Doorbells {
    std::uint32_t depth = 0;
    void ring_sq_tail(std::uint16_t tail) noexcept override { FUZZ_CHECK(tail < depth); }
    void ring_cq_head(std::uint16_t head) noexcept override { FUZZ_CHECK(head < depth); }
};

struct Model;

// One submitted command, as the harness saw it; the callback's user_data.
struct Command {
    Model* model = nullptr;
    std::uint16_t cid = 0;
    bool rung = false;
    bool done = false;
};

struct Model {
    std::vector<std::unique_ptr<Command>> commands;  // every submission of this run
    std::vector<Command*> unrung;                    // submitted since the last ring_sq
    std::uint32_t outstanding = 0;
};

void on_complete(void* user_data, const Completion& completion) noexcept {
    auto* command = static_cast<Command*>(user_data);
    FUZZ_CHECK(!command->done);
    FUZZ_CHECK(command->rung || completion.cancelled);
    FUZZ_CHECK(completion.cid == command->cid);
    command->done = true;
    FUZZ_CHECK(command->model->outstanding > 0);
    --command->model->outstanding;
}

enum class Step : std::uint8_t { submit, ring, device_writes, poll, scan_timeouts, cancel, count };

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    const auto depth = in.ConsumeIntegralInRange<std::uint32_t>(2, kMaxDepth);

    // Fresh rings per input, exactly `depth` entries on the heap: nothing
    // carries over between runs and ASan sees any access past the ring.
    std::vector<SubmissionEntry> sq(depth);
    std::vector<CompletionEntry> cq(depth);
    RecordingDoorbells doorbells;
    doorbells.depth = depth;
    auto created = QueuePair::create({.qid = 1, .depth = depth, .sq = sq.data(), .cq = cq.data(),
                                      .doorbells = &doorbells, .logger = nullptr});
    FUZZ_CHECK(created.ok());
    QueuePair q = std::move(created).value();

    Model model;
    const Clock::time_point epoch{};  // deterministic clock: deadlines are offsets from 0

    while (in.remaining_bytes() > 0) {
        switch (static_cast<Step>(in.ConsumeIntegralInRange<int>(0, static_cast<int>(Step::count) - 1))) {
            case Step::submit: {
                auto command = std::make_unique<Command>();
                command->model = &model;
                const auto deadline = epoch + std::chrono::milliseconds(in.ConsumeIntegralInRange<int>(0, 1000));
                const bool had_room = q.can_submit();
                auto cid = q.submit(SubmissionEntry{}, on_complete, command.get(), deadline);
                FUZZ_CHECK(cid.ok() == had_room);
                if (!cid.ok()) break;
                FUZZ_CHECK(sq[(q.sq_tail() + depth - 1) % depth].cdw0 >> 16 == *cid);
                command->cid = *cid;
                ++model.outstanding;
                model.unrung.push_back(command.get());
                model.commands.push_back(std::move(command));
                break;
            }
            case Step::ring:
                q.ring_sq();
                for (Command* c : model.unrung) c->rung = true;
                model.unrung.clear();
                break;
            case Step::device_writes: {
                // Any slot, any content: mostly near the head, sometimes echoing a real CID.
                const auto offset = in.ConsumeIntegralInRange<std::uint32_t>(0, depth - 1);
                CompletionEntry e;
                e.dw0 = in.ConsumeIntegral<std::uint32_t>();
                e.sq_head = in.ConsumeIntegral<std::uint16_t>();
                e.sq_id = in.ConsumeBool() ? std::uint16_t{1} : in.ConsumeIntegral<std::uint16_t>();
                if (in.ConsumeBool() && !model.commands.empty()) {
                    e.cid = model.commands[in.ConsumeIntegralInRange<std::size_t>(0, model.commands.size() - 1)]->cid;
                } else {
                    e.cid = in.ConsumeIntegral<std::uint16_t>();
                }
                const auto status = in.ConsumeIntegral<std::uint16_t>();
                const std::uint16_t phase = in.ConsumeBool() ? q.expected_phase() : in.ConsumeIntegral<std::uint16_t>() & 1u;
                e.status = static_cast<std::uint16_t>((status & ~1u) | phase);
                const std::uint32_t slot = (q.cq_head() + offset) % depth;
                cq[slot] = e;
                break;
            }
            case Step::poll: {
                const auto max = in.ConsumeIntegralInRange<std::uint32_t>(0, 2 * kMaxDepth);
                const std::uint32_t ran = q.poll(max);
                FUZZ_CHECK(ran <= max && ran <= depth);
                break;
            }
            case Step::scan_timeouts: {
                const auto now = epoch + std::chrono::milliseconds(in.ConsumeIntegralInRange<int>(0, 1000));
                std::uint32_t reported = 0;
                q.scan_timeouts(now, [&](const TimedOutCommand& t) {
                    auto* command = static_cast<Command*>(t.user_data);
                    FUZZ_CHECK(!command->done && command->cid == t.cid && t.deadline <= now);
                    ++reported;
                });
                FUZZ_CHECK(reported <= model.outstanding);
                break;
            }
            case Step::cancel:
                q.cancel_all_and_reset();
                FUZZ_CHECK(model.outstanding == 0);
                model.unrung.clear();
                FUZZ_CHECK(q.sq_head() == 0 && q.sq_tail() == 0 && q.cq_head() == 0);
                break;
            case Step::count:
                break;
        }
        FUZZ_CHECK(q.outstanding() == model.outstanding);
        FUZZ_CHECK(q.sq_head() < depth && q.sq_tail() < depth && q.cq_head() < depth);
        FUZZ_CHECK(q.expected_phase() <= 1);
    }
    // Teardown as the driver does it: whatever is left is cancelled, exactly once.
    q.cancel_all_and_reset();
    FUZZ_CHECK(model.outstanding == 0);
    for (const auto& c : model.commands) FUZZ_CHECK(c->done);
    return 0;
}
