#include <dmakit/drivers/nvme/doorbells.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>

namespace dmakit::nvme {
namespace {

TEST(Doorbells, WritesAtStridedOffsets) {
    alignas(4096) static std::array<std::uint32_t, 0x2000 / 4> bar{};  // 8 KiB "BAR0" in plain memory
    auto in_bar = [](std::uint64_t offset, std::uint64_t length) { return offset + length <= sizeof bar; };
    MmioDoorbells db(bar.data(), mapped_doorbells(2, 1, in_bar).value());  // stride 8 bytes
    db.ring_sq_tail(17);
    db.ring_cq_head(9);
    EXPECT_EQ(bar[(0x1000 + 4 * 8) / 4], 17u);
    EXPECT_EQ(bar[(0x1000 + 5 * 8) / 4], 9u);
    EXPECT_EQ(mapped_doorbells(300, 1, in_bar).error().code(), ERANGE);
}

// VFIO can leave holes in a BAR's mmap (the MSI-X table): a doorbell in a
// hole is refused even though it is inside the BAR.
TEST(Doorbells, RefusedInAHoleOfTheMapping) {
    auto hole_at_cq0 = [](std::uint64_t offset, std::uint64_t length) {
        return offset + length <= 0x4000 && !(offset < 0x1008 && offset + length > 0x1004);
    };
    auto e = mapped_doorbells(0, 0, hole_at_cq0);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code(), ERANGE);
    EXPECT_NE(e.error().message().find("0x1004"), std::string::npos) << e.error();
    EXPECT_TRUE(mapped_doorbells(1, 0, hole_at_cq0).ok());
}

}  // namespace
}  // namespace dmakit::nvme
