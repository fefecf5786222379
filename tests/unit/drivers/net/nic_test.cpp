// The Nic interface checks queue indexes itself, in every build, before a
// driver sees them (the e1000e driver used to assert: abort in debug builds,
// silently queue 0 in release builds).
#include <dmakit/drivers/net/nic.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <string>

namespace dmakit::net {
namespace {

using namespace std::chrono_literals;

// Two queues; records what reaches the driver.
class CountingNic final : public Nic {
public:
    std::string_view driver_name() const noexcept override { return "counting"; }
    std::size_t queue_count() const noexcept override { return 2; }
    Result<LinkStatus> link() override { return LinkStatus{}; }
    MacAddress mac_address() const override { return {}; }
    Status set_promiscuous(bool) override { return {}; }
    Result<NicStats> stats() override { return NicStats{}; }

    std::size_t driver_calls = 0;
    std::size_t last_queue = 99;

private:
    std::size_t receive(std::size_t queue, std::span<PacketBuffer*> out) override {
        ++driver_calls;
        last_queue = queue;
        return out.size();
    }
    std::size_t transmit(std::size_t queue, std::span<PacketBuffer* const> pkts) override {
        ++driver_calls;
        last_queue = queue;
        return pkts.size();
    }
    Result<bool> wait_for_work(std::size_t queue, std::chrono::milliseconds) override {
        ++driver_calls;
        last_queue = queue;
        return true;
    }
};

TEST(Nic, ValidQueuesReachTheDriver) {
    CountingNic nic;
    std::array<PacketBuffer*, 3> bufs{};
    EXPECT_EQ(nic.rx_burst(1, bufs).value(), 3u);
    EXPECT_EQ(nic.last_queue, 1u);
    EXPECT_EQ(nic.tx_burst(0, bufs).value(), 3u);
    EXPECT_EQ(nic.last_queue, 0u);
    EXPECT_TRUE(nic.wait(1, 1ms).value());
    EXPECT_EQ(nic.driver_calls, 3u);
}

TEST(Nic, BadQueueIsAnErrorAndNeverReachesTheDriver) {
    CountingNic nic;
    std::array<PacketBuffer*, 3> bufs{};
    for (std::size_t queue : {std::size_t{2}, std::size_t{7}, ~std::size_t{0}}) {
        auto rx = nic.rx_burst(queue, bufs);
        ASSERT_FALSE(rx.ok());
        EXPECT_EQ(rx.error().code(), EINVAL);
        EXPECT_NE(rx.error().message().find("queue " + std::to_string(queue)), std::string::npos)
            << rx.error();
        EXPECT_NE(rx.error().message().find("0..1"), std::string::npos) << rx.error();
        auto tx = nic.tx_burst(queue, bufs);
        ASSERT_FALSE(tx.ok());
        EXPECT_EQ(tx.error().code(), EINVAL);
        auto w = nic.wait(queue, 1ms);
        ASSERT_FALSE(w.ok());
        EXPECT_EQ(w.error().code(), EINVAL);
    }
    EXPECT_EQ(nic.driver_calls, 0u);
}

}  // namespace
}  // namespace dmakit::net
