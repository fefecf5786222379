#include <dmakit/dma/segments.hpp>

#include <algorithm>

namespace dmakit::dma {

std::vector<DmaSegment> shape_segments(std::span<const DmaSegment> mapped,
                                       const SegmentLimits& limits) {
    std::vector<DmaSegment> out;
    out.reserve(mapped.size());
    const std::size_t max_len = std::max<std::size_t>(limits.max_segment_size, 1);

    // Room left in a segment that starts at `addr` before it would cross a boundary.
    auto room_to_boundary = [&](std::uint64_t addr) -> std::uint64_t {
        std::uint64_t offset = addr & limits.boundary_mask;
        return limits.boundary_mask - offset + 1;  // wraps to 0 for an all-ones mask
    };
    auto limit_at = [&](std::uint64_t addr) -> std::uint64_t {
        std::uint64_t room = room_to_boundary(addr);
        return room == 0 ? max_len : std::min<std::uint64_t>(room, max_len);
    };

    for (const DmaSegment& piece : mapped) {
        std::uint64_t addr = piece.addr.value();
        std::uint64_t left = piece.length;
        while (left > 0) {
            // Grow the previous segment if this piece continues it.
            if (!out.empty()) {
                DmaSegment& last = out.back();
                std::uint64_t last_start = last.addr.value();
                if (last_start + last.length == addr) {
                    std::uint64_t cap = limit_at(last_start);
                    if (last.length < cap) {
                        std::uint64_t take = std::min<std::uint64_t>(left, cap - last.length);
                        last.length += static_cast<std::size_t>(take);
                        addr += take;
                        left -= take;
                        continue;
                    }
                }
            }
            std::uint64_t take = std::min<std::uint64_t>(left, limit_at(addr));
            out.push_back({DmaAddr(addr), static_cast<std::size_t>(take)});
            addr += take;
            left -= take;
        }
    }
    return out;
}

}  // namespace dmakit::dma
