#include <dmakit/drivers/net/driver_registry.hpp>
#include <dmakit/drivers/net/e1000e/e1000e.hpp>
#include <dmakit/drivers/net/nic_open_context.hpp>

#include <gtest/gtest.h>

#include <array>

namespace dmakit::net {
namespace {

class StubNic : public Nic {
public:
    std::string_view driver_name() const noexcept override { return "stub"; }
    std::size_t queue_count() const noexcept override { return 1; }
    Result<LinkStatus> link() override { return LinkStatus{true, 1000, Duplex::full}; }
    MacAddress mac_address() const override { return {}; }
    Status set_promiscuous(bool) override { return {}; }
    Result<NicStats> stats() override { return NicStats{}; }

private:
    std::size_t receive(std::size_t, std::span<PacketBuffer*>) override { return 0; }
    std::size_t transmit(std::size_t, std::span<PacketBuffer* const>) override { return 0; }
};

Result<std::unique_ptr<Nic>> open_stub(NicOpenContext& context) {
    if (context.rx_queues != 1) return Error(EINVAL, "stub: one queue only");
    return std::unique_ptr<Nic>(std::make_unique<StubNic>());
}

TEST(NicDriverRegistry, BuiltinsClaimThe82574) {
    NicDriverRegistry registry;
    ASSERT_TRUE(register_builtin_drivers(registry).ok());
    auto e = registry.find({0x8086, 0x10d3});
    ASSERT_TRUE(e.ok()) << e.error();
    EXPECT_EQ((*e)->name, "e1000e");
    EXPECT_EQ(*e, &e1000e::driver);
    // The factory is wired to the VFIO glue: with no VFIO to be found it
    // fails with the layer's error (the VM tests open real ports).
    NicOpenContext context;
    context.dma_options.paths.dev_vfio = "/nonexistent/dev/vfio";
    context.dma_options.paths.sysfs = "/nonexistent/sys";
    auto nic = registry.open({0x8086, 0x10d3}, context);
    ASSERT_FALSE(nic.ok());
    EXPECT_NE(nic.error().code(), ENOSYS);
    EXPECT_NE(nic.error().message().find("0000:00:00.0"), std::string::npos) << nic.error();
}

TEST(NicDriverRegistry, UnknownIdListsWhatIsSupported) {
    NicDriverRegistry registry;
    ASSERT_TRUE(register_builtin_drivers(registry).ok());
    auto e = registry.find({0x8086, 0x1234});
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code(), ENODEV);
    EXPECT_NE(e.error().message().find("8086:1234"), std::string::npos);
    EXPECT_NE(e.error().message().find("8086:10d3 (e1000e)"), std::string::npos) << e.error();

    NicDriverRegistry empty;
    auto none = empty.find({0x8086, 0x10d3});
    ASSERT_FALSE(none.ok());
    EXPECT_NE(none.error().message().find("register_builtin_drivers"), std::string::npos);
}

constexpr std::array<PciId, 1> stub_ids{{{0x1af4, 0x1041}}};
constexpr NicDriver stub_driver{"stub", stub_ids, &open_stub};

TEST(NicDriverRegistry, DuplicatesAndIncompleteDriversAreRefused) {
    NicDriverRegistry registry;
    ASSERT_TRUE(registry.add(stub_driver).ok());
    // Another driver claiming one ID already taken: nothing of it is added.
    constexpr std::array<PciId, 2> overlapping{{{0x1af4, 0x1000}, {0x1af4, 0x1041}}};
    const NicDriver other{"other", overlapping, &open_stub};
    const Status dup = registry.add(other);
    ASSERT_FALSE(dup.ok());
    EXPECT_EQ(dup.error().code(), EEXIST);
    EXPECT_NE(dup.error().message().find("stub"), std::string::npos) << dup.error();
    EXPECT_FALSE(registry.find({0x1af4, 0x1000}).ok());
    EXPECT_EQ(registry.add(NicDriver{"null", stub_ids, nullptr}).error().code(), EINVAL);
    EXPECT_EQ(registry.add(NicDriver{"no-ids", {}, &open_stub}).error().code(), EINVAL);
    EXPECT_EQ(registry.add(NicDriver{"", stub_ids, &open_stub}).error().code(), EINVAL);
}

TEST(NicDriverRegistry, TheBuildTableListsEveryDriverOnce) {
    // The table meson generates from net_drivers: each driver once, each ID
    // claimed by one driver (register_builtin_drivers would refuse otherwise).
    const auto drivers = builtin_nic_drivers();
    ASSERT_FALSE(drivers.empty());
    NicDriverRegistry registry;
    EXPECT_TRUE(register_builtin_drivers(registry).ok());
    EXPECT_EQ(registry.drivers().size(), drivers.size());
    for (const DisabledNicDriver& d : disabled_nic_drivers()) {
        EXPECT_FALSE(d.reason.empty()) << d.name << " is left out without a reason";
        for (const NicDriver* built : drivers) EXPECT_NE(built->name, d.name);
    }
}

TEST(NicDriverRegistry, OpenCallsTheFactoryAndRegistriesAreIndependent) {
    NicDriverRegistry a;
    NicDriverRegistry b;
    ASSERT_TRUE(a.add(stub_driver).ok());
    NicOpenContext context;
    auto nic = a.open({0x1af4, 0x1041}, context);
    ASSERT_TRUE(nic.ok());
    EXPECT_EQ((*nic)->driver_name(), "stub");
    EXPECT_FALSE(b.open({0x1af4, 0x1041}, context).ok());
    context.rx_queues = 2;
    EXPECT_EQ(a.open({0x1af4, 0x1041}, context).error().code(), EINVAL);
}

TEST(MacAddress, FormatsAndClassifies) {
    MacAddress m{{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
    EXPECT_EQ(m.to_string(), "52:54:00:12:34:56");
    EXPECT_TRUE(m.is_valid_unicast());
    EXPECT_FALSE(MacAddress{}.is_valid_unicast());
    EXPECT_FALSE(MacAddress::broadcast().is_valid_unicast());
}

}  // namespace
}  // namespace dmakit::net
