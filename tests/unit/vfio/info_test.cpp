#include <dmakit/vfio/info.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <linux/vfio.h>
#include <vector>

namespace dmakit::vfio {
namespace {

// Builds a reply the way the kernel does: a fixed struct, then capabilities
// appended at 8-byte aligned offsets (vfio_info_cap_add), each pointing to the next.
class ReplyBuilder {
public:
    template <typename T>
    explicit ReplyBuilder(const T& fixed) : bytes_(sizeof(T)) {
        std::memcpy(bytes_.data(), &fixed, sizeof(T));
    }
    // Appends a capability (its header is filled in here); returns its offset.
    std::uint32_t add_cap(std::uint16_t id, std::uint16_t version, const void* body,
                          std::size_t body_size) {
        const auto offset = static_cast<std::uint32_t>((bytes_.size() + 7) & ~std::size_t{7});
        bytes_.resize(offset + sizeof(vfio_info_cap_header) + body_size);
        vfio_info_cap_header header{id, version, 0};
        std::memcpy(bytes_.data() + offset, &header, sizeof header);
        if (body_size) std::memcpy(bytes_.data() + offset + sizeof header, body, body_size);
        if (last_cap_) {
            std::memcpy(bytes_.data() + *last_cap_ + offsetof(vfio_info_cap_header, next), &offset,
                        sizeof offset);
        }
        last_cap_ = offset;
        return offset;
    }
    template <typename T>
    void patch(std::size_t offset, const T& value) {
        std::memcpy(bytes_.data() + offset, &value, sizeof value);
    }
    std::vector<std::byte>& bytes() { return bytes_; }

private:
    std::vector<std::byte> bytes_;
    std::optional<std::uint32_t> last_cap_;
};

std::vector<std::byte> iova_range_body(const std::vector<vfio_iova_range>& ranges) {
    std::vector<std::byte> body(8 + ranges.size() * sizeof(vfio_iova_range));
    const auto count = static_cast<std::uint32_t>(ranges.size());
    std::memcpy(body.data(), &count, 4);
    std::memcpy(body.data() + 8, ranges.data(), ranges.size() * sizeof(vfio_iova_range));
    return body;
}

// What the 6.1 kernel answers in the VM: VT-d 39-bit, MSI window reserved,
// a migration capability in between, and DMA avail.
ReplyBuilder vtd_reply(std::uint32_t avail) {
    vfio_iommu_type1_info fixed{};
    fixed.flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
    fixed.iova_pgsizes = 0x40201000;
    ReplyBuilder reply(fixed);
    auto ranges = iova_range_body({{0, 0xfedfffff}, {0xfef00000, 0x7fffffffff}});
    const std::uint32_t first = reply.add_cap(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1,
                                              ranges.data(), ranges.size());
    std::byte migration[24] = {};
    reply.add_cap(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1, migration, sizeof migration);
    std::uint32_t avail_body[2] = {avail, 0};
    reply.add_cap(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, avail_body, sizeof avail_body);
    reply.patch(offsetof(vfio_iommu_type1_info, cap_offset), first);
    reply.patch(offsetof(vfio_iommu_type1_info, argsz),
                static_cast<std::uint32_t>(reply.bytes().size()));
    return reply;
}

TEST(Type1Info, ParsesRangesAndDmaAvail) {
    auto reply = vtd_reply(65535);
    auto info = parse_type1_info(reply.bytes());
    ASSERT_TRUE(info.ok()) << info.error();
    EXPECT_EQ(info->iova_pgsizes, 0x40201000u);
    ASSERT_TRUE(info->iova_ranges.has_value());
    ASSERT_EQ(info->iova_ranges->size(), 2u);
    EXPECT_EQ((*info->iova_ranges)[0], (iommu::IovaRange{0, 0xfedfffff}));
    EXPECT_EQ((*info->iova_ranges)[1], (iommu::IovaRange{0xfef00000, 0x7fffffffff}));
    ASSERT_TRUE(info->dma_avail.has_value());
    EXPECT_EQ(*info->dma_avail, 65535u);
}

TEST(Type1Info, NoCapabilities) {
    vfio_iommu_type1_info fixed{};
    fixed.argsz = sizeof fixed;
    fixed.flags = VFIO_IOMMU_INFO_PGSIZES;
    fixed.iova_pgsizes = 0x1000;
    ReplyBuilder reply(fixed);
    auto info = parse_type1_info(reply.bytes());
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->iova_pgsizes, 0x1000u);
    EXPECT_FALSE(info->iova_ranges.has_value());
    EXPECT_FALSE(info->dma_avail.has_value());
    // The first pass of the two-pass query: CAPS set, cap_offset still 0.
    fixed.flags |= VFIO_IOMMU_INFO_CAPS;
    ReplyBuilder first_pass(fixed);
    EXPECT_TRUE(parse_type1_info(first_pass.bytes()).ok());
}

TEST(Type1Info, RejectsMalformedReplies) {
    auto truncated = vtd_reply(10);
    truncated.bytes().resize(truncated.bytes().size() - 8);  // cut into DMA avail
    auto r1 = parse_type1_info(truncated.bytes());
    ASSERT_FALSE(r1.ok());
    EXPECT_EQ(r1.error().code(), EPROTO);

    auto too_many = vtd_reply(10);
    const std::uint32_t lie = 1000;
    too_many.patch(sizeof(vfio_iommu_type1_info) + 8, lie);  // nr_iovas of the first cap
    EXPECT_FALSE(parse_type1_info(too_many.bytes()).ok());

    auto loop = vtd_reply(10);
    const std::uint32_t back = sizeof(vfio_iommu_type1_info);  // next -> itself
    loop.patch(sizeof(vfio_iommu_type1_info) + offsetof(vfio_info_cap_header, next), back);
    auto r3 = parse_type1_info(loop.bytes());
    ASSERT_FALSE(r3.ok());
    EXPECT_NE(r3.error().message().find("backwards"), std::string::npos);

    auto beyond = vtd_reply(10);
    const std::uint32_t far = 1 << 20;
    beyond.patch(offsetof(vfio_iommu_type1_info, cap_offset), far);
    EXPECT_FALSE(parse_type1_info(beyond.bytes()).ok());

    std::vector<std::byte> tiny(8);
    EXPECT_FALSE(parse_type1_info(tiny).ok());
}

vfio_region_info bar_info(std::uint32_t flags, std::uint64_t size) {
    vfio_region_info fixed{};
    fixed.argsz = sizeof fixed;
    fixed.flags = flags;
    fixed.index = VFIO_PCI_BAR0_REGION_INDEX;
    fixed.size = size;
    fixed.offset = 0;
    return fixed;
}

TEST(RegionInfo, ParsesSparseMmapAreas) {
    // e.g. a 16 KiB BAR whose MSI-X table at 0x2000 must not be mapped.
    ReplyBuilder reply(bar_info(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                                    VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS,
                                0x4000));
    std::vector<std::byte> body(8 + 2 * sizeof(vfio_region_sparse_mmap_area));
    const std::uint32_t count = 2;
    std::memcpy(body.data(), &count, 4);
    vfio_region_sparse_mmap_area areas[2] = {{0, 0x2000}, {0x3000, 0x1000}};
    std::memcpy(body.data() + 8, areas, sizeof areas);
    const std::uint32_t at = reply.add_cap(VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, body.data(), body.size());
    reply.patch(offsetof(vfio_region_info, cap_offset), at);

    auto info = parse_region_info(reply.bytes());
    ASSERT_TRUE(info.ok()) << info.error();
    EXPECT_TRUE(info->readable());
    EXPECT_TRUE(info->writable());
    EXPECT_TRUE(info->mappable());
    EXPECT_EQ(info->size, 0x4000u);
    ASSERT_TRUE(info->sparse_areas.has_value());
    const std::vector<MmapArea> expected{{0, 0x2000}, {0x3000, 0x1000}};
    EXPECT_EQ(*info->sparse_areas, expected);
    EXPECT_EQ(info->mmap_areas(), expected);
}

TEST(RegionInfo, WholeRegionOrNothingWithoutSparseCap) {
    ReplyBuilder mappable(bar_info(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_MMAP, 0x20000));
    auto info = parse_region_info(mappable.bytes());
    ASSERT_TRUE(info.ok());
    EXPECT_FALSE(info->sparse_areas.has_value());
    EXPECT_EQ(info->mmap_areas(), (std::vector<MmapArea>{{0, 0x20000}}));

    ReplyBuilder io_bar(bar_info(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 0x20));
    auto io = parse_region_info(io_bar.bytes());
    ASSERT_TRUE(io.ok());
    EXPECT_TRUE(io->mmap_areas().empty()) << "read/write fallback only";

    ReplyBuilder empty(bar_info(0, 0));
    EXPECT_TRUE(parse_region_info(empty.bytes())->mmap_areas().empty());
}

TEST(RegionInfo, SkipsUnknownCapsAndRejectsAreasBeyondTheRegion) {
    ReplyBuilder reply(bar_info(VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS, 0x1000));
    std::uint32_t type_body[2] = {1, 2};
    const std::uint32_t first = reply.add_cap(VFIO_REGION_INFO_CAP_TYPE, 1, type_body, sizeof type_body);
    std::vector<std::byte> body(8 + sizeof(vfio_region_sparse_mmap_area));
    const std::uint32_t count = 1;
    std::memcpy(body.data(), &count, 4);
    vfio_region_sparse_mmap_area area{0x800, 0x1000};  // runs past 0x1000
    std::memcpy(body.data() + 8, &area, sizeof area);
    reply.add_cap(VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, body.data(), body.size());
    reply.patch(offsetof(vfio_region_info, cap_offset), first);
    auto info = parse_region_info(reply.bytes());
    ASSERT_FALSE(info.ok());
    EXPECT_EQ(info.error().code(), EPROTO);
}

}  // namespace
}  // namespace dmakit::vfio
