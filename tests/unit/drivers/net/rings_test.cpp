#include "device_model.hpp"
#include "fake_registers.hpp"
#include "test_memory.hpp"

#include <dmakit/drivers/net/e1000e/device_init.hpp>
#include <dmakit/drivers/net/e1000e/regs.hpp>
#include <dmakit/drivers/net/e1000e/rings.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <vector>

namespace dmakit::net {
namespace {

using e1000e::RxRing;
using e1000e::TxRing;
namespace reg = e1000e::reg;
namespace rxd = e1000e::rxd;

std::vector<std::byte> make_frame(std::uint32_t seq, std::size_t length) {
    std::vector<std::byte> f(length);
    for (std::size_t i = 0; i < length; ++i) f[i] = static_cast<std::byte>((seq * 31 + i) & 0xFF);
    std::memcpy(f.data(), &seq, sizeof seq);
    return f;
}

class RingTest : public ::testing::Test {
protected:
    static constexpr std::uint32_t kRing = 64;

    RingTest() : memory_(16 << 20), model_(regs_, memory_) {
        pool_ = test::make_pool(memory_, 512);
        rx_mem_ = memory_.carve(kRing * 16);
        tx_mem_ = memory_.carve(kRing * 16);
        e1000e::configure_rx(regs_, {{memory_.dma_of(rx_mem_), kRing}, false});
        e1000e::configure_tx(regs_, {memory_.dma_of(tx_mem_), kRing});
    }

    RxRing make_rx() {
        auto r = RxRing::create({rx_mem_, memory_.dma_of(rx_mem_), kRing * 16}, regs_,
                                {.size = kRing, .buffer_size = 2048, .queue = 0});
        EXPECT_TRUE(r.ok());
        return std::move(r).value();
    }
    TxRing make_tx(std::uint32_t rs_interval) {
        auto r = TxRing::create({tx_mem_, memory_.dma_of(tx_mem_), kRing * 16}, regs_,
                                {.size = kRing, .queue = 0, .rs_interval = rs_interval});
        EXPECT_TRUE(r.ok());
        return std::move(r).value();
    }
    // What a driver's rx path does: top the ring up from the pool.
    void refill(RxRing& rx) {
        std::vector<PacketBuffer*> fresh(rx.wanted());
        fresh.resize(pool_->alloc_burst(fresh));
        const std::size_t taken = rx.refill(fresh);
        ASSERT_TRUE(pool_->free_burst(std::span(fresh).subspan(taken)).ok());
    }
    void release(RxRing& rx) {
        std::vector<PacketBuffer*> held;
        rx.release_buffers(held);
        ASSERT_TRUE(pool_->free_burst(held).ok());
    }

    test::TestMemory memory_;
    test::FakeRegisters regs_;
    test::DeviceModel model_;
    std::unique_ptr<PacketPool> pool_;
    std::byte* rx_mem_;
    std::byte* tx_mem_;
};

TEST_F(RingTest, RxRefillHarvestWrapsManyTimesInOrder) {
    RxRing rx = make_rx();
    refill(rx);
    EXPECT_EQ(rx.posted(), kRing - 1);  // one slot always empty: head == tail means empty
    EXPECT_EQ(regs_.at(reg::RDT0), kRing - 1);

    std::uint32_t next_sent = 0, next_seen = 0;
    std::size_t refills = 0;
    regs_.clear_log();
    while (next_seen < 10'000) {
        // The device delivers a burst of up to 20 frames of varying length.
        for (int i = 0; i < 20 && model_.deliver(make_frame(next_sent, 60 + next_sent % 1400)); ++i) {
            ++next_sent;
        }
        PacketBuffer* got[32];
        const std::size_t n = rx.harvest(got);
        for (std::size_t i = 0; i < n; ++i, ++next_seen) {
            const auto expect = make_frame(next_seen, 60 + next_seen % 1400);
            ASSERT_EQ(got[i]->length, expect.size());
            ASSERT_EQ(std::memcmp(got[i]->data(), expect.data(), expect.size()), 0) << next_seen;
        }
        ASSERT_TRUE(pool_->free_burst(std::span(got, n)).ok());
        refill(rx);
        ++refills;
    }
    EXPECT_EQ(rx.stats().packets, 10'000u);
    EXPECT_EQ(rx.stats().dropped(), 0u);
    EXPECT_EQ(model_.faults(), 0u);
    // Tail updates are batched: at most one RDT write per refill call.
    EXPECT_LE(regs_.writes_to(reg::RDT0), refills);
    release(rx);
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(RingTest, TxEnqueueReclaimWrapsManyTimes) {
    for (std::uint32_t rs : {1u, 8u, 32u}) {
        SCOPED_TRACE(rs);
        TxRing tx = make_tx(rs);
        const std::size_t sent_before = model_.sent().size();
        std::uint32_t seq = 0;
        std::size_t calls = 0;
        regs_.clear_log();
        while (seq < 10'000) {
            PacketBuffer* burst[24];
            const std::size_t n = pool_->alloc_burst(burst);
            ASSERT_EQ(n, 24u);
            for (std::size_t i = 0; i < n; ++i) {
                const auto f = make_frame(seq + static_cast<std::uint32_t>(i), 60 + i * 50);
                std::memcpy(burst[i]->data(), f.data(), f.size());
                burst[i]->length = static_cast<std::uint32_t>(f.size());
            }
            std::size_t done = 0;
            while (done < n) {
                const std::size_t took = tx.enqueue(std::span(burst).subspan(done, n - done));
                done += took;
                calls += took != 0 ? 1 : 0;
                PacketBuffer* back[64];
                const std::size_t r = tx.reclaim(back);
                ASSERT_TRUE(pool_->free_burst(std::span(back, r)).ok());
            }
            seq += static_cast<std::uint32_t>(n);
        }
        PacketBuffer* back[64];
        for (std::size_t r; (r = tx.reclaim(back)) != 0;) ASSERT_TRUE(pool_->free_burst(std::span(back, r)).ok());
        EXPECT_EQ(tx.in_flight(), 0u);
        EXPECT_EQ(pool_->in_use(), 0u);
        ASSERT_EQ(model_.sent().size() - sent_before, seq);
        for (std::uint32_t i = 0; i < seq; i += 997) {
            const auto& f = model_.sent()[sent_before + i];
            std::uint32_t got;
            std::memcpy(&got, f.data(), sizeof got);
            EXPECT_EQ(got, i);
        }
        EXPECT_EQ(regs_.writes_to(reg::TDT0), calls);  // one TDT write per call that took packets
        EXPECT_EQ(tx.stats().spurious_done, 0u);
        // Next ring starts where the device's head is.
        regs_.at(reg::TDH0) = 0;
        regs_.at(reg::TDT0) = 0;
    }
}

TEST_F(RingTest, TxFullRingPushesBackAndLosesNothing) {
    TxRing tx = make_tx(8);
    model_.pause_tx();  // device stops consuming
    std::vector<PacketBuffer*> pkts(200);
    ASSERT_EQ(pool_->alloc_burst(pkts), 200u);
    for (auto* p : pkts) p->length = 60;

    std::size_t taken = tx.enqueue(pkts);
    EXPECT_EQ(taken, kRing - 1);
    EXPECT_EQ(tx.enqueue(std::span(pkts).subspan(taken)), 0u);  // full: nothing taken
    EXPECT_GE(tx.stats().ring_full, 2u);
    PacketBuffer* back[64];
    EXPECT_EQ(tx.reclaim(back), 0u);  // nothing completed yet

    // Device resumes; drain everything with back-pressure honoured.
    model_.resume_tx();
    while (taken < pkts.size()) {
        const std::size_t r = tx.reclaim(back);
        ASSERT_TRUE(pool_->free_burst(std::span(back, r)).ok());
        taken += tx.enqueue(std::span(pkts).subspan(taken));
    }
    for (std::size_t r; (r = tx.reclaim(back)) != 0;) ASSERT_TRUE(pool_->free_burst(std::span(back, r)).ok());
    EXPECT_EQ(model_.sent().size(), 200u);
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(RingTest, TxRefusesInvalidPacketAndKeepsOrder) {
    TxRing tx = make_tx(4);
    PacketBuffer* p[3];
    ASSERT_EQ(pool_->alloc_burst(p), 3u);
    p[0]->length = 60;
    p[1]->length = 0;  // nothing to send
    p[2]->length = 60;
    EXPECT_EQ(tx.enqueue(p), 1u);
    EXPECT_EQ(tx.stats().invalid_packets, 1u);
    p[1]->length = 4000;  // above max_frame
    EXPECT_EQ(tx.enqueue(std::span(p).subspan(1)), 0u);
    EXPECT_EQ(tx.stats().invalid_packets, 2u);
    PacketBuffer* back[4];
    EXPECT_EQ(tx.reclaim(back), 1u);
    EXPECT_EQ(back[0], p[0]);
    ASSERT_TRUE(pool_->free_burst(p).ok());
}

TEST_F(RingTest, RxLengthLargerThanBufferIsDroppedAndBufferReused) {
    RxRing rx = make_rx();
    refill(rx);
    const std::size_t out_before = pool_->in_use();
    ASSERT_TRUE(model_.deliver_raw(4000, rxd::DD | rxd::EOP, 0));  // > 2048 buffer
    ASSERT_TRUE(model_.deliver_raw(0, rxd::DD | rxd::EOP, 0));     // empty
    ASSERT_TRUE(model_.deliver(make_frame(7, 100)));
    PacketBuffer* got[8];
    ASSERT_EQ(rx.harvest(got), 1u);
    EXPECT_EQ(got[0]->length, 100u);
    EXPECT_EQ(rx.stats().length_errors, 2u);
    ASSERT_TRUE(pool_->free_burst(std::span(got, 1)).ok());
    // The two dropped buffers go straight back to the device: only one fresh one needed.
    EXPECT_EQ(rx.wanted(), 1u);
    refill(rx);
    EXPECT_EQ(rx.posted(), kRing - 1);
    EXPECT_EQ(pool_->in_use(), out_before);
    release(rx);
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(RingTest, RxMultiDescriptorAndErrorFramesAreDropped) {
    RxRing rx = make_rx();
    refill(rx);
    ASSERT_TRUE(model_.deliver_raw(2048, rxd::DD, 0));             // first half, no EOP
    ASSERT_TRUE(model_.deliver_raw(500, rxd::DD | rxd::EOP, 0));   // its tail
    ASSERT_TRUE(model_.deliver_raw(64, rxd::DD | rxd::EOP, rxd::ERR_CE));  // CRC error
    ASSERT_TRUE(model_.deliver(make_frame(1, 64)));
    PacketBuffer* got[8];
    ASSERT_EQ(rx.harvest(got), 1u);
    std::uint32_t seq;
    std::memcpy(&seq, got[0]->data(), sizeof seq);
    EXPECT_EQ(seq, 1u);
    EXPECT_EQ(rx.stats().fragmented, 1u);
    EXPECT_EQ(rx.stats().frame_errors, 1u);
    EXPECT_EQ(rx.stats().packets, 1u);
    ASSERT_TRUE(pool_->free_burst(std::span(got, 1)).ok());
    release(rx);
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(RingTest, RxDoneBitOnSlotNotHandedOutIsNotFollowed) {
    RxRing rx = make_rx();
    std::vector<PacketBuffer*> fresh(10);
    ASSERT_EQ(pool_->alloc_burst(fresh), 10u);
    ASSERT_EQ(rx.refill(fresh), 10u);  // slots 0..9 handed out
    model_.inject_rx_dd(10);          // slot 10 was never given to the device
    model_.inject_rx_dd(40);
    for (std::uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(model_.deliver(make_frame(i, 60)));
    EXPECT_FALSE(model_.deliver(make_frame(99, 60)));  // device sees no free descriptor
    PacketBuffer* got[32];
    EXPECT_EQ(rx.harvest(got), 10u);  // not 11: slot 10 is ignored
    EXPECT_EQ(rx.harvest(std::span(got + 10, 22)), 0u);
    ASSERT_TRUE(pool_->free_burst(std::span(got, 10)).ok());
    refill(rx);  // hands slots 10.. out: the stray DDs are seen and counted
    EXPECT_EQ(rx.stats().spurious_done, 2u);
    EXPECT_EQ(rx.stats().packets, 10u);
    release(rx);
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(RingTest, RxBufferIdentityComesFromDriverNotDescriptor) {
    RxRing rx = make_rx();
    std::vector<PacketBuffer*> fresh(2);
    ASSERT_EQ(pool_->alloc_burst(fresh), 2u);
    ASSERT_EQ(rx.refill(fresh), 2u);
    // A hostile device rewrites the address field to point at the other buffer.
    ASSERT_TRUE(model_.deliver_raw(60, rxd::DD | rxd::EOP, 0, fresh[1]->data_dma()));
    PacketBuffer* got[2];
    ASSERT_EQ(rx.harvest(got), 1u);
    EXPECT_EQ(got[0], fresh[0]);
    ASSERT_TRUE(pool_->free_burst(std::span(got, 1)).ok());
    release(rx);
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(RingTest, TxDoneBitOutsideCompletedGroupsIsNotFollowed) {
    TxRing tx = make_tx(8);
    model_.pause_tx();
    PacketBuffer* p[8];
    ASSERT_EQ(pool_->alloc_burst(p), 8u);
    for (auto* b : p) b->length = 60;
    ASSERT_EQ(tx.enqueue(p), 8u);
    model_.inject_tx_dd(3);   // in flight, but not the RS descriptor of its group
    model_.inject_tx_dd(20);  // never handed out
    PacketBuffer* back[16];
    EXPECT_EQ(tx.reclaim(back), 0u);
    model_.resume_tx();
    EXPECT_EQ(tx.reclaim(back), 8u);
    ASSERT_TRUE(pool_->free_burst(std::span(back, 8)).ok());
    // Filling the ring reaches slot 20: the stray DD is counted there.
    std::vector<PacketBuffer*> more(kRing - 1);
    ASSERT_EQ(pool_->alloc_burst(more), more.size());
    for (auto* b : more) b->length = 60;
    EXPECT_EQ(tx.enqueue(more), more.size());
    EXPECT_EQ(tx.stats().spurious_done, 2u);  // slot 3 (reused) and slot 20
    std::size_t r;
    while ((r = tx.reclaim(back)) != 0) ASSERT_TRUE(pool_->free_burst(std::span(back, r)).ok());
    EXPECT_EQ(pool_->in_use(), 0u);
}

TEST_F(RingTest, CreateRejectsBadGeometry) {
    EXPECT_EQ(RxRing::create({rx_mem_, memory_.dma_of(rx_mem_), 64 * 16}, regs_, {.size = 48}).error().code(), EINVAL);
    EXPECT_EQ(RxRing::create({rx_mem_, memory_.dma_of(rx_mem_), 16 * 16}, regs_, {.size = 64}).error().code(), EINVAL);
    EXPECT_EQ(RxRing::create({rx_mem_ + 8, memory_.dma_of(rx_mem_) + 8, 64 * 16}, regs_, {.size = 8}).error().code(), EINVAL);
    EXPECT_EQ(TxRing::create({tx_mem_, memory_.dma_of(tx_mem_), 64 * 16}, regs_, {.size = 64, .rs_interval = 0}).error().code(), EINVAL);
}

TEST_F(RingTest, RxRefillRefusesBufferSmallerThanDeviceWrites) {
    auto small_pool = test::make_pool(memory_, 4, 1024);
    RxRing rx = make_rx();
    PacketBuffer* b[1];
    ASSERT_EQ(small_pool->alloc_burst(b), 1u);
    EXPECT_EQ(rx.refill(b), 0u);  // 1024 - 128 < 2048: the device would overrun it
    EXPECT_EQ(rx.posted(), 0u);
    ASSERT_TRUE(small_pool->free_burst(b).ok());
}

}  // namespace
}  // namespace dmakit::net
