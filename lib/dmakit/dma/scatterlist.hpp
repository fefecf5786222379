// ScatterList: a buffer made of pieces, mapped for a device in one call
// (struct sg_table, dma_map_sg / dma_unmap_sg).
#pragma once

#include <dmakit/dma/segments.hpp>
#include <dmakit/dma/types.hpp>

#include <cstddef>
#include <span>
#include <vector>

namespace dmakit::dma {

// One CPU-side piece (a page and offset in the kernel; a pointer here).
struct ScatterEntry {
    void* cpu = nullptr;
    std::size_t length = 0;
};

class ScatterList {
public:
    ScatterList() = default;
    explicit ScatterList(std::vector<ScatterEntry> entries) : entries_(std::move(entries)) {}

    void add(void* cpu, std::size_t length) { entries_.push_back({cpu, length}); }
    [[nodiscard]] std::span<const ScatterEntry> entries() const noexcept { return entries_; }

    // After map_sg: the device-side segments, merged where contiguous and
    // split at the device's limits. Fewer (or more) than entries().
    [[nodiscard]] std::span<const DmaSegment> segments() const noexcept { return segments_; }
    [[nodiscard]] bool mapped() const noexcept { return mapped_; }

private:
    friend class DmaDevice;
    std::vector<ScatterEntry> entries_;
    std::vector<DmaAddr> entry_addresses_;  // one per entry, for unmap
    std::vector<DmaSegment> segments_;
    bool mapped_ = false;
};

}  // namespace dmakit::dma
