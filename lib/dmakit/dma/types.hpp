// Vocabulary types of the DMA API (include/linux/dma-mapping.h, dma-direction.h).
#pragma once

#include <compare>
#include <cstdint>
#include <string_view>

namespace dmakit::dma {

// An address as the device sees it (an IOVA behind the IOMMU). Deliberately
// not a pointer and not an integer that mixes silently with one: code that
// hands a CPU address to a device, or dereferences a device address, does not
// compile.
class DmaAddr {
public:
    constexpr DmaAddr() noexcept = default;
    constexpr explicit DmaAddr(std::uint64_t value) noexcept : value_(value) {}

    [[nodiscard]] constexpr std::uint64_t value() const noexcept { return value_; }

    [[nodiscard]] constexpr DmaAddr operator+(std::uint64_t offset) const noexcept {
        return DmaAddr(value_ + offset);
    }
    DmaAddr& operator+=(std::uint64_t offset) noexcept {
        value_ += offset;
        return *this;
    }
    // Bytes between two device addresses.
    [[nodiscard]] constexpr std::uint64_t operator-(DmaAddr other) const noexcept {
        return value_ - other.value_;
    }
    friend constexpr auto operator<=>(DmaAddr, DmaAddr) = default;

private:
    std::uint64_t value_ = 0;
};

// Which way the data moves (enum dma_data_direction). The direction decides
// the IOMMU permission of the mapping and which syncs are meaningful.
enum class DmaDirection { to_device, from_device, bidirectional };

[[nodiscard]] constexpr std::string_view to_string(DmaDirection d) noexcept {
    switch (d) {
        case DmaDirection::to_device: return "to_device";
        case DmaDirection::from_device: return "from_device";
        case DmaDirection::bidirectional: return "bidirectional";
    }
    return "unknown";
}

// DMA_BIT_MASK(n): the highest address a device with n address bits can reach.
[[nodiscard]] constexpr std::uint64_t dma_bit_mask(unsigned bits) noexcept {
    return bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
}

}  // namespace dmakit::dma
