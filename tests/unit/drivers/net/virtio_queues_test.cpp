// The virtio split virtqueue and virtio-net's RX/TX/control queues
// (drivers/net/virtio) against the device side of fake_virtio_device.hpp,
// including a device that lies in the used ring.
#include "fake_virtio_device.hpp"
#include "test_memory.hpp"

#include <dmakit/drivers/net/virtio/control_queue.hpp>
#include <dmakit/drivers/net/virtio/net_queues.hpp>
#include <dmakit/drivers/net/virtio/spec.hpp>
#include <dmakit/drivers/net/virtio/virtqueue.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

namespace dmakit::net {
namespace {

using virtio::Completion;
using virtio::RingLayout;
using virtio::Segment;
using virtio::Virtqueue;
using namespace std::chrono_literals;

std::vector<std::byte> make_frame(std::uint32_t seq, std::size_t length) {
    std::vector<std::byte> f(length);
    for (std::size_t i = 0; i < length; ++i) f[i] = static_cast<std::byte>((seq * 31 + i) & 0xFF);
    std::memcpy(f.data(), &seq, sizeof seq);
    return f;
}

struct CountingNotifier final : virtio::QueueNotifier {
    std::uint64_t* count;
    explicit CountingNotifier(std::uint64_t* c) : count(c) {}
    void notify() override { ++*count; }
};

class VirtqueueTest : public ::testing::Test {
protected:
    static constexpr std::uint32_t kSize = 16;

    VirtqueueTest() : memory_(8 << 20) { pool_ = test::make_pool(memory_, 256); }

    Virtqueue make(std::uint32_t size = kSize, bool interrupts = false) {
        const RingLayout layout = RingLayout::for_size(size);
        std::byte* ring = memory_.carve(layout.bytes);
        auto q = Virtqueue::create({ring, memory_.dma_of(ring), layout.bytes}, size, interrupts);
        EXPECT_TRUE(q.ok()) << q.error();
        Virtqueue vq = std::move(q).value();
        vq.set_notifier(std::make_unique<CountingNotifier>(&doorbells_));
        device_ = std::make_unique<test::DeviceQueue>(memory_, size, vq.desc_dma(), vq.driver_dma(), vq.device_dma());
        return vq;
    }
    static std::uint16_t add_one(Virtqueue& q, std::uint64_t addr, std::uint32_t len, bool writes) {
        const Segment s{addr, len, writes};
        return q.add(std::span(&s, 1));
    }

    test::TestMemory memory_;
    std::unique_ptr<PacketPool> pool_;
    std::unique_ptr<test::DeviceQueue> device_;
    std::uint64_t doorbells_ = 0;
};

TEST_F(VirtqueueTest, CreateRefusesBadSizesAndMemory) {
    std::byte* ring = memory_.carve(RingLayout::for_size(64).bytes);
    const std::uint64_t dma = memory_.dma_of(ring);
    for (std::uint32_t bad : {0u, 3u, 48u, 65536u}) {
        auto q = Virtqueue::create({ring, dma, RingLayout::for_size(64).bytes}, bad, false);
        ASSERT_FALSE(q.ok()) << bad;
        EXPECT_EQ(q.error().code(), EINVAL);
    }
    EXPECT_FALSE(Virtqueue::create({ring, dma, RingLayout::for_size(64).bytes - 1}, 64, false).ok());
    EXPECT_FALSE(Virtqueue::create({ring + 8, dma + 8, RingLayout::for_size(32).bytes}, 32, false).ok());
    EXPECT_FALSE(Virtqueue::create({nullptr, dma, 1 << 20}, 64, false).ok());
}

TEST_F(VirtqueueTest, LayoutFollowsTheSpecAlignment) {
    for (std::uint32_t size = 1; size <= 32768; size *= 2) {
        const RingLayout l = RingLayout::for_size(size);
        EXPECT_EQ(l.desc, 0u);
        EXPECT_EQ(l.avail, 16u * size);
        EXPECT_EQ(l.used % 4, 0u) << "§2.7: used ring 4-byte aligned";
        EXPECT_EQ((l.used + 4) % 64, 0u) << "elements start on a line of their own";
        EXPECT_GE(l.used, l.avail + 6 + 2 * std::size_t{size});
        EXPECT_EQ(l.bytes, l.used + 6 + 8 * std::size_t{size});
        // In a page-aligned block no used element crosses a 4 KiB page
        // (QEMU loses the length of one that does, behind an IOMMU).
        for (std::size_t i = 0; i < size; ++i) {
            const std::size_t at = l.used + 4 + 8 * i;
            ASSERT_EQ(at / 4096, (at + 7) / 4096) << "size " << size << " element " << i;
        }
    }
}

TEST_F(VirtqueueTest, PollingQueueAsksForNoInterrupts) {
    Virtqueue polled = make(kSize, false);
    EXPECT_EQ(device_->avail_flags(), virtio::vring::avail_f_no_interrupt);
    Virtqueue woken = make(kSize, true);
    EXPECT_EQ(device_->avail_flags(), 0);
}

TEST_F(VirtqueueTest, OnePublishPerBurstAndCompletionsComeBack) {
    Virtqueue q = make();
    std::array<std::uint16_t, 5> ids;
    for (std::uint32_t i = 0; i < ids.size(); ++i) ids[i] = add_one(q, 0x1000 * (i + 1), 100 + i, true);
    EXPECT_EQ(device_->pending(), 0) << "nothing is visible before publish()";
    q.publish();
    EXPECT_EQ(doorbells_, 1u);
    EXPECT_EQ(device_->pending(), 5);
    EXPECT_EQ(q.in_flight(), 5u);
    EXPECT_EQ(q.free_descriptors(), kSize - 5);
    q.publish();  // nothing new: no doorbell
    EXPECT_EQ(doorbells_, 1u);

    for (int i = 0; i < 5; ++i) {
        auto c = device_->pop();
        ASSERT_TRUE(c);
        EXPECT_EQ(c->head, ids[i]);
        EXPECT_EQ(c->buffers.at(0).addr, 0x1000u * (i + 1));
        EXPECT_TRUE(c->buffers.at(0).writable);
        device_->push_used(c->head, 50);
    }
    EXPECT_TRUE(q.has_used());
    std::array<Completion, 8> out;
    ASSERT_EQ(q.collect(out), 5u);
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(out[i].id, ids[i]);
        EXPECT_EQ(out[i].length, 50u);
        EXPECT_EQ(out[i].writable, 100u + i);
    }
    EXPECT_EQ(q.in_flight(), 0u);
    EXPECT_EQ(q.free_descriptors(), kSize);
    EXPECT_FALSE(q.has_used());
}

TEST_F(VirtqueueTest, HonoursNoNotify) {
    Virtqueue q = make();
    device_->set_used_flags(virtio::vring::used_f_no_notify);
    (void)add_one(q, 0x1000, 64, false);
    q.publish();
    EXPECT_EQ(doorbells_, 0u);
    EXPECT_EQ(q.stats().notify_suppressed, 1u);
    device_->set_used_flags(0);
    (void)add_one(q, 0x2000, 64, false);
    q.publish();
    EXPECT_EQ(doorbells_, 1u);
    EXPECT_EQ(q.stats().notifications, 1u);
}

TEST_F(VirtqueueTest, IndicesWrapPast65535) {
    Virtqueue q = make(8);
    std::array<Completion, 8> out;
    for (std::uint32_t round = 0; round < 70000 / 8; ++round) {
        for (int i = 0; i < 8; ++i) ASSERT_NE(add_one(q, 0x1000, 64, false), Virtqueue::no_id);
        EXPECT_EQ(add_one(q, 0x1000, 64, false), Virtqueue::no_id) << "full";
        q.publish();
        while (auto c = device_->pop()) device_->push_used(c->head, 0);
        ASSERT_EQ(q.collect(out), 8u) << "round " << round;
    }
    EXPECT_EQ(q.stats().bad_used_id, 0u);
    EXPECT_EQ(q.stats().bad_used_index, 0u);
}

TEST_F(VirtqueueTest, ChainsAreFreedByTheDriversOwnLinks) {
    Virtqueue q = make();
    const std::array<Segment, 3> chain{{{0x1000, 2, false}, {0x2000, 8, false}, {0x3000, 1, true}}};
    const std::uint16_t head = q.add(chain);
    ASSERT_NE(head, Virtqueue::no_id);
    EXPECT_EQ(q.free_descriptors(), kSize - 3);
    q.publish();
    auto c = device_->pop();
    ASSERT_TRUE(c);
    ASSERT_EQ(c->buffers.size(), 3u);
    EXPECT_FALSE(c->buffers[0].writable);
    EXPECT_TRUE(c->buffers[2].writable);
    // The device scribbles over the descriptor table: the driver never reads it back.
    std::memset(device_->at(q.desc_dma(), 16 * kSize), 0xAB, 16 * kSize);
    device_->push_used(c->head, 1);
    std::array<Completion, 2> out;
    ASSERT_EQ(q.collect(out), 1u);
    EXPECT_EQ(out[0].writable, 1u);
    EXPECT_EQ(q.free_descriptors(), kSize);
    // Every descriptor is usable again, once each.
    for (std::uint32_t i = 0; i < kSize; ++i) ASSERT_NE(add_one(q, 0x1000, 1, false), Virtqueue::no_id);
    EXPECT_EQ(add_one(q, 0x1000, 1, false), Virtqueue::no_id);
}

TEST_F(VirtqueueTest, AddRefusesEmptyOrOversizedChains) {
    Virtqueue q = make(4);
    EXPECT_EQ(q.add({}), Virtqueue::no_id);
    std::vector<Segment> five(5, Segment{0x1000, 1, false});
    EXPECT_EQ(q.add(five), Virtqueue::no_id);
    EXPECT_EQ(q.free_descriptors(), 4u);
    EXPECT_EQ(q.in_flight(), 0u);
}

TEST_F(VirtqueueTest, UsedIdsTheDeviceDoesNotHoldAreCountedNeverFollowed) {
    Virtqueue q = make();
    const std::uint16_t a = add_one(q, 0x1000, 64, true);
    const std::uint16_t b = add_one(q, 0x2000, 64, true);
    q.publish();
    device_->push_used(a, 10);      // fine
    device_->push_used(a, 10);      // again: already returned
    device_->push_used(9999, 10);   // out of range
    device_->push_used(7, 10);      // in range, never posted
    device_->push_used(b, 20);      // fine
    std::array<Completion, 8> out;
    ASSERT_EQ(q.collect(out), 2u);
    EXPECT_EQ(out[0].id, a);
    EXPECT_EQ(out[1].id, b);
    EXPECT_EQ(q.stats().bad_used_id, 3u);
    EXPECT_EQ(q.in_flight(), 0u);
    EXPECT_EQ(q.free_descriptors(), kSize) << "no descriptor freed twice";
}

TEST_F(VirtqueueTest, UsedIndexJumpingPastTheRingBreaksTheQueue) {
    Virtqueue q = make();
    const std::uint16_t a = add_one(q, 0x1000, 64, true);
    q.publish();
    device_->write_entry(0, a, 10);
    device_->set_used_idx(kSize + 1);
    std::array<Completion, 8> out;
    EXPECT_EQ(q.collect(out), 0u);
    EXPECT_TRUE(q.broken());
    EXPECT_EQ(q.stats().bad_used_index, 1u);
    EXPECT_FALSE(q.has_used());
    device_->set_used_idx(1);  // even a sane index now: the queue stays dead
    EXPECT_EQ(q.collect(out), 0u);
    EXPECT_EQ(q.stats().bad_used_index, 1u) << "counted once";
    std::vector<std::uint16_t> heads;
    q.release_all(heads);
    EXPECT_EQ(heads, std::vector<std::uint16_t>{a});
    EXPECT_FALSE(q.broken());
    EXPECT_EQ(q.free_descriptors(), kSize);
}

// ---------------------------------------------------------------- net ----

class NetQueueTest : public VirtqueueTest {
protected:
    virtio::RxQueue make_rx(std::uint32_t size = kSize) {
        auto r = virtio::RxQueue::create(make(size), 1518);
        EXPECT_TRUE(r.ok());
        return std::move(r).value();
    }
    virtio::TxQueue make_tx(std::uint32_t size = kSize) {
        auto t = virtio::TxQueue::create(make(size), 1518);
        EXPECT_TRUE(t.ok());
        return std::move(t).value();
    }
    void refill(virtio::RxQueue& rx) {
        std::vector<PacketBuffer*> fresh(rx.wanted());
        fresh.resize(pool_->alloc_burst(fresh));
        const std::size_t taken = rx.refill(fresh);
        ASSERT_TRUE(pool_->free_burst(std::span(fresh).subspan(taken)).ok());
    }
    // The device receives `frame` into the next RX buffer, writing `length`
    // as the used length and `gso` into the header.
    void device_rx(const std::vector<std::byte>& frame, std::uint32_t length = 0, std::uint8_t gso = 0) {
        auto c = device_->pop();
        ASSERT_TRUE(c);
        const auto& b = c->buffers.at(0);
        ASSERT_TRUE(b.writable);
        ASSERT_GE(b.length, 12 + frame.size());
        std::byte* p = device_->at(b.addr, 12 + frame.size());
        std::memset(p, 0, 12);
        p[1] = std::byte{gso};
        std::memcpy(p + 12, frame.data(), frame.size());
        device_->push_used(c->head, length != 0 ? length : static_cast<std::uint32_t>(12 + frame.size()));
    }
    void release(virtio::RxQueue& rx) {
        std::vector<PacketBuffer*> held;
        rx.release_buffers(held);
        ASSERT_TRUE(pool_->free_burst(held).ok());
    }
};

TEST_F(NetQueueTest, RxFramesLandAtDataBehindTheHeader) {
    virtio::RxQueue rx = make_rx();
    refill(rx);
    EXPECT_EQ(rx.posted(), kSize) << "a virtqueue needs no empty slot";
    EXPECT_EQ(doorbells_, 1u);
    std::vector<std::vector<std::byte>> frames;
    for (std::uint32_t i = 0; i < 5; ++i) {
        frames.push_back(make_frame(i, 60 + 100 * i));
        device_rx(frames.back());
    }
    std::array<PacketBuffer*, 8> out;
    ASSERT_EQ(rx.harvest(out), 5u);
    for (std::size_t i = 0; i < 5; ++i) {
        ASSERT_EQ(out[i]->length, frames[i].size());
        EXPECT_EQ(std::memcmp(out[i]->data(), frames[i].data(), frames[i].size()), 0);
    }
    EXPECT_EQ(rx.stats().packets, 5u);
    EXPECT_EQ(rx.stats().bytes, 60u + 160 + 260 + 360 + 460);
    ASSERT_TRUE(pool_->free_burst(std::span(out).first(5)).ok());
    refill(rx);
    EXPECT_EQ(rx.posted(), kSize);
    release(rx);
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(NetQueueTest, RxManyWrapsInOrder) {
    virtio::RxQueue rx = make_rx(8);
    refill(rx);
    std::array<PacketBuffer*, 4> out;
    for (std::uint32_t seq = 0; seq < 3000; seq += 4) {
        for (std::uint32_t k = 0; k < 4; ++k) device_rx(make_frame(seq + k, 64));
        ASSERT_EQ(rx.harvest(out), 4u);
        for (std::uint32_t k = 0; k < 4; ++k) {
            std::uint32_t got;
            std::memcpy(&got, out[k]->data(), 4);
            ASSERT_EQ(got, seq + k);
        }
        ASSERT_TRUE(pool_->free_burst(out).ok());
        refill(rx);
    }
    release(rx);
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(NetQueueTest, RxBadLengthsAndHeadersAreDroppedAndTheBufferReused) {
    virtio::RxQueue rx = make_rx(8);
    refill(rx);
    const std::size_t out_before = pool_->in_use();
    device_rx(make_frame(1, 60), 12);           // header only: no frame
    device_rx(make_frame(2, 60), 5);            // not even the header
    device_rx(make_frame(3, 60), 12 + 2048 + 1);  // more than the buffer offered
    device_rx(make_frame(4, 60), 0, 1);         // GSO TCPv4: never negotiated
    device_rx(make_frame(5, 60));               // good
    std::array<PacketBuffer*, 8> out;
    ASSERT_EQ(rx.harvest(out), 1u);
    std::uint32_t seq;
    std::memcpy(&seq, out[0]->data(), 4);
    EXPECT_EQ(seq, 5u);
    EXPECT_EQ(rx.stats().length_errors, 3u);
    EXPECT_EQ(rx.stats().header_errors, 1u);
    EXPECT_EQ(rx.stats().dropped(), 4u);
    // The four dropped buffers wait to be posted again: the refill wants one
    // fresh buffer only (for the frame handed out).
    EXPECT_EQ(rx.wanted(), 1u);
    ASSERT_TRUE(pool_->free_burst(std::span(out).first(1)).ok());
    refill(rx);
    EXPECT_EQ(rx.posted(), 8u);
    EXPECT_EQ(pool_->in_use(), out_before);
    release(rx);
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(NetQueueTest, RxRefillRefusesBuffersWithoutHeadroomOrRoom) {
    virtio::RxQueue rx = make_rx(8);
    std::array<PacketBuffer*, 3> fresh;
    ASSERT_EQ(pool_->alloc_burst(fresh), 3u);
    fresh[1]->headroom = 8;  // no room for the 12-byte header in front
    EXPECT_EQ(rx.refill(fresh), 1u);
    fresh[1]->headroom = fresh[1]->capacity - 100;  // header fits, frame does not
    EXPECT_EQ(rx.refill(std::span(fresh).subspan(1)), 0u);
    fresh[1]->headroom = 128;
    EXPECT_EQ(rx.refill(std::span(fresh).subspan(1)), 2u);
    release(rx);
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(NetQueueTest, TxWritesAZeroHeaderAndPushesBackWhenFull) {
    virtio::TxQueue tx = make_tx(8);
    std::vector<PacketBuffer*> pkts(12);
    ASSERT_EQ(pool_->alloc_burst(pkts), 12u);
    for (std::uint32_t i = 0; i < 12; ++i) {
        auto f = make_frame(i, 60 + i);
        std::memset(pkts[i]->data() - 12, 0xEE, 12);  // stale bytes where the header goes
        std::memcpy(pkts[i]->data(), f.data(), f.size());
        pkts[i]->length = static_cast<std::uint32_t>(f.size());
    }
    EXPECT_EQ(tx.enqueue(pkts), 8u);
    EXPECT_EQ(tx.stats().ring_full, 1u);
    EXPECT_EQ(doorbells_, 1u);
    std::uint32_t sent = 0;
    while (auto c = device_->pop()) {
        const auto& b = c->buffers.at(0);
        EXPECT_FALSE(b.writable);
        ASSERT_EQ(b.length, 12 + 60 + sent);
        const std::byte* p = device_->at(b.addr, b.length);
        for (int k = 0; k < 12; ++k) EXPECT_EQ(p[k], std::byte{0});
        std::uint32_t seq;
        std::memcpy(&seq, p + 12, 4);
        EXPECT_EQ(seq, sent);
        device_->push_used(c->head, 0);
        ++sent;
    }
    EXPECT_EQ(sent, 8u);
    std::array<PacketBuffer*, 16> done;
    ASSERT_EQ(tx.reclaim(done), 8u);
    for (std::uint32_t i = 0; i < 8; ++i) EXPECT_EQ(done[i], pkts[i]);
    ASSERT_TRUE(pool_->free_burst(std::span(done).first(8)).ok());
    EXPECT_EQ(tx.enqueue(std::span(pkts).subspan(8)), 4u);
    std::vector<PacketBuffer*> held;
    tx.release_buffers(held);
    EXPECT_EQ(held.size(), 4u);
    ASSERT_TRUE(pool_->free_burst(held).ok());
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(NetQueueTest, TxStopsAtAPacketItCannotSend) {
    virtio::TxQueue tx = make_tx(8);
    std::array<PacketBuffer*, 5> pkts;
    ASSERT_EQ(pool_->alloc_burst(pkts), 5u);
    for (PacketBuffer* p : pkts) p->length = 60;
    pkts[1]->length = 0;
    EXPECT_FALSE(tx.sendable(pkts[1]));
    pkts[2]->length = 1519;
    EXPECT_FALSE(tx.sendable(pkts[2]));
    pkts[3]->headroom = 4;
    EXPECT_FALSE(tx.sendable(pkts[3]));
    EXPECT_FALSE(tx.sendable(nullptr));
    EXPECT_EQ(tx.enqueue(pkts), 1u);
    EXPECT_EQ(tx.stats().invalid_packets, 1u);
    EXPECT_EQ(tx.stats().ring_full, 0u);
    EXPECT_EQ(tx.in_flight(), 1u);
    std::vector<PacketBuffer*> held;
    tx.release_buffers(held);
    for (PacketBuffer* p : pkts) p->headroom = 128;
    ASSERT_TRUE(pool_->free_burst(pkts).ok());
}

TEST_F(NetQueueTest, TxCompletionsForIdsNotHeldAreIgnored) {
    virtio::TxQueue tx = make_tx(8);
    std::array<PacketBuffer*, 2> pkts;
    ASSERT_EQ(pool_->alloc_burst(pkts), 2u);
    for (PacketBuffer* p : pkts) p->length = 60;
    ASSERT_EQ(tx.enqueue(pkts), 2u);
    auto c = device_->pop();
    device_->push_used(c->head, 0);
    device_->push_used(c->head, 0);  // twice
    device_->push_used(5, 0);        // never posted
    std::array<PacketBuffer*, 8> done;
    ASSERT_EQ(tx.reclaim(done), 1u);
    EXPECT_EQ(done[0], pkts[0]);
    EXPECT_EQ(tx.virtqueue().stats().bad_used_id, 2u);
    EXPECT_EQ(tx.in_flight(), 1u);
    std::vector<PacketBuffer*> held;
    tx.release_buffers(held);
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0], pkts[1]);
    ASSERT_TRUE(pool_->free_burst(pkts).ok());
    EXPECT_EQ(pool_->in_use(), 0u);
}

// ------------------------------------------------------------ control ----

class ControlQueueTest : public ::testing::Test {
protected:
    ControlQueueTest() : memory_(4 << 20) {}

    virtio::ControlQueue make() {
        const RingLayout layout = RingLayout::for_size(16);
        std::byte* ring = memory_.carve(layout.bytes);
        auto q = Virtqueue::create({ring, memory_.dma_of(ring), layout.bytes}, 16, false);
        EXPECT_TRUE(q.ok());
        Virtqueue vq = std::move(q).value();
        device_ = std::make_unique<test::DeviceQueue>(memory_, 16, vq.desc_dma(), vq.driver_dma(), vq.device_dma());
        vq.set_notifier(std::make_unique<Answer>(this));
        std::byte* block = memory_.carve(virtio::ControlQueue::command_bytes);
        auto c = virtio::ControlQueue::create(std::move(vq), {block, memory_.dma_of(block), 256}, "0000:00:05.0");
        EXPECT_TRUE(c.ok());
        return std::move(c).value();
    }

    // The device answers on the doorbell with `ack` and `length`.
    struct Answer final : virtio::QueueNotifier {
        ControlQueueTest* t;
        explicit Answer(ControlQueueTest* test) : t(test) {}
        void notify() override {
            if (!t->answer_) return;
            auto c = t->device_->pop();
            ASSERT_TRUE(c);
            t->seen_ = *c;
            *t->device_->at(c->buffers.back().addr, 1) = std::byte{t->ack_};
            t->device_->push_used(c->head, t->length_);
        }
    };

    test::TestMemory memory_;
    std::unique_ptr<test::DeviceQueue> device_;
    bool answer_ = true;
    std::uint8_t ack_ = virtio::ctrl::ok;
    std::uint32_t length_ = 1;
    test::DeviceQueue::Chain seen_;
};

TEST_F(ControlQueueTest, CommandIsHeaderDataAck) {
    virtio::ControlQueue c = make();
    const std::array<std::uint8_t, 2> pairs{4, 0};
    ASSERT_TRUE(c.send(virtio::ctrl::class_mq, virtio::ctrl::mq_vq_pairs_set, pairs, 100ms).ok());
    ASSERT_EQ(seen_.buffers.size(), 3u);
    EXPECT_EQ(seen_.buffers[0].length, 2u);
    EXPECT_FALSE(seen_.buffers[0].writable);
    const std::byte* header = device_->at(seen_.buffers[0].addr, 2);
    EXPECT_EQ(header[0], std::byte{virtio::ctrl::class_mq});
    EXPECT_EQ(header[1], std::byte{virtio::ctrl::mq_vq_pairs_set});
    EXPECT_EQ(seen_.buffers[1].length, 2u);
    EXPECT_EQ(*device_->at(seen_.buffers[1].addr, 1), std::byte{4});
    EXPECT_EQ(seen_.buffers[2].length, 1u);
    EXPECT_TRUE(seen_.buffers[2].writable);
    // And again: descriptors came back.
    EXPECT_TRUE(c.send(virtio::ctrl::class_rx, virtio::ctrl::rx_promisc, std::array<std::uint8_t, 1>{1}, 100ms).ok());
}

TEST_F(ControlQueueTest, RefusalsAndLiesAreErrors) {
    virtio::ControlQueue c = make();
    const std::array<std::uint8_t, 1> on{1};
    ack_ = virtio::ctrl::err;
    auto refused = c.send(virtio::ctrl::class_rx, virtio::ctrl::rx_promisc, on, 100ms);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), EIO);
    EXPECT_NE(refused.error().message().find("VIRTIO_NET_CTRL_RX_PROMISC"), std::string::npos);
    ack_ = 7;
    auto odd = c.send(virtio::ctrl::class_rx, virtio::ctrl::rx_promisc, on, 100ms);
    ASSERT_FALSE(odd.ok());
    EXPECT_EQ(odd.error().code(), EPROTO);
    ack_ = virtio::ctrl::ok;
    length_ = 4096;
    auto long_ack = c.send(virtio::ctrl::class_rx, virtio::ctrl::rx_promisc, on, 100ms);
    ASSERT_FALSE(long_ack.ok());
    EXPECT_EQ(long_ack.error().code(), EPROTO);
    length_ = 1;
    EXPECT_TRUE(c.send(virtio::ctrl::class_rx, virtio::ctrl::rx_promisc, on, 100ms).ok());
    std::array<std::uint8_t, 65> big{};
    EXPECT_EQ(c.send(virtio::ctrl::class_rx, virtio::ctrl::rx_promisc, big, 100ms).error().code(), EINVAL);
}

TEST_F(ControlQueueTest, NoAnswerTimesOutAndTheQueueRefusesMore) {
    virtio::ControlQueue c = make();
    answer_ = false;
    const std::array<std::uint8_t, 1> on{1};
    auto late = c.send(virtio::ctrl::class_rx, virtio::ctrl::rx_promisc, on, 20ms);
    ASSERT_FALSE(late.ok());
    EXPECT_EQ(late.error().code(), ETIMEDOUT);
    EXPECT_NE(late.error().message().find("0000:00:05.0"), std::string::npos);
    auto busy = c.send(virtio::ctrl::class_rx, virtio::ctrl::rx_promisc, on, 20ms);
    ASSERT_FALSE(busy.ok());
    EXPECT_EQ(busy.error().code(), EBUSY);
    c.release();  // after a device reset
    answer_ = true;
    device_ = std::make_unique<test::DeviceQueue>(memory_, 16, c.virtqueue().desc_dma(), c.virtqueue().driver_dma(),
                                                  c.virtqueue().device_dma());
    EXPECT_TRUE(c.send(virtio::ctrl::class_rx, virtio::ctrl::rx_promisc, on, 100ms).ok());
}

}  // namespace
}  // namespace dmakit::net
