#include <nvme/doorbells.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>

namespace dmakit::nvme {
namespace {

TEST(Doorbells, WritesAtStridedOffsets) {
    alignas(4096) static std::array<std::uint32_t, 0x2000 / 4> bar{};  // 8 KiB "BAR0" in plain memory
    auto db = MmioDoorbells::create(bar.data(), sizeof bar, 2, 1).value();  // stride 8 bytes
    db.ring_sq_tail(17);
    db.ring_cq_head(9);
    EXPECT_EQ(bar[(0x1000 + 4 * 8) / 4], 17u);
    EXPECT_EQ(bar[(0x1000 + 5 * 8) / 4], 9u);
    EXPECT_EQ(MmioDoorbells::create(bar.data(), sizeof bar, 300, 1).error().code(), ERANGE);
}

}  // namespace
}  // namespace dmakit::nvme
