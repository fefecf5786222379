// CoherentBuffer: memory that the CPU and the device share without syncs
// (dma_alloc_coherent). On x86 all DMA is cache-coherent, so "coherent" means
// the buffer stays mapped for its whole life and needs no ownership handover;
// the driver still orders its own accesses (dma_wmb/dma_rmb in mmio.hpp).
#pragma once

#include <dmakit/dma/types.hpp>

#include <cstddef>
#include <span>

namespace dmakit::dma {

class DmaDevice;

class CoherentBuffer {
public:
    CoherentBuffer() noexcept = default;
    ~CoherentBuffer() { reset(); }
    CoherentBuffer(CoherentBuffer&& other) noexcept { *this = std::move(other); }
    CoherentBuffer& operator=(CoherentBuffer&& other) noexcept;
    CoherentBuffer(const CoherentBuffer&) = delete;
    CoherentBuffer& operator=(const CoherentBuffer&) = delete;

    [[nodiscard]] void* cpu() const noexcept { return cpu_; }
    template <typename T>
    [[nodiscard]] T* as() const noexcept { return static_cast<T*>(cpu_); }
    [[nodiscard]] std::span<std::byte> bytes() const noexcept {
        return {static_cast<std::byte*>(cpu_), size_};
    }
    [[nodiscard]] DmaAddr dma() const noexcept { return dma_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool valid() const noexcept { return cpu_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

    // dma_free_coherent: gives the memory back now.
    void reset() noexcept;

private:
    friend class DmaDevice;
    CoherentBuffer(DmaDevice* device, void* cpu, DmaAddr dma, std::size_t size) noexcept
        : device_(device), cpu_(cpu), dma_(dma), size_(size) {}

    DmaDevice* device_ = nullptr;
    void* cpu_ = nullptr;
    DmaAddr dma_;
    std::size_t size_ = 0;
};

}  // namespace dmakit::dma
