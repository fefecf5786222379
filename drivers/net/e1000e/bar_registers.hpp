// RegisterAccess over the BAR0 mapping, with the support layer's ordered MMIO
// accessors (readl/writel semantics: a write is ordered after every earlier
// store to descriptor memory, which is the contract rings.cpp relies on).
#pragma once

#include <dmakit/support/mmio.hpp>

#include <dmakit/drivers/net/e1000e/register_access.hpp>

#include <cstddef>

namespace dmakit::net::e1000e {

class BarRegisters final : public RegisterAccess {
public:
    explicit BarRegisters(volatile std::byte* base) noexcept : base_(base) {}
    [[nodiscard]] std::uint32_t read32(std::uint32_t offset) override {
        return mmio::read32(base_, offset);
    }
    void write32(std::uint32_t offset, std::uint32_t value) override {
        mmio::write32(base_, offset, value);
    }

private:
    volatile std::byte* base_;
};

// BAR0 bytes the driver touches (the 82574's register space is 128 KiB).
inline constexpr std::uint64_t bar0_size = 0x20000;

}  // namespace dmakit::net::e1000e
