#include <dmakit/drivers/nvme/registers.hpp>

#include <gtest/gtest.h>

#include <cerrno>

namespace dmakit::nvme {
namespace {

// A QEMU-like CAP: MQES=2047, CQR=1, TO=15 (7.5 s), DSTRD=0, CSS=NVM, MPSMIN=0, MPSMAX=4.
constexpr std::uint64_t qemu_cap = 0x7ffull | 1ull << 16 | 15ull << 24 | 1ull << 37 | 4ull << 52;

TEST(Registers, CapFields) {
    const Cap cap{qemu_cap};
    EXPECT_EQ(cap.max_queue_entries(), 2048u);
    EXPECT_TRUE(cap.contiguous_queues_required());
    EXPECT_EQ(cap.timeout_ms(), 7500u);
    EXPECT_EQ(cap.doorbell_stride_bytes(), 4u);
    EXPECT_TRUE(cap.nvm_command_set());
    EXPECT_EQ(cap.min_page_size(), 4096u);
    EXPECT_EQ(cap.max_page_size(), 65536u);
    EXPECT_TRUE(validate_cap(cap).ok());

    const Cap strided{qemu_cap | 3ull << 32 | 1ull << 36 | 2ull << 48};
    EXPECT_EQ(strided.doorbell_stride_bytes(), 32u);
    EXPECT_TRUE(strided.nssr_supported());
    EXPECT_EQ(strided.min_page_size(), 16384u);
}

TEST(Registers, ValidateCapRejectsImpossibleValues) {
    EXPECT_EQ(validate_cap(Cap{~0ull}).error().code(), ENODEV);
    const auto swapped = validate_cap(Cap{(qemu_cap & ~(0xffull << 48)) | 5ull << 48 | 1ull << 52});
    ASSERT_FALSE(swapped.ok());
    EXPECT_NE(swapped.error().message().find("MPSMIN=5"), std::string::npos);
    EXPECT_FALSE(validate_cap(Cap{qemu_cap & ~(1ull << 37)}).ok());     // no NVM command set
    EXPECT_FALSE(validate_cap(Cap{qemu_cap & ~0xffffull}).ok());        // MQES = 0
    EXPECT_FALSE(validate_cap(Cap{qemu_cap & ~(0xffull << 24)}).ok());  // TO = 0
}

TEST(Registers, ChoosePageSize) {
    EXPECT_EQ(choose_page_size(Cap{qemu_cap}, 4096).value(), 0u);
    EXPECT_EQ(choose_page_size(Cap{qemu_cap}, 16384).value(), 2u);
    EXPECT_EQ(choose_page_size(Cap{qemu_cap}, 1u << 20).error().code(), ENOTSUP);
    EXPECT_EQ(choose_page_size(Cap{qemu_cap}, 5000).error().code(), EINVAL);
}

TEST(Registers, ControllerConfigRoundTrip) {
    ControllerConfig cc;
    cc.enable = true;
    cc.mps = 0;
    cc.shutdown = ShutdownNotification::normal;
    // EN | IOSQES=6 | IOCQES=4 | SHN=01b
    EXPECT_EQ(cc.encode(), 0x00464001u);
    const auto back = ControllerConfig::decode(0x00464001u | 2u << 7 | 1u << 11);
    EXPECT_TRUE(back.enable);
    EXPECT_EQ(back.mps, 2u);
    EXPECT_EQ(back.arbitration, 1u);
    EXPECT_EQ(back.shutdown, ShutdownNotification::normal);
    EXPECT_EQ(back.io_sq_entry_shift, 6u);
    EXPECT_EQ(back.io_cq_entry_shift, 4u);
}

TEST(Registers, Csts) {
    EXPECT_TRUE(Csts{1}.ready());
    EXPECT_TRUE(Csts{3}.fatal());
    EXPECT_EQ(Csts{0x9}.shutdown(), ShutdownStatus::complete);
    EXPECT_EQ(Csts{0x5}.shutdown(), ShutdownStatus::occurring);
    EXPECT_TRUE(Csts{0xffffffffu}.device_gone());
    EXPECT_FALSE(Csts{0x3}.device_gone());
}

TEST(Registers, AqaAndDoorbells) {
    EXPECT_EQ(encode_aqa(32, 64).value(), 0x003f001fu);
    EXPECT_FALSE(encode_aqa(1, 64).ok());
    EXPECT_FALSE(encode_aqa(32, 4097).ok());
    EXPECT_EQ(sq_tail_doorbell(0, 0), 0x1000u);
    EXPECT_EQ(cq_head_doorbell(0, 0), 0x1004u);
    EXPECT_EQ(sq_tail_doorbell(3, 0), 0x1018u);
    EXPECT_EQ(cq_head_doorbell(3, 0), 0x101cu);
    EXPECT_EQ(sq_tail_doorbell(1, 2), 0x1000u + 2 * 16);
    EXPECT_EQ(cq_head_doorbell(1, 2), 0x1000u + 3 * 16);
    // An 8 KiB BAR holds 512 doorbell pairs at stride 4: CQ 511 ends exactly at 0x2000.
    EXPECT_TRUE(check_doorbells_in_bar(511, 0, 0x2000).ok());
    EXPECT_EQ(check_doorbells_in_bar(512, 0, 0x2000).error().code(), ERANGE);
    EXPECT_EQ(check_doorbells_in_bar(64, 3, 0x2000).error().code(), ERANGE);  // 0x1000 + 129 * 32
}

TEST(Registers, Version) {
    const Version v{0x00010400};
    EXPECT_EQ(v.major(), 1u);
    EXPECT_EQ(v.minor(), 4u);
    EXPECT_EQ(v.tertiary(), 0u);
}

}  // namespace
}  // namespace dmakit::nvme
