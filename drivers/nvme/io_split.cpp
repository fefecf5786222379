#include <dmakit/drivers/nvme/io_split.hpp>

#include <algorithm>
#include <cerrno>
#include <string>

namespace dmakit::nvme {

Result<std::uint64_t> split_chunk(std::uint64_t max_transfer, std::uint32_t block_size, std::uint64_t page_size) {
    if (block_size == 0 || page_size == 0) return Error(EINVAL, "block and page size must not be 0");
    const std::uint64_t unit = std::max<std::uint64_t>(page_size, block_size);
    const std::uint64_t by_nlb = max_blocks_per_command * block_size;
    const std::uint64_t limit = std::min(max_transfer, by_nlb);
    const std::uint64_t chunk = limit / unit * unit;
    if (chunk == 0) {
        return Error(EINVAL, "the largest transfer per command (" + std::to_string(max_transfer) +
                                 " bytes) holds no whole " + std::to_string(unit) +
                                 "-byte unit (page and block); raise ControllerOptions::max_transfer_cap");
    }
    return chunk;
}

Status slice_segments(std::span<const DmaSegment> segments, std::uint64_t offset, std::uint64_t length,
                      std::vector<DmaSegment>& out) {
    std::uint64_t pos = 0;  // buffer offset where the current segment starts
    const std::uint64_t end = offset + length;
    if (length == 0 || end < offset) return Error(EINVAL, "empty or overflowing slice of a DMA segment list");
    for (const DmaSegment& s : segments) {
        const std::uint64_t s_end = pos + s.len;
        if (s_end > offset && pos < end) {
            const std::uint64_t from = std::max(pos, offset);
            const std::uint64_t to = std::min(s_end, end);
            out.push_back(DmaSegment{s.addr + (from - pos), to - from});
        }
        pos = s_end;
        if (pos >= end) return {};
    }
    return Error(EINVAL, "slice " + std::to_string(offset) + "+" + std::to_string(length) +
                             " is past the end of the segment list (" + std::to_string(pos) + " bytes)");
}

}  // namespace dmakit::nvme
