// virtio-net bring-up (drivers/net/virtio/device_init, pci_structures,
// pci_transport, the PCI ID check) over a fake device and synthetic config
// space: the happy path in the order virtio 1.2 §3.1.1 gives, and every
// refusal a clear error naming the device and what to change.
#include "fake_virtio_device.hpp"
#include "test_memory.hpp"

#include <dmakit/drivers/net/virtio/device_init.hpp>
#include <dmakit/drivers/net/virtio/pci_structures.hpp>
#include <dmakit/drivers/net/virtio/pci_transport.hpp>
#include <dmakit/drivers/net/virtio/spec.hpp>
#include <dmakit/drivers/net/virtio/virtio.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

namespace dmakit::net {
namespace {

using namespace std::chrono_literals;
using virtio::feature::bit;
namespace feature = virtio::feature;
namespace status = virtio::status;

constexpr const char* kDev = "0000:00:05.0";

bool mentions(const Error& e, std::string_view text) { return e.message().find(text) != std::string::npos; }

class VirtioInitTest : public ::testing::Test {
protected:
    VirtioInitTest() : memory_(4 << 20) {}
    test::FakeVirtioDevice device(test::FakeVirtioDevice::Behaviour b = {}) { return test::FakeVirtioDevice(memory_, b); }
    test::TestMemory memory_;
};

TEST_F(VirtioInitTest, BringUpFollowsTheSpecOrder) {
    auto dev = device();
    ASSERT_TRUE(virtio::begin_initialization(dev, 10ms, kDev).ok());
    EXPECT_EQ(dev.status_log(), (std::vector<std::uint8_t>{0, status::acknowledge,
                                                          status::acknowledge | status::driver}));
    const std::uint64_t offered = virtio::read_device_features(dev);
    EXPECT_EQ(offered, dev.behaviour().features);
    auto chosen = virtio::choose_features(offered, {}, kDev);
    ASSERT_TRUE(chosen.ok());
    EXPECT_EQ(*chosen, bit(feature::version_1) | bit(feature::access_platform) | bit(feature::net_mac) |
                           bit(feature::net_status) | bit(feature::net_ctrl_vq) | bit(feature::net_ctrl_rx));
    EXPECT_FALSE(*chosen & bit(feature::net_mrg_rxbuf)) << "one buffer per frame: MRG_RXBUF stays off";
    EXPECT_FALSE(*chosen & bit(feature::ring_event_idx));
    ASSERT_TRUE(virtio::negotiate_features(dev, *chosen, kDev).ok());
    EXPECT_EQ(dev.driver_features(), *chosen);
    EXPECT_TRUE(dev.status() & status::features_ok);

    auto config = virtio::read_net_config(dev, *chosen, kDev);
    ASSERT_TRUE(config.ok());
    EXPECT_EQ(config->mac.to_string(), "52:54:00:12:34:56");
    EXPECT_EQ(config->status & virtio::net_config::status_link_up, virtio::net_config::status_link_up);
    EXPECT_EQ(config->max_queue_pairs, 1);

    auto max = virtio::queue_max_size(dev, 0, kDev);
    ASSERT_TRUE(max.ok());
    EXPECT_EQ(*max, 256u);
    virtio::QueueSetup setup;
    setup.index = 0;
    setup.size = 128;
    setup.desc = 0x4000'0000;
    setup.driver = 0x4000'0800;
    setup.device = 0x4000'0a00;
    auto bell = virtio::setup_queue(dev, setup, kDev);
    ASSERT_TRUE(bell.ok()) << bell.error();
    EXPECT_EQ(dev.queue_size(0), 128u);
    EXPECT_EQ(dev.queue_vector(0), virtio::no_vector);
    ASSERT_NE(dev.ring(0), nullptr) << "queue enabled";
    (*bell)->notify();
    EXPECT_EQ(dev.notifications(0), 1u);
    virtio::set_driver_ok(dev);
    EXPECT_EQ(dev.status(), status::acknowledge | status::driver | status::features_ok | status::driver_ok);
}

TEST_F(VirtioInitTest, LegacyDeviceIsRefusedWithWhatToChange) {
    auto e = virtio::choose_features(bit(feature::access_platform) | bit(feature::net_mac), {}, kDev);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code(), EINVAL);
    EXPECT_TRUE(mentions(e.error(), kDev));
    EXPECT_TRUE(mentions(e.error(), "VIRTIO_F_VERSION_1"));
    EXPECT_TRUE(mentions(e.error(), "disable-legacy=on,iommu_platform=on")) << e.error();
}

TEST_F(VirtioInitTest, DeviceWithoutAccessPlatformIsRefused) {
    auto e = virtio::choose_features(bit(feature::version_1) | bit(feature::net_mac), {}, kDev);
    ASSERT_FALSE(e.ok());
    EXPECT_TRUE(mentions(e.error(), "VIRTIO_F_ACCESS_PLATFORM"));
    EXPECT_TRUE(mentions(e.error(), "IOMMU"));
    EXPECT_TRUE(mentions(e.error(), "iommu_platform=on"));
    EXPECT_TRUE(mentions(e.error(), kDev));
}

TEST_F(VirtioInitTest, MoreQueuePairsThanOfferedIsAClearError) {
    const std::uint64_t base = bit(feature::version_1) | bit(feature::access_platform) | bit(feature::net_ctrl_vq);
    auto no_mq = virtio::choose_features(base, {4}, kDev);
    ASSERT_FALSE(no_mq.ok());
    EXPECT_TRUE(mentions(no_mq.error(), "asked for 4 queue pairs"));
    EXPECT_TRUE(mentions(no_mq.error(), "mq=on,vectors=10"));
    // MQ without a control queue cannot be used either (§5.1.3.1).
    EXPECT_FALSE(virtio::choose_features(bit(feature::version_1) | bit(feature::access_platform) |
                                             bit(feature::net_mq), {2}, kDev).ok());
    auto with_mq = virtio::choose_features(base | bit(feature::net_mq), {4}, kDev);
    ASSERT_TRUE(with_mq.ok());
    EXPECT_TRUE(*with_mq & bit(feature::net_mq));
    // One pair: MQ is left off even when offered.
    auto one = virtio::choose_features(base | bit(feature::net_mq), {1}, kDev);
    ASSERT_TRUE(one.ok());
    EXPECT_FALSE(*one & bit(feature::net_mq));
    EXPECT_FALSE(virtio::choose_features(base, {0}, kDev).ok());
}

TEST_F(VirtioInitTest, MaxQueuePairsComesFromTheConfigWithMq) {
    test::FakeVirtioDevice::Behaviour b;
    b.features |= bit(feature::net_mq);
    b.max_pairs = 4;
    auto dev = device(b);
    ASSERT_TRUE(virtio::begin_initialization(dev, 10ms, kDev).ok());
    auto chosen = virtio::choose_features(virtio::read_device_features(dev), {2}, kDev);
    ASSERT_TRUE(chosen.ok());
    ASSERT_TRUE(virtio::negotiate_features(dev, *chosen, kDev).ok());
    auto config = virtio::read_net_config(dev, *chosen, kDev);
    ASSERT_TRUE(config.ok());
    EXPECT_EQ(config->max_queue_pairs, 4);
}

TEST_F(VirtioInitTest, StuckInResetTimesOut) {
    test::FakeVirtioDevice::Behaviour b;
    b.stuck_in_reset = true;
    auto dev = device(b);
    dev.write8(virtio::common::device_status, status::acknowledge);
    auto s = virtio::begin_initialization(dev, 5ms, kDev);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ETIMEDOUT);
    EXPECT_TRUE(mentions(s.error(), "stuck in reset"));
    EXPECT_TRUE(mentions(s.error(), kDev));
    EXPECT_EQ(dev.status_log().back(), 0) << "nothing written after the failed reset";
}

TEST_F(VirtioInitTest, GoneDeviceIsNamed) {
    test::FakeVirtioDevice::Behaviour b;
    b.gone = true;
    auto dev = device(b);
    auto s = virtio::begin_initialization(dev, 5ms, kDev);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ENODEV);
}

TEST_F(VirtioInitTest, RefusedFeaturesFailTheDevice) {
    test::FakeVirtioDevice::Behaviour b;
    b.refuse_features = true;
    auto dev = device(b);
    ASSERT_TRUE(virtio::begin_initialization(dev, 10ms, kDev).ok());
    auto chosen = virtio::choose_features(virtio::read_device_features(dev), {}, kDev);
    ASSERT_TRUE(chosen.ok());
    auto s = virtio::negotiate_features(dev, *chosen, kDev);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), EPROTO);
    EXPECT_TRUE(mentions(s.error(), "FEATURES_OK"));
    EXPECT_TRUE(dev.status() & status::failed);
}

TEST_F(VirtioInitTest, MissingQueueAndRefusedVectorAndBadDoorbell) {
    test::FakeVirtioDevice::Behaviour b;
    b.msix_vectors = 2;
    b.notify_off_limit = 1;
    auto dev = device(b);
    ASSERT_TRUE(virtio::begin_initialization(dev, 10ms, kDev).ok());
    auto none = virtio::queue_max_size(dev, 9, kDev);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code(), ENODEV);
    EXPECT_TRUE(mentions(none.error(), "virtqueue 9"));

    virtio::QueueSetup setup;
    setup.index = 0;
    setup.size = 64;
    setup.msix_vector = 5;  // the device has 2
    auto refused = virtio::setup_queue(dev, setup, kDev);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), EIO);
    EXPECT_TRUE(mentions(refused.error(), "vectors=2N+2"));
    setup.msix_vector = 1;
    EXPECT_TRUE(virtio::setup_queue(dev, setup, kDev).ok());
    EXPECT_EQ(dev.queue_vector(0), 1);

    setup.index = 1;  // its queue_notify_off (1) is past what the fake's notify structure allows
    setup.msix_vector = virtio::no_vector;
    auto bad_bell = virtio::setup_queue(dev, setup, kDev);
    ASSERT_FALSE(bad_bell.ok());
    EXPECT_EQ(bad_bell.error().code(), EPROTO);
    EXPECT_EQ(dev.ring(1), nullptr) << "a queue without a doorbell is never enabled";

    EXPECT_FALSE(virtio::set_config_vector(dev, 7, kDev).ok());
    EXPECT_TRUE(virtio::set_config_vector(dev, virtio::no_vector, kDev).ok());
}

TEST(VirtioPciId, OnlyModernVirtioNet) {
    EXPECT_TRUE(virtio::check_pci_id({0x1AF4, 0x1041}, kDev).ok());
    auto transitional = virtio::check_pci_id({0x1AF4, 0x1000}, kDev);
    ASSERT_FALSE(transitional.ok());
    EXPECT_TRUE(mentions(transitional.error(), "transitional"));
    EXPECT_TRUE(mentions(transitional.error(), "disable-legacy=on"));
    EXPECT_TRUE(mentions(transitional.error(), kDev));
    EXPECT_FALSE(virtio::check_pci_id({0x8086, 0x10D3}, kDev).ok());
    EXPECT_FALSE(virtio::check_pci_id({0x1AF4, 0x1042}, kDev).ok());  // virtio-blk
}

// ------------------------------------------------------ config space ----

// Config space with a capability list built entry by entry.
class ConfigSpace {
public:
    ConfigSpace() : bytes_(256, 0) {
        bytes_[0x06] = 0x10;  // Status: capabilities list
    }
    // A virtio_pci_cap (and a notify multiplier when cap_len >= 20).
    ConfigSpace& virtio_cap(std::uint8_t type, std::uint8_t bar, std::uint32_t offset, std::uint32_t length,
                            std::uint8_t cap_len = 16, std::uint32_t multiplier = 4) {
        const std::size_t at = next_;
        link(at);
        bytes_[at] = 0x09;
        bytes_[at + 2] = cap_len;
        bytes_[at + 3] = type;
        bytes_[at + 4] = bar;
        std::memcpy(&bytes_[at + 8], &offset, 4);
        std::memcpy(&bytes_[at + 12], &length, 4);
        if (cap_len >= 20) std::memcpy(&bytes_[at + 16], &multiplier, 4);
        next_ += cap_len >= 20 ? 20 : 16;
        return *this;
    }
    // What QEMU's virtio-net-pci,disable-legacy=on presents: BAR4, 16 KiB.
    static ConfigSpace qemu() {
        ConfigSpace c;
        c.virtio_cap(virtio::pci_cap::common_cfg, 4, 0x0000, 0x1000)
            .virtio_cap(virtio::pci_cap::isr_cfg, 4, 0x1000, 0x1000)
            .virtio_cap(virtio::pci_cap::device_cfg, 4, 0x2000, 0x1000)
            .virtio_cap(virtio::pci_cap::notify_cfg, 4, 0x3000, 0x1000, 20, 4);
        return c;
    }
    [[nodiscard]] std::span<const std::uint8_t> bytes() const { return bytes_; }

private:
    void link(std::size_t at) {
        if (last_ == 0) bytes_[0x34] = static_cast<std::uint8_t>(at);
        else bytes_[last_ + 1] = static_cast<std::uint8_t>(at);
        last_ = at;
    }
    std::vector<std::uint8_t> bytes_;
    std::size_t next_ = 0x40;
    std::size_t last_ = 0;
};

// BAR 4 mapped, 16 KiB; nothing else.
const virtio::MappedCheck kBar4 = [](std::uint8_t bar, std::uint64_t offset, std::uint64_t length) {
    return bar == 4 && offset <= 0x4000 && length <= 0x4000 - offset;
};

TEST(VirtioPciStructures, FindsQemusLayout) {
    auto found = virtio::find_structures(ConfigSpace::qemu().bytes());
    ASSERT_TRUE(found.ok()) << found.error();
    ASSERT_EQ(found->common.size(), 1u);
    ASSERT_EQ(found->notify.size(), 1u);
    EXPECT_EQ(found->notify[0].notify_off_multiplier, 4u);
    auto chosen = virtio::choose_structures(*found, kBar4, kDev);
    ASSERT_TRUE(chosen.ok()) << chosen.error();
    EXPECT_EQ(chosen->common, (virtio::StructureLocation{4, 0, 0x1000}));
    EXPECT_EQ(chosen->device, (virtio::StructureLocation{4, 0x2000, 0x1000}));
    EXPECT_EQ(chosen->notify.where, (virtio::StructureLocation{4, 0x3000, 0x1000}));
}

TEST(VirtioPciStructures, HostileCapabilitiesAreSkipped) {
    ConfigSpace c;
    c.virtio_cap(virtio::pci_cap::common_cfg, 4, 0x3ff0, 0x1000)       // runs past the BAR
        .virtio_cap(virtio::pci_cap::common_cfg, 4, 0xFFFFFFF0, 0x100) // offset + length overflows
        .virtio_cap(virtio::pci_cap::common_cfg, 9, 0, 0x1000)         // reserved BAR: ignored
        .virtio_cap(virtio::pci_cap::common_cfg, 4, 0, 0x10)           // shorter than its fields
        .virtio_cap(virtio::pci_cap::common_cfg, 2, 0, 0x1000)         // a BAR that is not mapped
        .virtio_cap(virtio::pci_cap::common_cfg, 4, 0x0100, 0x100)     // usable: this one
        .virtio_cap(virtio::pci_cap::notify_cfg, 4, 0x3000, 0x1000)    // cap_len 16: no multiplier
        .virtio_cap(virtio::pci_cap::notify_cfg, 4, 0x3001, 0x100, 20) // odd offset
        .virtio_cap(virtio::pci_cap::notify_cfg, 4, 0x3000, 0x100, 20)
        .virtio_cap(virtio::pci_cap::device_cfg, 4, 0x2000, 0x100, 8); // too short to be a virtio_pci_cap
    c.virtio_cap(virtio::pci_cap::device_cfg, 4, 0x2000, 0x100);
    auto found = virtio::find_structures(c.bytes());
    ASSERT_TRUE(found.ok()) << found.error();
    EXPECT_EQ(found->common.size(), 5u) << "the reserved BAR one is dropped at once";
    auto chosen = virtio::choose_structures(*found, kBar4, kDev);
    ASSERT_TRUE(chosen.ok()) << chosen.error();
    EXPECT_EQ(chosen->common, (virtio::StructureLocation{4, 0x100, 0x100}));
    EXPECT_EQ(chosen->notify.where.offset, 0x3000u);
    EXPECT_EQ(chosen->notify.where.length, 0x100u);
}

TEST(VirtioPciStructures, MissingStructuresAreNamed) {
    ConfigSpace c;
    c.virtio_cap(virtio::pci_cap::common_cfg, 4, 0, 0x1000).virtio_cap(virtio::pci_cap::device_cfg, 4, 0x2000, 0x10);
    auto found = virtio::find_structures(c.bytes());
    ASSERT_TRUE(found.ok());
    auto chosen = virtio::choose_structures(*found, kBar4, kDev);
    ASSERT_FALSE(chosen.ok());
    EXPECT_EQ(chosen.error().code(), ENODEV);
    EXPECT_TRUE(mentions(chosen.error(), "notification structure"));
    EXPECT_TRUE(mentions(chosen.error(), kDev));
    EXPECT_TRUE(mentions(chosen.error(), "disable-legacy=on"));
    // A legacy-only device: no vendor capabilities at all.
    ConfigSpace legacy;
    auto nothing = virtio::find_structures(legacy.bytes());
    ASSERT_TRUE(nothing.ok());
    EXPECT_FALSE(virtio::choose_structures(*nothing, kBar4, kDev).ok());
}

TEST(VirtioPciStructures, MalformedListIsRefused) {
    ConfigSpace c = ConfigSpace::qemu();
    std::vector<std::uint8_t> bytes(c.bytes().begin(), c.bytes().end());
    bytes[0x41] = 0x40;  // first capability points at itself: a loop
    auto found = virtio::find_structures(bytes);
    ASSERT_FALSE(found.ok());
    EXPECT_EQ(found.error().code(), EPROTO);
}

TEST(VirtioPciTransport, DoorbellsAndConfigReadsStayInsideTheirStructures) {
    alignas(64) static std::array<std::byte, 0x4000> bar{};
    std::array<volatile std::byte*, 6> bars{};
    bars[4] = bar.data();
    virtio::ChosenStructures chosen;
    chosen.common = {4, 0, 0x1000};
    chosen.device = {4, 0x2000, 12};
    chosen.notify = {{4, 0x3000, 0x10}, 4};
    virtio::PciTransport t(chosen, bars, kDev);

    t.write16(virtio::common::queue_select, 0x1234);
    std::uint16_t v;
    std::memcpy(&v, &bar[virtio::common::queue_select], 2);
    EXPECT_EQ(v, 0x1234);
    t.write64(virtio::common::queue_desc, 0x1122334455667788ull);
    std::uint64_t desc;
    std::memcpy(&desc, &bar[virtio::common::queue_desc], 8);
    EXPECT_EQ(desc, 0x1122334455667788ull);

    bar[0x2000 + 6] = std::byte{1};
    auto status = t.device_read16(6);
    ASSERT_TRUE(status.ok());
    EXPECT_EQ(*status, 1);
    auto past = t.device_read16(11);
    ASSERT_FALSE(past.ok());
    EXPECT_EQ(past.error().code(), EPROTO);
    EXPECT_FALSE(t.device_read8(12).ok());

    auto bell = t.notifier(3, 3);  // 3 * 4 + 2 <= 16
    ASSERT_TRUE(bell.ok());
    (*bell)->notify();
    std::memcpy(&v, &bar[0x3000 + 12], 2);
    EXPECT_EQ(v, 3);
    auto outside = t.notifier(4, 4);  // 4 * 4 + 2 > 16
    ASSERT_FALSE(outside.ok());
    EXPECT_EQ(outside.error().code(), EPROTO);
    EXPECT_TRUE(mentions(outside.error(), "§4.1.4.4"));
}

}  // namespace
}  // namespace dmakit::net
