// MacAddress::parse reads exactly what to_string writes (either case) and
// refuses everything else with EINVAL, naming the text: `pktgen --dst` and
// `fwd --dst` take it from the command line.
#include <dmakit/drivers/net/nic.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <string>

namespace dmakit::net {
namespace {

TEST(MacAddressParse, ReadsWhatToStringWrites) {
    auto mac = MacAddress::parse("02:00:5e:10:fF:A9");
    ASSERT_TRUE(mac.ok()) << mac.error().message();
    EXPECT_EQ(mac->bytes, (std::array<std::uint8_t, 6>{0x02, 0x00, 0x5e, 0x10, 0xff, 0xa9}));
    EXPECT_EQ(mac->to_string(), "02:00:5e:10:ff:a9");
    auto broadcast = MacAddress::parse("ff:ff:ff:ff:ff:ff");
    ASSERT_TRUE(broadcast.ok());
    EXPECT_EQ(*broadcast, MacAddress::broadcast());
    EXPECT_TRUE(broadcast->is_multicast());
}

TEST(MacAddressParse, RefusesAnythingElseNamingTheText) {
    for (const char* text : {"", "02:00:00:00:00", "02:00:00:00:00:01:", "02:00:00:00:00:001", "2:0:0:0:0:1",
                             "02-00-00-00-00-01", "02:00:00:00:00:0g", "0x:00:00:00:00:01", "02:00:00:00:00:01 ",
                             " 02:00:00:00:00:01", "020000000001", "02::00:00:00:00:1"}) {
        auto mac = MacAddress::parse(text);
        ASSERT_FALSE(mac.ok()) << "'" << text << "' was taken";
        EXPECT_EQ(mac.error().code(), EINVAL);
        std::string quoted = "'";  // appended: GCC 12 -O3 -Wrestrict misfires on "'" + std::string
        quoted.append(text).append("'");
        EXPECT_NE(mac.error().message().find(quoted), std::string::npos) << mac.error().message();
        EXPECT_NE(mac.error().message().find("e.g. 02:00:00:00:00:01"), std::string::npos);
    }
}

}  // namespace
}  // namespace dmakit::net
