// LargeBuffer: a buffer contiguous for the device (one IOVA range) and for the
// CPU (one virtual range) but not physically: 4 KiB pages wherever the kernel
// found them, mapped through the IOMMU as one range. The user-space answer to
// kmalloc vs vmalloc (dma_alloc_noncontiguous + dma_vmap_noncontiguous): big
// buffers need no hugepages and no physically contiguous memory.
#pragma once

#include <dmakit/dma/types.hpp>
#include <dmakit/support/memory_mapping.hpp>

#include <cstddef>
#include <span>

namespace dmakit::dma {

class DmaDevice;

class LargeBuffer {
public:
    LargeBuffer() noexcept = default;
    ~LargeBuffer() { reset(); }
    LargeBuffer(LargeBuffer&& other) noexcept { *this = std::move(other); }
    LargeBuffer& operator=(LargeBuffer&& other) noexcept;
    LargeBuffer(const LargeBuffer&) = delete;
    LargeBuffer& operator=(const LargeBuffer&) = delete;

    [[nodiscard]] void* cpu() const noexcept { return memory_.data(); }
    [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {memory_.bytes(), size_}; }
    [[nodiscard]] DmaAddr dma() const noexcept { return dma_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool valid() const noexcept { return memory_.valid(); }

    // Unmaps from the device, then frees the memory.
    void reset() noexcept;

private:
    friend class DmaDevice;
    DmaDevice* device_ = nullptr;
    MemoryMapping memory_;
    DmaAddr dma_;
    std::size_t size_ = 0;
};

}  // namespace dmakit::dma
