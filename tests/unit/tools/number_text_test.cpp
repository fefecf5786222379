// The one number parser behind every program's options and the sysfs readers.
#include <dmakit/support/number_text.hpp>

#include <gtest/gtest.h>

#include <cstdint>

namespace dmakit {
namespace {

TEST(NumberText, IntegersAreWholeAndInRangeOfTheType) {
    EXPECT_EQ(parse_integer<std::uint64_t>("18446744073709551615"), UINT64_MAX);
    EXPECT_EQ(parse_integer<std::uint64_t>("18446744073709551616"), std::nullopt);
    EXPECT_EQ(parse_integer<std::uint64_t>("-1"), std::nullopt);
    EXPECT_EQ(parse_integer<int>("-1"), -1);
    EXPECT_EQ(parse_integer<int>("2147483648"), std::nullopt);
    EXPECT_EQ(parse_integer<unsigned>("1f", 16), 0x1fu);
    for (const char* bad : {"", " 1", "1 ", "+1", "1x", "0x10", "nan"}) {
        EXPECT_EQ(parse_integer<unsigned>(bad), std::nullopt) << "'" << bad << "'";
    }
}

TEST(NumberText, RealsMustBeFinite) {
    EXPECT_EQ(parse_real("0.5"), 0.5);
    EXPECT_EQ(parse_real("1e3"), 1000.0);
    EXPECT_EQ(parse_real("-2"), -2.0);
    for (const char* bad : {"nan", "NAN", "-nan", "inf", "-inf", "infinity", "1e400", "-1e400", "", "1.5s",
                            " 1", "0x1p3"}) {
        EXPECT_EQ(parse_real(bad), std::nullopt) << "'" << bad << "'";
    }
}

TEST(NumberText, ByteSizesTakeBinarySuffixesWithoutOverflow) {
    EXPECT_EQ(parse_byte_size("4k"), 4096u);
    EXPECT_EQ(parse_byte_size("2M"), 2u << 20);
    EXPECT_EQ(parse_byte_size("1g"), 1u << 30);
    EXPECT_EQ(parse_byte_size("17179869184G"), std::nullopt);  // 2^34 GiB = 2^64 bytes
    EXPECT_EQ(parse_byte_size("k"), std::nullopt);
    EXPECT_EQ(parse_byte_size("4kk"), std::nullopt);
    EXPECT_EQ(parse_byte_size("-4k"), std::nullopt);
}

TEST(NumberText, OptionNumbersSayWhatIsWanted) {
    auto time = parse_option_number<double>("-t", "nan", 0.1, 1e6);
    ASSERT_FALSE(time.ok());
    EXPECT_EQ(time.error().code(), EINVAL);
    EXPECT_EQ(time.error().message(), "-t wants a number from 0.1 to 1e+06, got 'nan'");
    EXPECT_FALSE(parse_option_number<double>("-t", "0.05", 0.1, 1e6).ok());
    EXPECT_EQ(*parse_option_number<double>("-t", "2.5", 0.1, 1e6), 2.5);
    auto depth = parse_option_number<std::uint64_t>("-q", "8k", 1, 4096, true);
    ASSERT_FALSE(depth.ok());
    EXPECT_EQ(depth.error().message(), "-q wants a number from 1 to 4096 (k, m, g suffixes allowed), got '8k'");
    EXPECT_EQ(*parse_option_number<std::uint64_t>("-o", "4k", 512, 1 << 20, true), 4096u);
    EXPECT_FALSE(parse_option_number<std::uint64_t>("-n", "4k", 0, UINT64_MAX).ok());  // no suffix
    EXPECT_FALSE(parse_option_number<int>("--node", "-1", 0, 1023).ok());
}

}  // namespace
}  // namespace dmakit
