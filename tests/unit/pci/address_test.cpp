#include <dmakit/pci/address.hpp>

#include <gtest/gtest.h>

#include <cerrno>

namespace dmakit::pci {
namespace {

TEST(PciAddress, ParsesFullForm) {
    auto a = PciAddress::parse("0000:00:04.0");
    ASSERT_TRUE(a.ok()) << a.error();
    EXPECT_EQ(a->domain, 0u);
    EXPECT_EQ(a->bus, 0);
    EXPECT_EQ(a->device, 4);
    EXPECT_EQ(a->function, 0);

    auto b = PciAddress::parse("10000:Af:1F.7");  // VMD-style wide domain, uppercase hex
    ASSERT_TRUE(b.ok()) << b.error();
    EXPECT_EQ(b->domain, 0x10000u);
    EXPECT_EQ(b->bus, 0xaf);
    EXPECT_EQ(b->device, 0x1f);
    EXPECT_EQ(b->function, 7);
}

TEST(PciAddress, ParsesShortFormAsDomainZero) {
    auto a = PciAddress::parse("3b:00.1");
    ASSERT_TRUE(a.ok()) << a.error();
    EXPECT_EQ(*a, (PciAddress{0, 0x3b, 0, 1}));
    EXPECT_EQ(a->to_string(), "0000:3b:00.1");
}

TEST(PciAddress, FormatsAndRoundTrips) {
    for (const char* text : {"0000:00:00.0", "0000:ff:1f.7", "0001:3b:00.1", "10000:00:02.0"}) {
        auto a = PciAddress::parse(text);
        ASSERT_TRUE(a.ok()) << text << ": " << a.error();
        EXPECT_EQ(a->to_string(), text);
        EXPECT_EQ(*PciAddress::parse(a->to_string()), *a);
    }
}

TEST(PciAddress, OrdersByDomainBusDeviceFunction) {
    EXPECT_LT((PciAddress{0, 0, 4, 0}), (PciAddress{0, 0, 4, 1}));
    EXPECT_LT((PciAddress{0, 0, 4, 7}), (PciAddress{0, 0, 5, 0}));
    EXPECT_LT((PciAddress{0, 0, 31, 7}), (PciAddress{0, 1, 0, 0}));
    EXPECT_LT((PciAddress{0, 255, 31, 7}), (PciAddress{1, 0, 0, 0}));
    EXPECT_NE((PciAddress{0, 0, 4, 0}), (PciAddress{0, 0, 4, 1}));
}

class BadAddress : public ::testing::TestWithParam<const char*> {};

TEST_P(BadAddress, IsEinvalQuotingInputAndExpectedForm) {
    const std::string input = GetParam();
    auto a = PciAddress::parse(input);
    ASSERT_FALSE(a.ok()) << "accepted '" << input << "'";
    EXPECT_EQ(a.error().code(), EINVAL);
    EXPECT_NE(a.error().message().find("'" + input + "'"), std::string::npos) << a.error();
    EXPECT_NE(a.error().message().find("0000:00:04.0"), std::string::npos) << a.error();
}

INSTANTIATE_TEST_SUITE_P(Malformed, BadAddress,
                         ::testing::Values("", "0000:0g:00.0", "1:2:3", "0000:00:20.0", "00:20.0",
                                           "0000:00:04.8", "0000:00:04.0x", "0000:00:04.0 ",
                                           " 0000:00:04.0", "0000:00:04", "000:00:04.0",
                                           "000000000:00:04.0", "0000:000:04.0", "0000:00:4.0",
                                           "0000:00:04.", "0000:00:04.00", ":00:04.0",
                                           "0000:00:00:04.0", "0000-00-04.0", "0000:00.04:0",
                                           "+000:00:04.0", "0000:00:04.f"));

TEST(PciAddress, RangeErrorsSayWhichField) {
    auto dev = PciAddress::parse("0000:00:20.0");
    ASSERT_FALSE(dev.ok());
    EXPECT_NE(dev.error().message().find("device must be 00-1f"), std::string::npos)
        << dev.error();
    auto fn = PciAddress::parse("0000:00:04.8");
    ASSERT_FALSE(fn.ok());
    EXPECT_NE(fn.error().message().find("function must be 0-7"), std::string::npos)
        << fn.error();
}

}  // namespace
}  // namespace dmakit::pci
