// Plain heap memory standing in for DMA memory in the NIC unit tests: one
// arena with a fake, non-zero device address base, carved into descriptor
// rings and packet buffers; plus a PoolBacking over a slice of it.
#pragma once

#include <dmakit/drivers/net/packet_pool.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace dmakit::net::test {

class TestMemory {
public:
    static constexpr std::uint64_t kDmaBase = 0x4000'0000;

    explicit TestMemory(std::size_t bytes) : size_(bytes) {
        base_ = static_cast<std::byte*>(std::aligned_alloc(4096, bytes));
        std::memset(base_, 0, bytes);
    }
    ~TestMemory() { std::free(base_); }
    TestMemory(const TestMemory&) = delete;
    TestMemory& operator=(const TestMemory&) = delete;

    // Carves `bytes` (4 KiB aligned); returns its CPU pointer.
    std::byte* carve(std::size_t bytes) {
        std::byte* p = base_ + used_;
        used_ += (bytes + 4095) & ~std::size_t{4095};
        if (used_ > size_) std::abort();
        return p;
    }
    [[nodiscard]] std::uint64_t dma_of(const void* p) const {
        return kDmaBase + static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - base_);
    }
    // What an IOMMU would do: a device address to CPU memory, or nullptr when
    // [dma, dma+len) is not inside the arena.
    [[nodiscard]] std::byte* translate(std::uint64_t dma, std::size_t len) const {
        if (dma < kDmaBase || dma - kDmaBase > size_ || len > size_ - (dma - kDmaBase)) return nullptr;
        return base_ + (dma - kDmaBase);
    }

private:
    std::byte* base_;
    std::size_t size_;
    std::size_t used_ = 0;
};

class ArenaBacking : public PoolBacking {
public:
    ArenaBacking(TestMemory& memory, std::size_t count, std::size_t size)
        : memory_(&memory), count_(count), size_(size), base_(memory.carve(count * size)) {}
    std::size_t buffer_count() const noexcept override { return count_; }
    std::size_t buffer_size() const noexcept override { return size_; }
    std::byte* cpu_address(std::size_t i) const noexcept override { return base_ + i * size_; }
    DeviceAddress dma_address(std::size_t i) const noexcept override {
        return memory_->dma_of(base_ + i * size_);
    }

private:
    TestMemory* memory_;
    std::size_t count_;
    std::size_t size_;
    std::byte* base_;
};

inline std::unique_ptr<PacketPool> make_pool(TestMemory& memory, std::size_t count,
                                             std::size_t size = 2048 + 128,
                                             PacketPoolConfig config = {}) {
    auto pool = PacketPool::create(std::make_unique<ArenaBacking>(memory, count, size), config);
    if (!pool.ok()) std::abort();
    return std::move(pool).value();
}

}  // namespace dmakit::net::test
