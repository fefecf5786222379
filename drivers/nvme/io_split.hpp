// Splitting a request larger than one command may carry (MDTS, NVMe 1.4
// §5.15.2.1; NLB's 65536 blocks, §6.9) into several commands, as the
// kernel's block layer does with max_hw_sectors.
//
// Cut points are multiples of the chunk size from the start of the buffer.
// The chunk is a multiple of the controller page, so a list that follows the
// PRP rules (§4.3) gives pieces that follow them too: each piece's first
// segment starts at the buffer's own page offset, its last ends there.
#pragma once

#include <dmakit/drivers/nvme/prp.hpp>

#include <dmakit/support/result.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace dmakit::nvme {

inline constexpr std::uint64_t max_blocks_per_command = 65536;  // NLB is 16 bits, 0-based

// Bytes per command: the largest multiple of max(page_size, block_size)
// within `max_transfer` and within 65536 blocks. EINVAL when none fits.
[[nodiscard]] Result<std::uint64_t> split_chunk(std::uint64_t max_transfer, std::uint32_t block_size,
                                                std::uint64_t page_size);

// Appends to `out` the bytes [offset, offset + length) of `segments`.
// EINVAL when the range is not inside them.
[[nodiscard]] Status slice_segments(std::span<const DmaSegment> segments, std::uint64_t offset, std::uint64_t length,
                                    std::vector<DmaSegment>& out);

}  // namespace dmakit::nvme
