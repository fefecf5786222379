// Parsers for the variable-length replies of VFIO "GET_INFO" ioctls.
//
// VFIO_DEVICE_GET_REGION_INFO and VFIO_IOMMU_GET_INFO return a fixed struct
// followed by a chain of capabilities (struct vfio_info_cap_header: id,
// version, next), where `next` and the struct's cap_offset are byte offsets
// from the start of the reply and 0 ends the chain (include/uapi/linux/vfio.h,
// "Capability chain"). The parsers are pure functions over the reply bytes so
// that they can be tested with hand-built replies; they check every offset
// against the buffer and refuse chains that do not move forward.
#pragma once

#include <dmakit/iommu/backend.hpp>
#include <dmakit/support/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace dmakit::vfio {

// One mmap-able window of a region (struct vfio_region_sparse_mmap_area).
struct MmapArea {
    std::uint64_t offset = 0;  // from the start of the region
    std::uint64_t size = 0;

    friend bool operator==(const MmapArea&, const MmapArea&) = default;
};

struct RegionInfo {
    std::uint32_t index = 0;
    std::uint32_t flags = 0;   // VFIO_REGION_INFO_FLAG_*
    std::uint64_t size = 0;    // bytes
    std::uint64_t offset = 0;  // of the region within the device fd (pread/mmap offset)
    // Present when the kernel sent VFIO_REGION_INFO_CAP_SPARSE_MMAP: then only
    // these areas may be mapped (the rest, e.g. an MSI-X table, must not).
    std::optional<std::vector<MmapArea>> sparse_areas;

    [[nodiscard]] bool readable() const noexcept;
    [[nodiscard]] bool writable() const noexcept;
    [[nodiscard]] bool mappable() const noexcept;
    // What may be mmap()ed: the sparse areas, the whole region when mappable
    // without a sparse capability, nothing otherwise.
    [[nodiscard]] std::vector<MmapArea> mmap_areas() const;
};

// Parses a struct vfio_region_info reply (with its capabilities).
[[nodiscard]] Result<RegionInfo> parse_region_info(std::span<const std::byte> reply);

struct Type1Info {
    std::uint32_t flags = 0;          // VFIO_IOMMU_INFO_*
    std::uint64_t iova_pgsizes = 0;   // bitmap of IOMMU page sizes
    // VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE (Linux 5.4+): usable IOVA ranges.
    std::optional<std::vector<iommu::IovaRange>> iova_ranges;
    // VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL (Linux 5.10+): mappings still allowed.
    std::optional<std::uint32_t> dma_avail;
};

// Parses a struct vfio_iommu_type1_info reply (with its capabilities).
[[nodiscard]] Result<Type1Info> parse_type1_info(std::span<const std::byte> reply);

}  // namespace dmakit::vfio
