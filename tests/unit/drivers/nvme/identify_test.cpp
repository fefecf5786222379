#include <dmakit/drivers/nvme/identify.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace dmakit::nvme {
namespace {

class Buffer {
public:
    Buffer() { bytes_.fill(std::byte{0}); }
    template <typename T>
    Buffer& put(std::size_t offset, T value) {
        std::memcpy(bytes_.data() + offset, &value, sizeof value);
        return *this;
    }
    Buffer& text(std::size_t offset, std::size_t width, std::string_view s) {
        for (std::size_t i = 0; i < width; ++i) bytes_[offset + i] = std::byte(i < s.size() ? s[i] : ' ');
        return *this;
    }
    Buffer& raw(std::size_t offset, const void* p, std::size_t n) {
        std::memcpy(bytes_.data() + offset, p, n);
        return *this;
    }
    [[nodiscard]] IdentifyBuffer view() const { return IdentifyBuffer(bytes_); }

private:
    std::array<std::byte, 4096> bytes_;
};

Buffer qemu_controller() {
    Buffer b;
    b.put<std::uint16_t>(0, 0x1b36).put<std::uint16_t>(2, 0x1af4);
    b.text(4, 20, "deadbeef").text(24, 40, "QEMU NVMe Ctrl").text(64, 8, "7.2.0");
    b.put<std::uint8_t>(77, 7).put<std::uint16_t>(78, 0).put<std::uint32_t>(80, 0x00010400);
    b.put<std::uint16_t>(256, 0x000a).put<std::uint8_t>(258, 3).put<std::uint8_t>(262, 63);
    b.put<std::uint8_t>(512, 0x66).put<std::uint8_t>(513, 0x44).put<std::uint32_t>(516, 256);
    b.put<std::uint16_t>(520, 0x015d).put<std::uint8_t>(525, 0x07);
    b.text(768, 256, "nqn.2019-08.org.qemu:deadbeef");
    return b;
}

TEST(Identify, ControllerFields) {
    const auto c = parse_identify_controller(qemu_controller().view(), 4096).value();
    EXPECT_EQ(c.vid, 0x1b36);
    EXPECT_EQ(c.ssvid, 0x1af4);
    EXPECT_EQ(c.serial, "deadbeef");
    EXPECT_EQ(c.model, "QEMU NVMe Ctrl");
    EXPECT_EQ(c.firmware, "7.2.0");
    EXPECT_EQ(c.version, 0x00010400u);
    EXPECT_EQ(c.nn, 256u);
    EXPECT_EQ(c.sq_entry_size(), 64u);
    EXPECT_EQ(c.cq_entry_size(), 16u);
    EXPECT_TRUE(c.supports_dsm());
    EXPECT_TRUE(c.supports_write_zeroes());
    EXPECT_TRUE(c.supports_compare());
    EXPECT_FALSE(c.supports_write_uncorrectable());
    EXPECT_TRUE(c.volatile_write_cache());
    EXPECT_TRUE(c.supports_format_nvm());
    EXPECT_TRUE(c.supports_ns_management());
    EXPECT_EQ(c.subnqn, "nqn.2019-08.org.qemu:deadbeef");
    ASSERT_TRUE(c.max_transfer_bytes.has_value());
    EXPECT_EQ(*c.max_transfer_bytes, 512u * 1024);  // 2^7 * 4 KiB
    // The same MDTS with 16 KiB minimum pages is 2 MiB.
    EXPECT_EQ(*parse_identify_controller(qemu_controller().view(), 16384)->max_transfer_bytes, 2u << 20);
}

TEST(Identify, MdtsZeroMeansNoLimit) {
    auto b = qemu_controller();
    b.put<std::uint8_t>(77, 0);
    EXPECT_FALSE(parse_identify_controller(b.view(), 4096)->max_transfer_bytes.has_value());
}

TEST(Identify, MdtsOverflowIsRejected) {
    auto b = qemu_controller();
    b.put<std::uint8_t>(77, 20);  // 2^20 * 4 KiB = 4 GiB: the largest accepted
    EXPECT_EQ(*parse_identify_controller(b.view(), 4096)->max_transfer_bytes, 1ull << 32);
    b.put<std::uint8_t>(77, 21);
    const auto r = parse_identify_controller(b.view(), 4096);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), EPROTO);
    EXPECT_NE(r.error().message().find("MDTS=21"), std::string::npos) << r.error();
    b.put<std::uint8_t>(77, 255);
    EXPECT_FALSE(parse_identify_controller(b.view(), 4096).ok());
    EXPECT_FALSE(parse_identify_controller(qemu_controller().view(), 3000).ok());
}

TEST(Identify, EntrySizesAreChecked) {
    for (auto [offset, value, field] : {std::tuple{512, 0x67, "SQES required"}, std::tuple{512, 0x56, "SQES maximum"},
                                        std::tuple{513, 0x45, "CQES required"}, std::tuple{513, 0x34, "CQES maximum"},
                                        std::tuple{512, 0x00, "SQES required"}}) {
        auto b = qemu_controller();
        b.put<std::uint8_t>(static_cast<std::size_t>(offset), static_cast<std::uint8_t>(value));
        const auto r = parse_identify_controller(b.view(), 4096);
        ASSERT_FALSE(r.ok()) << field;
        EXPECT_NE(r.error().message().find(field), std::string::npos) << r.error();
    }
}

TEST(Identify, StringsAreCleaned) {
    auto b = qemu_controller();
    // Escape sequence inside, NUL and control padding at the end.
    const char model[] = "Evil\x1b[2JModel \x01\x00\x00";
    b.text(24, 40, "");
    b.raw(24, model, sizeof model - 1);
    const auto c = parse_identify_controller(b.view(), 4096).value();
    EXPECT_EQ(c.model, "Evil?[2JModel");
    EXPECT_EQ(clean_ascii(std::as_bytes(std::span(std::string_view("   ")))), "");
    EXPECT_EQ(clean_ascii(std::as_bytes(std::span(std::string_view(" a b \xff")))), " a b");
}

// A QEMU-like namespace: 1 GiB of 512-byte blocks, formats 512+0, 512+8, 4096+0, 4096+64.
Buffer qemu_namespace() {
    Buffer b;
    b.put<std::uint64_t>(0, 2097152).put<std::uint64_t>(8, 2097152).put<std::uint64_t>(16, 1000);
    b.put<std::uint8_t>(25, 3).put<std::uint8_t>(26, 0).put<std::uint8_t>(33, 0x09);
    b.put<std::uint32_t>(128, 9u << 16).put<std::uint32_t>(132, 9u << 16 | 8);
    b.put<std::uint32_t>(136, 12u << 16 | 2u << 24).put<std::uint32_t>(140, 12u << 16 | 64);
    b.put<std::uint8_t>(120, 0xee);
    return b;
}

TEST(Identify, NamespaceFields) {
    const auto n = parse_identify_namespace(qemu_namespace().view(), 1).value();
    EXPECT_EQ(n.nsid, 1u);
    EXPECT_EQ(n.nsze, 2097152u);
    EXPECT_EQ(n.nuse, 1000u);
    ASSERT_EQ(n.lba_formats.size(), 4u);
    EXPECT_EQ(n.block_size(), 512u);
    EXPECT_EQ(n.size_bytes(), 1ull << 30);
    EXPECT_EQ(n.lba_formats[1].metadata_size, 8);
    EXPECT_EQ(n.lba_formats[2].block_size(), 4096u);
    EXPECT_EQ(n.lba_formats[2].relative_performance, 2);
    EXPECT_TRUE(n.deallocate_reads_zeroes());
    EXPECT_FALSE(n.extended_lba());
    EXPECT_EQ(n.eui64[0], 0xee);

    auto b = qemu_namespace();
    b.put<std::uint8_t>(26, 0x12);  // format 2, metadata at the end of the block
    const auto m = parse_identify_namespace(b.view(), 1).value();
    EXPECT_EQ(m.block_size(), 4096u);
    EXPECT_TRUE(m.extended_lba());
}

struct NamespaceFault {
    std::size_t offset;
    std::uint64_t value;
    int width;  // bytes
    const char* expect;
    int code;
};

class BadNamespace : public ::testing::TestWithParam<NamespaceFault> {};

TEST_P(BadNamespace, IsRejectedNamingTheField) {
    const NamespaceFault f = GetParam();
    auto b = qemu_namespace();
    if (f.width == 8) b.put<std::uint64_t>(f.offset, f.value);
    if (f.width == 4) b.put<std::uint32_t>(f.offset, static_cast<std::uint32_t>(f.value));
    if (f.width == 1) b.put<std::uint8_t>(f.offset, static_cast<std::uint8_t>(f.value));
    const auto r = parse_identify_namespace(b.view(), 3);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), f.code);
    EXPECT_NE(r.error().message().find(f.expect), std::string::npos) << r.error();
}

INSTANTIATE_TEST_SUITE_P(
    Identify, BadNamespace,
    ::testing::Values(NamespaceFault{0, 0, 8, "NSZE=0", ENOENT},                       // inactive namespace
                      NamespaceFault{8, 2097153, 8, "NCAP=2097153", EPROTO},         // NCAP > NSZE
                      NamespaceFault{16, 2097153, 8, "NUSE=2097153", EPROTO},        // NUSE > NCAP
                      NamespaceFault{25, 16, 1, "NLBAF=16", EPROTO},                 // more than 16 formats
                      NamespaceFault{26, 4, 1, "FLBAS format index=4", EPROTO},      // index > NLBAF
                      NamespaceFault{128, 8u << 16, 4, "LBADS", EPROTO},             // 256-byte blocks
                      NamespaceFault{128, 17u << 16, 4, "LBADS", EPROTO},            // 128 KiB blocks
                      NamespaceFault{128, 9u << 16 | 513, 4, "MS", EPROTO},          // metadata > block
                      NamespaceFault{0, ~0ull, 8, "NSZE", EPROTO}));                 // bytes overflow

TEST(Identify, UnusedBadFormatIsFlaggedNotFatal) {
    auto b = qemu_namespace();
    b.put<std::uint32_t>(140, 30u << 16);  // format 3 impossible, but not in use
    const auto n = parse_identify_namespace(b.view(), 1).value();
    EXPECT_FALSE(n.lba_formats[3].usable);
    EXPECT_EQ(n.lba_formats[3].block_size(), 0u);
    EXPECT_TRUE(n.lba_formats[0].usable);
}

TEST(Identify, ActiveNamespaceList) {
    Buffer b;
    b.put<std::uint32_t>(0, 1).put<std::uint32_t>(4, 2).put<std::uint32_t>(8, 7);
    EXPECT_EQ(parse_active_namespace_list(b.view(), 0, 256).value(), (std::vector<std::uint32_t>{1, 2, 7}));
    EXPECT_FALSE(parse_active_namespace_list(b.view(), 1, 256).ok());  // 1 is not above 1
    EXPECT_FALSE(parse_active_namespace_list(b.view(), 0, 5).ok());    // 7 > NN
    b.put<std::uint32_t>(8, 2);
    EXPECT_FALSE(parse_active_namespace_list(b.view(), 0, 0).ok());    // not increasing
    b.put<std::uint32_t>(8, 0xffffffffu);
    EXPECT_FALSE(parse_active_namespace_list(b.view(), 0, 0).ok());
    Buffer empty;
    EXPECT_TRUE(parse_active_namespace_list(empty.view(), 0, 0)->empty());
    Buffer full;
    for (std::uint32_t i = 0; i < 1024; ++i) full.put<std::uint32_t>(4 * i, i + 1);
    EXPECT_EQ(parse_active_namespace_list(full.view(), 0, 0)->size(), 1024u);
}

}  // namespace
}  // namespace dmakit::nvme
