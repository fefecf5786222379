// StreamingMapping: a dma_map_single that unmaps itself.
//
// DmaDevice::map(cpu, length, dir) maps like map_single and hands back this
// move-only handle; the mapping ends when the handle does, as a devres
// mapping (dmam_*) ends with its device in the kernel, but scoped to the
// handle. The raw kernel-shaped calls (map_single / unmap_single) stay for
// hot paths that keep the address in a descriptor ring and cannot afford a
// handle per buffer; the two kinds mix freely, since both go through the
// device's table of live mappings.
//
// A handle unmaps at most once: unmap() and release() empty it, and a
// moved-from handle is empty. If its mapping was unmapped behind its back
// (unmap_single of its address), the device refuses the handle's unmap with
// EINVAL and nothing else changes. A failure in the destructor cannot be
// returned, so it is logged through the device's context logger; it never
// aborts. The device must outlive the handle (as for CoherentBuffer).
#pragma once

#include <dmakit/dma/types.hpp>
#include <dmakit/mem/call_site.hpp>
#include <dmakit/support/result.hpp>

#include <cstddef>
#include <source_location>
#include <span>
#include <utility>

namespace dmakit::dma {

class DmaDevice;

class [[nodiscard]] StreamingMapping {
public:
    // What release() hands over: the triple unmap_single / sync_* need.
    struct Raw {
        DmaAddr addr;
        std::size_t length = 0;
        DmaDirection dir = DmaDirection::bidirectional;
    };

    StreamingMapping() noexcept = default;
    ~StreamingMapping() { reset(); }
    StreamingMapping(StreamingMapping&& other) noexcept { *this = std::move(other); }
    StreamingMapping& operator=(StreamingMapping&& other) noexcept;
    StreamingMapping(const StreamingMapping&) = delete;
    StreamingMapping& operator=(const StreamingMapping&) = delete;

    // The device address, the mapped length and direction; the CPU address
    // that was mapped. Empty handle: null address, 0 bytes.
    [[nodiscard]] DmaAddr dma() const noexcept { return dma_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] DmaDirection direction() const noexcept { return dir_; }
    [[nodiscard]] void* cpu() const noexcept { return cpu_; }
    [[nodiscard]] std::span<std::byte> bytes() const noexcept {
        return {static_cast<std::byte*>(cpu_), size_};
    }
    [[nodiscard]] bool valid() const noexcept { return device_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

    // dma_sync_single_for_cpu / _for_device over the whole mapping, and the
    // _range forms for part of it. EINVAL on an empty handle.
    [[nodiscard]] Status sync_for_cpu(mem::CallSite site = std::source_location::current()) const;
    [[nodiscard]] Status sync_for_device(mem::CallSite site = std::source_location::current()) const;
    [[nodiscard]] Status sync_range_for_cpu(std::size_t offset, std::size_t length,
                                            mem::CallSite site = std::source_location::current()) const;
    [[nodiscard]] Status sync_range_for_device(std::size_t offset, std::size_t length,
                                               mem::CallSite site = std::source_location::current()) const;

    // dma_unmap_single now, with its result. The handle is empty afterwards
    // whatever the result (a refused unmap is not retried by the
    // destructor). EINVAL on an empty handle.
    [[nodiscard]] Status unmap(mem::CallSite site = std::source_location::current());

    // Gives the mapping up without unmapping it: the caller now owns it and
    // unmaps it with DmaDevice::unmap_single(raw.addr, raw.length, raw.dir).
    // The handle is empty afterwards.
    [[nodiscard]] Raw release() noexcept;

private:
    friend class DmaDevice;
    StreamingMapping(DmaDevice* device, void* cpu, DmaAddr dma, std::size_t size, DmaDirection dir,
                     mem::CallSite site) noexcept
        : device_(device), cpu_(cpu), dma_(dma), size_(size), dir_(dir), site_(site) {}

    // Unmaps if the handle holds a mapping; a failure is logged.
    void reset() noexcept;

    DmaDevice* device_ = nullptr;
    void* cpu_ = nullptr;
    DmaAddr dma_;
    std::size_t size_ = 0;
    DmaDirection dir_ = DmaDirection::bidirectional;
    mem::CallSite site_;  // where map() was called: the destructor's unmap reports it
};

}  // namespace dmakit::dma
