// One I/O queue per thread (nvme_perf -c N): each thread submits, rings and
// polls only its own queue, with nothing shared on the I/O path. Run under
// ThreadSanitizer by scripts/run-tests (Concurrent*): a data race between
// queues (a shared counter, pool or doorbell buffer entry) is a report. The
// model keeps no shared state on I/O either (record_io off), so it adds no
// synchronisation that could hide one.
#include "controller_fixture.hpp"

#include <concurrency.hpp>

#include <atomic>
#include <random>
#include <vector>

namespace dmakit::nvme {
namespace {

using testing::ControllerTest;

class ConcurrentIoQueues : public ControllerTest {};  // Concurrent*: the TSan tier runs these

struct Inflight {
    std::uint32_t done = 0;
    std::uint32_t failed = 0;
    static void on_done(void* self, const IoCompletion& c) noexcept {
        auto* s = static_cast<Inflight*>(self);
        ++s->done;
        if (!c.ok()) ++s->failed;
    }
};

void drive_queues(Controller& c, std::vector<IoQueue*>& queues, std::uint64_t seed) {
    constexpr std::uint32_t per_queue = 3000;
    constexpr std::uint32_t depth = 8;
    // Data buffers are allocated up front: the I/O loop only touches its queue.
    std::vector<dma::CoherentBuffer> buffers;
    for (std::size_t i = 0; i < queues.size(); ++i) {
        auto b = c.dma().alloc_coherent(depth * 16384);
        ASSERT_TRUE(b.ok()) << b.error();
        buffers.push_back(std::move(b).value());
    }
    std::vector<Inflight> results(queues.size());
    dmakit::testing::run_concurrently(seed, static_cast<unsigned>(queues.size()), [&](unsigned i, std::mt19937_64& rng) {
        IoQueue& q = *queues[i];
        Inflight& r = results[i];
        std::uint32_t submitted = 0;
        while (r.done < per_queue) {
            while (submitted < per_queue && submitted - r.done < depth) {
                const std::uint32_t slot = submitted % depth;
                // 4 KiB (PRP1 only) or 16 KiB (a PRP list from the queue's pool).
                const std::uint32_t bytes = (rng() & 2) ? 16384 : 4096;
                const DmaSegment seg{buffers[i].dma().value() + slot * 16384ull, bytes};
                const std::uint64_t lba = (rng() % 1024) * 32;
                auto cid = (rng() & 1) ? q.read(1, lba, bytes / 512, {&seg, 1}, &Inflight::on_done, &r)
                                       : q.write(1, lba, bytes / 512, {&seg, 1}, &Inflight::on_done, &r);
                if (!cid.ok()) {
                    ADD_FAILURE() << "queue " << q.qid() << ": " << cid.error();
                    return;
                }
                ++submitted;
            }
            q.poll();
        }
    });
    for (std::size_t i = 0; i < queues.size(); ++i) {
        EXPECT_EQ(results[i].done, per_queue) << "queue " << queues[i]->qid();
        EXPECT_EQ(results[i].failed, 0u) << "queue " << queues[i]->qid();
        EXPECT_EQ(queues[i]->stats().device_errors(), 0u);
        EXPECT_EQ(queues[i]->stats().completed, per_queue);
        EXPECT_EQ(queues[i]->outstanding(), 0u);
    }
}

// A controller with kConcurrentThreads I/O queues, shadow doorbells on or off.
struct QueuesPerThread {
    std::unique_ptr<Controller> controller;
    std::vector<IoQueue*> queues;
};

class ConcurrentIoQueuesTest : public ConcurrentIoQueues {
protected:
    QueuesPerThread open_queues(bool shadow) {
        bus_->queues_granted = dmakit::testing::kConcurrentThreads;
        bus_->record_io = false;
        options_.shadow_doorbells = shadow;
        QueuesPerThread made;
        made.controller = open_ok();
        if (!made.controller) return made;
        EXPECT_EQ(made.controller->shadow_doorbells_active(), shadow);
        for (unsigned i = 0; i < dmakit::testing::kConcurrentThreads; ++i) {
            auto q = made.controller->create_io_queue();
            EXPECT_TRUE(q.ok()) << q.error();
            if (q.ok()) made.queues.push_back(*q);
        }
        return made;
    }
    void run(bool shadow) {
        const std::uint64_t seed = dmakit::testing::concurrency_seed();
        QueuesPerThread made = open_queues(shadow);
        ASSERT_EQ(made.queues.size(), dmakit::testing::kConcurrentThreads);
        drive_queues(*made.controller, made.queues, seed);
        EXPECT_EQ(bus_->dma_faults, 0u);
    }
};

TEST_F(ConcurrentIoQueuesTest, EachThreadDrivesItsOwnQueueWithShadowDoorbells) { run(true); }
TEST_F(ConcurrentIoQueuesTest, EachThreadDrivesItsOwnQueueWithRegisterDoorbells) { run(false); }

}  // namespace
}  // namespace dmakit::nvme
