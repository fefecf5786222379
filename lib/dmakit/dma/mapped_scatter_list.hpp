// MappedScatterList: a dma_map_sg that unmaps itself.
//
// DmaDevice::map(std::move(list), dir) maps every entry like map_sg and hands
// back this move-only handle, which owns the list from then on (so the list
// cannot change or go away while the device may reach it). The mapping ends
// when the handle does; unmap() ends it now with a result, release() gives
// the still-mapped list back for DmaDevice::unmap_sg. The raw map_sg /
// unmap_sg stay for hot paths.
//
// As StreamingMapping: a handle unmaps at most once (moved-from handles are
// empty), a failure in the destructor is logged through the device's context
// logger and never aborts, and the device must outlive the handle.
#pragma once

#include <dmakit/dma/scatterlist.hpp>
#include <dmakit/dma/types.hpp>
#include <dmakit/mem/call_site.hpp>
#include <dmakit/support/result.hpp>

#include <cstddef>
#include <source_location>
#include <span>
#include <utility>

namespace dmakit::dma {

class DmaDevice;

class [[nodiscard]] MappedScatterList {
public:
    MappedScatterList() noexcept = default;
    ~MappedScatterList() { reset(); }
    MappedScatterList(MappedScatterList&& other) noexcept { *this = std::move(other); }
    MappedScatterList& operator=(MappedScatterList&& other) noexcept;
    MappedScatterList(const MappedScatterList&) = delete;
    MappedScatterList& operator=(const MappedScatterList&) = delete;

    // The device-side segments to put in descriptors (merged and split as
    // map_sg does), and the CPU-side entries. Empty for an empty handle.
    [[nodiscard]] std::span<const DmaSegment> segments() const noexcept { return list_.segments(); }
    [[nodiscard]] std::span<const ScatterEntry> entries() const noexcept { return list_.entries(); }
    // The mapped list itself, for calls that take a mapped ScatterList
    // (an NVMe queue's read_sg / write_sg).
    [[nodiscard]] const ScatterList& list() const noexcept { return list_; }
    [[nodiscard]] DmaDirection direction() const noexcept { return dir_; }
    [[nodiscard]] bool valid() const noexcept { return device_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

    // dma_sync_sg_for_cpu / _for_device. EINVAL on an empty handle.
    [[nodiscard]] Status sync_for_cpu(mem::CallSite site = std::source_location::current()) const;
    [[nodiscard]] Status sync_for_device(mem::CallSite site = std::source_location::current()) const;

    // dma_unmap_sg now, with its result; the handle is empty afterwards
    // whatever the result. EINVAL on an empty handle.
    [[nodiscard]] Status unmap(mem::CallSite site = std::source_location::current());

    // Gives the list back still mapped: the caller unmaps it with
    // DmaDevice::unmap_sg(list, direction()). The handle is empty afterwards.
    [[nodiscard]] ScatterList release() noexcept;

private:
    friend class DmaDevice;
    MappedScatterList(DmaDevice* device, ScatterList list, DmaDirection dir, mem::CallSite site) noexcept
        : device_(device), list_(std::move(list)), dir_(dir), site_(site) {}

    void reset() noexcept;

    DmaDevice* device_ = nullptr;
    ScatterList list_;
    DmaDirection dir_ = DmaDirection::bidirectional;
    mem::CallSite site_;  // where map() was called: the destructor's unmap reports it
};

}  // namespace dmakit::dma
