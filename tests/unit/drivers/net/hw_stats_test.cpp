#include "fake_registers.hpp"

#include <dmakit/drivers/net/e1000e/hw_stats.hpp>
#include <dmakit/drivers/net/e1000e/regs.hpp>

#include <gtest/gtest.h>

namespace dmakit::net {
namespace {

namespace reg = e1000e::reg;

struct StatsDevice {
    test::FakeRegisters regs;
    StatsDevice() {
        for (const auto& s : e1000e::stat_registers()) {
            regs.clear_on_read(s.low);
            if (s.high != 0) regs.clear_on_read(s.high);
        }
    }
};

TEST(HwStats, FoldsClearOnReadCountersIntoSixtyFourBits) {
    StatsDevice dev;
    e1000e::HwStats stats;
    dev.regs.at(reg::GPRC) = 10;
    dev.regs.at(reg::MPC) = 2;
    ASSERT_TRUE(stats.fold(dev.regs).ok());
    EXPECT_EQ(dev.regs.at(reg::GPRC), 0u);  // the read cleared it
    dev.regs.at(reg::GPRC) = 5;
    ASSERT_TRUE(stats.fold(dev.regs).ok());
    EXPECT_EQ(stats.value("gprc"), 15u);
    EXPECT_EQ(stats.value("mpc"), 2u);
    ASSERT_TRUE(stats.fold(dev.regs).ok());  // nothing new: no double counting
    EXPECT_EQ(stats.value("gprc"), 15u);

    // Totals grow past 32 bits over many folds.
    for (int i = 0; i < 3; ++i) {
        dev.regs.at(reg::GPTC) = 0xF0000000u;
        ASSERT_TRUE(stats.fold(dev.regs).ok());
    }
    EXPECT_EQ(stats.value("gptc"), 3ull * 0xF0000000u);
}

TEST(HwStats, SixtyFourBitPairsReadLowThenHigh) {
    StatsDevice dev;
    e1000e::HwStats stats;
    dev.regs.at(reg::GORCL) = 0xFFFFFFF0u;
    dev.regs.at(reg::GORCH) = 1;
    ASSERT_TRUE(stats.fold(dev.regs).ok());
    EXPECT_EQ(stats.value("gorc"), 0x1FFFFFFF0ull);
    const long low = dev.regs.first(false, reg::GORCL);
    const long high = dev.regs.first(false, reg::GORCH);
    ASSERT_GE(low, 0);
    EXPECT_LT(low, high);
    dev.regs.at(reg::GORCL) = 0x20;
    ASSERT_TRUE(stats.fold(dev.regs).ok());
    EXPECT_EQ(stats.value("gorc"), 0x200000010ull);
}

TEST(HwStats, DeviceGoneLeavesTotalsUnchanged) {
    StatsDevice dev;
    e1000e::HwStats stats;
    dev.regs.at(reg::GPRC) = 7;
    ASSERT_TRUE(stats.fold(dev.regs).ok());

    dev.regs.at(reg::GPRC) = 0xFFFFFFFFu;
    dev.regs.at(reg::STATUS) = 0xFFFFFFFFu;
    const Status s = stats.fold(dev.regs);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ENODEV);
    EXPECT_EQ(stats.value("gprc"), 7u);

    // Gone half way through: STATUS fine before, all ones after.
    StatsDevice dev2;
    int status_reads = 0;
    dev2.regs.on_read(reg::STATUS, [&](std::uint32_t&) { return status_reads++ == 0 ? 0u : 0xFFFFFFFFu; });
    dev2.regs.at(reg::GPRC) = 0xFFFFFFFFu;
    e1000e::HwStats stats2;
    EXPECT_FALSE(stats2.fold(dev2.regs).ok());
    EXPECT_EQ(stats2.value("gprc"), 0u);
}

TEST(HwStats, CountersMapToTheNicView) {
    StatsDevice dev;
    e1000e::HwStats stats;
    dev.regs.at(reg::GPRC) = 1;
    dev.regs.at(reg::GPTC) = 2;
    dev.regs.at(reg::GORCL) = 64;
    dev.regs.at(reg::GOTCL) = 128;
    dev.regs.at(reg::MPC) = 3;
    dev.regs.at(reg::CRCERRS) = 4;
    dev.regs.at(reg::RLEC) = 5;
    ASSERT_TRUE(stats.fold(dev.regs).ok());
    const DeviceCounters c = stats.counters();
    EXPECT_EQ(c.rx_good_packets, 1u);
    EXPECT_EQ(c.tx_good_packets, 2u);
    EXPECT_EQ(c.rx_good_octets, 64u);
    EXPECT_EQ(c.tx_good_octets, 128u);
    EXPECT_EQ(c.rx_missed, 3u);
    EXPECT_EQ(c.rx_errors, 9u);
    EXPECT_EQ(c.all.size(), e1000e::stat_register_count);
    stats.reset();
    EXPECT_EQ(stats.value("gprc"), 0u);
    EXPECT_EQ(stats.value("no-such-counter"), 0u);
}

}  // namespace
}  // namespace dmakit::net
