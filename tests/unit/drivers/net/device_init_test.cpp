#include "fake_registers.hpp"

#include <dmakit/drivers/net/e1000e/bring_up.hpp>
#include <dmakit/drivers/net/e1000e/device_init.hpp>
#include <dmakit/drivers/net/e1000e/regs.hpp>

#include <gtest/gtest.h>

#include <chrono>

namespace dmakit::net {
namespace {

namespace reg = e1000e::reg;
namespace bits = e1000e::bits;
using std::chrono::microseconds;

// A register file that behaves like the 82574 around reset: CTRL.RST
// self-clears after `reset_reads` reads of CTRL, EECD reports the NVM
// auto-read done, EERD answers from `nvm`.
struct Fake82574 {
    test::FakeRegisters regs;
    int reset_reads = 3;       // -1: never clears
    int ctrl_reads_left = 0;
    std::uint16_t nvm[64] = {};
    bool eerd_answers = true;
    microseconds slept{0};
    e1000e::Sleeper sleeper = [this](microseconds d) { slept += d; };

    Fake82574() {
        regs.at(reg::STATUS) = bits::STATUS_LU | bits::STATUS_FD | (2u << bits::STATUS_SPEED_SHIFT);
        regs.at(reg::EECD) = bits::EECD_PRES | bits::EECD_AUTO_RD;
        regs.on_write(reg::CTRL, [this](std::uint32_t& s, std::uint32_t v) {
            s = v;
            if ((v & bits::CTRL_RST) != 0) ctrl_reads_left = reset_reads;
        });
        regs.on_read(reg::CTRL, [this](std::uint32_t& s) {
            if ((s & bits::CTRL_RST) != 0 && reset_reads >= 0 && ctrl_reads_left-- <= 0) s &= ~bits::CTRL_RST;
            return s;
        });
        regs.on_write(reg::EERD, [this](std::uint32_t& s, std::uint32_t v) {
            const std::uint32_t addr = (v >> bits::EERD_ADDR_SHIFT) & 0x3FFF;
            s = eerd_answers && (v & bits::EERD_START) != 0 && addr < 64
                    ? bits::EERD_DONE | (addr << 2) | (std::uint32_t{nvm[addr]} << 16)
                    : 0;
        });
    }
    void set_ral_mac(std::uint32_t ral, std::uint32_t rah) {
        regs.at(reg::RAL0) = ral;
        regs.at(reg::RAH0) = rah;
    }
};

TEST(DeviceInit, ResetMasksInterruptsAroundGlobalReset) {
    Fake82574 dev;
    ASSERT_TRUE(e1000e::reset(dev.regs, {}, dev.sleeper).ok());
    const auto& log = dev.regs.log();
    const long imc1 = dev.regs.first(true, reg::IMC);
    const long rst = dev.regs.first(true, reg::CTRL);
    const long imc2 = dev.regs.first(true, reg::IMC, static_cast<std::size_t>(rst));
    ASSERT_GE(imc1, 0);
    ASSERT_GT(rst, imc1);
    ASSERT_GT(imc2, rst);
    EXPECT_EQ(log[static_cast<std::size_t>(imc1)].value, 0xFFFFFFFFu);
    EXPECT_NE(log[static_cast<std::size_t>(rst)].value & bits::CTRL_RST, 0u);
    EXPECT_EQ(log[static_cast<std::size_t>(imc2)].value, 0xFFFFFFFFu);
    EXPECT_EQ(dev.regs.at(reg::CTRL) & bits::CTRL_RST, 0u);
    // RX/TX were stopped before the reset was pulled.
    EXPECT_LT(dev.regs.first(true, reg::RCTL), rst);
    EXPECT_LT(dev.regs.first(true, reg::TCTL), rst);
}

TEST(DeviceInit, ResetThatNeverCompletesTimesOut) {
    Fake82574 dev;
    dev.reset_reads = -1;
    e1000e::Timeouts t;
    t.reset = microseconds{5000};
    t.poll_interval = microseconds{100};
    const Status s = e1000e::reset(dev.regs, t, dev.sleeper);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ETIMEDOUT);
    EXPECT_NE(s.error().message().find("CTRL.RST"), std::string::npos) << s.error();
    // Bounded: the 1 ms settle plus the timeout, no more.
    EXPECT_LE(dev.slept, microseconds{1000} + t.reset + t.poll_interval);
    EXPECT_GE(dev.slept, t.reset);
}

TEST(DeviceInit, MissingNvmAutoReadTimesOut) {
    Fake82574 dev;
    dev.regs.at(reg::EECD) = bits::EECD_PRES;  // AUTO_RD never sets
    const Status s = e1000e::reset(dev.regs, {}, dev.sleeper);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ETIMEDOUT);
    EXPECT_NE(s.error().message().find("AUTO_RD"), std::string::npos);
}

TEST(DeviceInit, DeviceReturningAllOnesIsGone) {
    Fake82574 dev;
    dev.regs.at(reg::STATUS) = 0xFFFFFFFF;
    const Status s = e1000e::reset(dev.regs, {}, dev.sleeper);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ENODEV);
    EXPECT_EQ(dev.regs.writes_to(reg::CTRL), 0u);  // nothing done to a dead device
    EXPECT_EQ(e1000e::read_link(dev.regs).error().code(), ENODEV);

    // Vanishing mid-reset: CTRL turns into all ones while polled.
    Fake82574 dev2;
    dev2.regs.on_read(reg::CTRL, [](std::uint32_t&) { return 0xFFFFFFFFu; });
    const Status s2 = e1000e::reset(dev2.regs, {}, dev2.sleeper);
    ASSERT_FALSE(s2.ok());
    EXPECT_EQ(s2.error().code(), ENODEV);
}

TEST(DeviceInit, MacFromReceiveAddressRegisters) {
    Fake82574 dev;
    dev.set_ral_mac(0x12005452, 0x5634 | bits::RAH_AV);  // 52:54:00:12:34:56
    auto mac = e1000e::read_mac_address(dev.regs, {}, dev.sleeper);
    ASSERT_TRUE(mac.ok()) << mac.error();
    EXPECT_EQ(mac->to_string(), "52:54:00:12:34:56");
    EXPECT_EQ(dev.regs.writes_to(reg::EERD), 0u);
}

TEST(DeviceInit, MacFromNvmWhenReceiveAddressInvalid) {
    Fake82574 dev;
    dev.set_ral_mac(0x12005452, 0x5634);  // AV clear: not to be trusted
    dev.nvm[0] = 0x1102;  // 02:11:22:33:44:55, low byte first
    dev.nvm[1] = 0x3322;
    dev.nvm[2] = 0x5544;
    auto mac = e1000e::read_mac_address(dev.regs, {}, dev.sleeper);
    ASSERT_TRUE(mac.ok()) << mac.error();
    EXPECT_EQ(mac->to_string(), "02:11:22:33:44:55");
    EXPECT_EQ(dev.regs.writes_to(reg::EERD), 3u);
    // Programmed back so the unicast filter matches.
    EXPECT_EQ(dev.regs.at(reg::RAL0), 0x33221102u);
    EXPECT_EQ(dev.regs.at(reg::RAH0), 0x5544u | bits::RAH_AV);
}

TEST(DeviceInit, MacFromNvmWhenReceiveAddressIsZero) {
    Fake82574 dev;
    dev.set_ral_mac(0, bits::RAH_AV);
    dev.nvm[0] = 0x5452;
    dev.nvm[1] = 0x1200;
    dev.nvm[2] = 0x5634;
    auto mac = e1000e::read_mac_address(dev.regs, {}, dev.sleeper);
    ASSERT_TRUE(mac.ok());
    EXPECT_EQ(mac->to_string(), "52:54:00:12:34:56");
}

TEST(DeviceInit, NvmThatNeverAnswersTimesOutAndBlankNvmIsAnError) {
    Fake82574 dev;
    dev.eerd_answers = false;
    auto mac = e1000e::read_mac_address(dev.regs, {}, dev.sleeper);
    ASSERT_FALSE(mac.ok());
    EXPECT_EQ(mac.error().code(), ETIMEDOUT);

    Fake82574 blank;
    auto none = e1000e::read_mac_address(blank.regs, {}, blank.sleeper);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code(), EIO);

    Fake82574 multicast;  // a group address is not a station address
    multicast.set_ral_mac(0x03020101, 0x0504 | bits::RAH_AV);
    multicast.nvm[0] = 0x0201;
    EXPECT_FALSE(e1000e::read_mac_address(multicast.regs, {}, multicast.sleeper).ok());
}

TEST(DeviceInit, ReceiveSetup) {
    Fake82574 dev;
    dev.regs.at(reg::RFCTL) = bits::RFCTL_EXTEN;
    e1000e::configure_rx(dev.regs, {{0x1'2345'6000, 256}, false});
    EXPECT_EQ(dev.regs.at(reg::RDBAL0), 0x23456000u);
    EXPECT_EQ(dev.regs.at(reg::RDBAH0), 0x1u);
    EXPECT_EQ(dev.regs.at(reg::RDLEN0), 256u * 16);
    EXPECT_EQ(dev.regs.at(reg::RDH0), 0u);
    EXPECT_EQ(dev.regs.at(reg::RDT0), 0u);
    EXPECT_EQ(dev.regs.at(reg::RFCTL) & bits::RFCTL_EXTEN, 0u);  // legacy descriptors
    const std::uint32_t rctl = dev.regs.at(reg::RCTL);
    EXPECT_NE(rctl & bits::RCTL_EN, 0u);
    EXPECT_NE(rctl & bits::RCTL_BAM, 0u);
    EXPECT_NE(rctl & bits::RCTL_SECRC, 0u);
    EXPECT_EQ(rctl & (bits::RCTL_BSIZE_MASK | bits::RCTL_BSEX | bits::RCTL_FLXBUF_MASK), 0u);  // 2048
    EXPECT_EQ(rctl & (bits::RCTL_UPE | bits::RCTL_MPE | bits::RCTL_LPE | bits::RCTL_DTYP_MASK), 0u);
    // RCTL.EN is the last write: the ring is programmed before receive starts.
    EXPECT_EQ(dev.regs.log().back().offset, reg::RCTL);

    e1000e::set_promiscuous(dev.regs, true);
    EXPECT_EQ(dev.regs.at(reg::RCTL), rctl | bits::RCTL_UPE | bits::RCTL_MPE);
    e1000e::set_promiscuous(dev.regs, false);
    EXPECT_EQ(dev.regs.at(reg::RCTL), rctl);
}

TEST(DeviceInit, TransmitSetup) {
    Fake82574 dev;
    e1000e::configure_tx(dev.regs, {0x8000, 512});
    EXPECT_EQ(dev.regs.at(reg::TDBAL0), 0x8000u);
    EXPECT_EQ(dev.regs.at(reg::TDLEN0), 512u * 16);
    EXPECT_EQ(dev.regs.at(reg::TIPG), 0x00602008u);
    EXPECT_NE(dev.regs.at(reg::TARC0) & bits::TARC_ENABLE, 0u);
    const std::uint32_t tctl = dev.regs.at(reg::TCTL);
    EXPECT_NE(tctl & bits::TCTL_EN, 0u);
    EXPECT_NE(tctl & bits::TCTL_PSP, 0u);
    EXPECT_EQ((tctl >> 4) & 0xFF, 0x0Fu);
    EXPECT_EQ((tctl >> 12) & 0x3FF, 0x3Fu);
}

TEST(DeviceInit, LinkFromStatus) {
    Fake82574 dev;
    auto link = e1000e::read_link(dev.regs);
    ASSERT_TRUE(link.ok());
    EXPECT_TRUE(link->up);
    EXPECT_EQ(link->speed_mbps, 1000u);
    EXPECT_EQ(link->duplex, Duplex::full);
    dev.regs.at(reg::STATUS) = bits::STATUS_LU | (1u << bits::STATUS_SPEED_SHIFT);
    link = e1000e::read_link(dev.regs);
    EXPECT_EQ(link->speed_mbps, 100u);
    EXPECT_EQ(link->duplex, Duplex::half);
    dev.regs.at(reg::STATUS) = 0;
    EXPECT_FALSE(e1000e::read_link(dev.regs)->up);
}

TEST(DeviceInit, BringUpRunsTheWholeSequence) {
    Fake82574 dev;
    dev.set_ral_mac(0x12005452, 0x5634 | bits::RAH_AV);
    dev.regs.at(reg::MTA0 + 4 * 7) = 0xDEAD;
    dev.regs.at(reg::GPRC) = 42;  // left from before: must not show in the totals
    dev.regs.clear_on_read(reg::GPRC);
    e1000e::HwStats stats;
    e1000e::BringUpConfig config;
    config.rx_ring = {0x10000, 64};
    config.tx_ring = {0x20000, 64};
    auto mac = e1000e::bring_up(dev.regs, config, stats, dev.sleeper);
    ASSERT_TRUE(mac.ok()) << mac.error();
    EXPECT_EQ(mac->to_string(), "52:54:00:12:34:56");
    EXPECT_EQ(dev.regs.at(reg::MTA0 + 4 * 7), 0u);
    EXPECT_EQ(dev.regs.writes_to(reg::MTA0 + 4 * 127), 1u);
    EXPECT_NE(dev.regs.at(reg::CTRL) & bits::CTRL_SLU, 0u);
    EXPECT_NE(dev.regs.at(reg::RCTL) & bits::RCTL_EN, 0u);
    EXPECT_NE(dev.regs.at(reg::TCTL) & bits::TCTL_EN, 0u);
    EXPECT_EQ(dev.regs.at(reg::IMS), 0u);  // polling mode: nothing unmasked
    EXPECT_EQ(stats.value("gprc"), 0u);
    dev.regs.at(reg::GPRC) = 5;
    ASSERT_TRUE(stats.fold(dev.regs).ok());
    EXPECT_EQ(stats.value("gprc"), 5u);
}

TEST(DeviceInit, BringUpStopsAtResetTimeout) {
    Fake82574 dev;
    dev.reset_reads = -1;
    e1000e::HwStats stats;
    e1000e::BringUpConfig config;
    config.timeouts.reset = microseconds{2000};
    auto mac = e1000e::bring_up(dev.regs, config, stats, dev.sleeper);
    ASSERT_FALSE(mac.ok());
    EXPECT_EQ(mac.error().code(), ETIMEDOUT);
    EXPECT_EQ(dev.regs.writes_to(reg::RDBAL0), 0u);
}

}  // namespace
}  // namespace dmakit::net
