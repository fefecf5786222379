#include <dmakit/vfio/info.hpp>

#include <cerrno>
#include <cstring>
#include <linux/vfio.h>
#include <string>

namespace dmakit::vfio {

namespace {

// Reads a T at `offset` (the reply is a byte buffer: no alignment assumed).
template <typename T>
bool load(std::span<const std::byte> bytes, std::size_t offset, T& out) {
    if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return false;
    std::memcpy(&out, bytes.data() + offset, sizeof(T));
    return true;
}

Error malformed(const char* what, const std::string& detail) {
    return Error(EPROTO, std::string("malformed ") + what + " reply from the kernel: " + detail);
}

// Calls visit(id, version, offset) for each capability; offsets are checked.
template <typename Visit>
Status walk_chain(std::span<const std::byte> reply, std::uint32_t first, const char* what,
                  Visit visit) {
    std::uint32_t offset = first;
    std::uint32_t previous = 0;
    while (offset != 0) {
        if (offset <= previous) {
            return malformed(what, "capability chain goes backwards at offset " +
                                       std::to_string(offset));
        }
        vfio_info_cap_header header{};
        if (!load(reply, offset, header)) {
            return malformed(what, "capability at offset " + std::to_string(offset) +
                                       " lies beyond the " + std::to_string(reply.size()) +
                                       "-byte reply");
        }
        DMAKIT_TRY(visit(header.id, header.version, offset));
        previous = offset;
        offset = header.next;
    }
    return {};
}

}  // namespace

bool RegionInfo::readable() const noexcept { return (flags & VFIO_REGION_INFO_FLAG_READ) != 0; }
bool RegionInfo::writable() const noexcept { return (flags & VFIO_REGION_INFO_FLAG_WRITE) != 0; }
bool RegionInfo::mappable() const noexcept { return (flags & VFIO_REGION_INFO_FLAG_MMAP) != 0; }

std::vector<MmapArea> RegionInfo::mmap_areas() const {
    if (!mappable() || size == 0) return {};
    if (sparse_areas) return *sparse_areas;
    return {MmapArea{0, size}};
}

Result<RegionInfo> parse_region_info(std::span<const std::byte> reply) {
    vfio_region_info fixed{};
    if (!load(reply, 0, fixed)) {
        return malformed("VFIO_DEVICE_GET_REGION_INFO",
                         "only " + std::to_string(reply.size()) + " bytes");
    }
    RegionInfo info;
    info.index = fixed.index;
    info.flags = fixed.flags;
    info.size = fixed.size;
    info.offset = fixed.offset;
    if ((fixed.flags & VFIO_REGION_INFO_FLAG_CAPS) == 0 || fixed.cap_offset == 0) return info;

    const char* what = "VFIO_DEVICE_GET_REGION_INFO";
    auto status = walk_chain(reply, fixed.cap_offset, what,
                             [&](std::uint16_t id, std::uint16_t, std::uint32_t at) -> Status {
        if (id != VFIO_REGION_INFO_CAP_SPARSE_MMAP) return {};  // others: not needed
        std::uint32_t count = 0;
        if (!load(reply, at + offsetof(vfio_region_info_cap_sparse_mmap, nr_areas), count)) {
            return malformed(what, "truncated sparse-mmap capability");
        }
        std::vector<MmapArea> areas;
        const std::size_t first = at + sizeof(vfio_region_info_cap_sparse_mmap);
        for (std::uint32_t i = 0; i < count; ++i) {
            vfio_region_sparse_mmap_area area{};
            if (!load(reply, first + std::size_t{i} * sizeof area, area)) {
                return malformed(what, "sparse-mmap capability claims " + std::to_string(count) +
                                           " areas but the reply ends after " + std::to_string(i));
            }
            if (area.size == 0) continue;
            if (area.offset > fixed.size || fixed.size - area.offset < area.size) {
                return malformed(what, "sparse-mmap area beyond the region's end");
            }
            areas.push_back({area.offset, area.size});
        }
        info.sparse_areas = std::move(areas);
        return {};
    });
    if (!status.ok()) return std::move(status).error();
    return info;
}

Result<Type1Info> parse_type1_info(std::span<const std::byte> reply) {
    // The kernel's minimum is offsetofend(cap_offset); sizeof includes padding.
    constexpr std::size_t kMin = offsetof(vfio_iommu_type1_info, cap_offset) + sizeof(std::uint32_t);
    const char* what = "VFIO_IOMMU_GET_INFO";
    if (reply.size() < kMin) {
        return malformed(what, "only " + std::to_string(reply.size()) + " bytes");
    }
    vfio_iommu_type1_info fixed{};
    std::memcpy(&fixed, reply.data(), std::min(reply.size(), sizeof fixed));
    Type1Info info;
    info.flags = fixed.flags;
    if (fixed.flags & VFIO_IOMMU_INFO_PGSIZES) info.iova_pgsizes = fixed.iova_pgsizes;
    if ((fixed.flags & VFIO_IOMMU_INFO_CAPS) == 0 || fixed.cap_offset == 0) return info;

    auto status = walk_chain(reply, fixed.cap_offset, what,
                             [&](std::uint16_t id, std::uint16_t, std::uint32_t at) -> Status {
        if (id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
            std::uint32_t count = 0;
            if (!load(reply, at + offsetof(vfio_iommu_type1_info_cap_iova_range, nr_iovas), count)) {
                return malformed(what, "truncated IOVA range capability");
            }
            std::vector<iommu::IovaRange> ranges;
            const std::size_t first = at + sizeof(vfio_iommu_type1_info_cap_iova_range);
            for (std::uint32_t i = 0; i < count; ++i) {
                vfio_iova_range range{};
                if (!load(reply, first + std::size_t{i} * sizeof range, range)) {
                    return malformed(what, "IOVA range capability claims " +
                                               std::to_string(count) + " ranges but the reply "
                                               "ends after " + std::to_string(i));
                }
                if (range.end < range.start) {
                    return malformed(what, "IOVA range ends before it starts");
                }
                ranges.push_back({range.start, range.end});
            }
            info.iova_ranges = std::move(ranges);
        } else if (id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
            std::uint32_t avail = 0;
            if (!load(reply, at + offsetof(vfio_iommu_type1_info_dma_avail, avail), avail)) {
                return malformed(what, "truncated DMA available capability");
            }
            info.dma_avail = avail;
        }
        return {};
    });
    if (!status.ok()) return std::move(status).error();
    return info;
}

}  // namespace dmakit::vfio
