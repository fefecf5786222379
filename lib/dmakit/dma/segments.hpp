// Scatter-gather segment shaping: merging entries that are contiguous for the
// device and splitting at the device's limits (dma_get_max_seg_size,
// dma_get_seg_boundary in include/linux/dma-mapping.h).
#pragma once

#include <dmakit/dma/types.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dmakit::dma {

// One piece of device-visible memory.
struct DmaSegment {
    DmaAddr addr;
    std::size_t length = 0;

    friend bool operator==(const DmaSegment&, const DmaSegment&) = default;
};

// A device's scatter-gather limits.
struct SegmentLimits {
    // Longest segment the device takes in one descriptor (64 KiB is the
    // kernel's default when a driver sets nothing).
    std::size_t max_segment_size = 64 * 1024;
    // No segment may cross a (boundary_mask + 1)-aligned boundary;
    // 0xffffffff is the kernel's default (no 4 GiB crossing).
    std::uint64_t boundary_mask = 0xffffffffULL;
};

// Merges consecutive segments that continue each other in device address
// space and splits any segment that is longer than max_segment_size or
// crosses a boundary. Order is kept; the total length is unchanged.
[[nodiscard]] std::vector<DmaSegment> shape_segments(std::span<const DmaSegment> mapped,
                                                     const SegmentLimits& limits);

}  // namespace dmakit::dma
