#include <dmakit/drivers/nvme/log_pages.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace dmakit::nvme {
namespace {

template <typename T>
void put(std::array<std::byte, 512>& b, std::size_t off, T v) {
    std::memcpy(b.data() + off, &v, sizeof v);
}

TEST(SmartLog, DecodesTheFieldsAtTheirSpecOffsets) {
    std::array<std::byte, 512> b{};
    put<std::uint8_t>(b, 0, 0x04);
    put<std::uint16_t>(b, 1, 323);  // 50 C
    put<std::uint8_t>(b, 3, 100);
    put<std::uint8_t>(b, 4, 10);
    put<std::uint8_t>(b, 5, 3);
    put<std::uint64_t>(b, 32, 1111);
    put<std::uint64_t>(b, 48, 2222);
    put<std::uint64_t>(b, 64, 3333);
    put<std::uint64_t>(b, 80, 4444);
    put<std::uint64_t>(b, 128, 17);
    put<std::uint64_t>(b, 144, 2);
    put<std::uint64_t>(b, 160, 9);
    put<std::uint16_t>(b, 202, 310);
    const SmartLog s = parse_smart_log(b).value();
    EXPECT_EQ(s.critical_warning, 0x04);
    EXPECT_EQ(s.temperature_celsius(), 50);
    EXPECT_EQ(s.available_spare, 100);
    EXPECT_EQ(s.available_spare_threshold, 10);
    EXPECT_EQ(s.percentage_used, 3);
    EXPECT_EQ(s.data_units_read, 1111u);
    EXPECT_EQ(s.data_units_written, 2222u);
    EXPECT_EQ(s.host_read_commands, 3333u);
    EXPECT_EQ(s.host_write_commands, 4444u);
    EXPECT_EQ(s.power_on_hours, 17u);
    EXPECT_EQ(s.unsafe_shutdowns, 2u);
    EXPECT_EQ(s.media_errors, 9u);
    EXPECT_EQ(s.temperature_sensors[1], 310);
    EXPECT_FALSE(s.saturated);
}

TEST(SmartLog, HugeCountersSaturateInsteadOfWrapping) {
    std::array<std::byte, 512> b{};
    put<std::uint16_t>(b, 1, 300);
    put<std::uint64_t>(b, 64, 5);
    put<std::uint64_t>(b, 72, 1);  // high half of host read commands
    const SmartLog s = parse_smart_log(b).value();
    EXPECT_TRUE(s.saturated);
    EXPECT_EQ(s.host_read_commands, ~std::uint64_t{0});
}

TEST(SmartLog, RejectsShortBuffersAndAnEmptyLog) {
    std::array<std::byte, 512> b{};
    EXPECT_EQ(parse_smart_log(std::span<const std::byte>(b).first(511)).error().code(), EINVAL);
    EXPECT_EQ(parse_smart_log(b).error().code(), EIO);  // temperature 0 K
}

TEST(ErrorLog, KeepsNonEmptyEntriesAndRejectsPartialOnes) {
    std::array<std::byte, 512> raw{};
    std::array<std::byte, 512>& b = raw;
    put<std::uint64_t>(b, 64, 7);        // second entry: error count 7
    put<std::uint16_t>(b, 64 + 8, 1);    // SQID
    put<std::uint16_t>(b, 64 + 10, 0x42);
    put<std::uint16_t>(b, 64 + 12, 0x80 << 1);
    put<std::uint64_t>(b, 64 + 16, 123456);
    put<std::uint32_t>(b, 64 + 24, 1);
    auto log = parse_error_log(std::span<const std::byte>(b).first(128));
    ASSERT_TRUE(log.ok());
    ASSERT_EQ(log->size(), 1u);
    EXPECT_EQ((*log)[0].error_count, 7u);
    EXPECT_EQ((*log)[0].cid, 0x42);
    EXPECT_EQ((*log)[0].lba, 123456u);
    EXPECT_EQ((*log)[0].nsid, 1u);
    EXPECT_EQ(parse_error_log(std::span<const std::byte>(b).first(100)).error().code(), EINVAL);
}

}  // namespace
}  // namespace dmakit::nvme
