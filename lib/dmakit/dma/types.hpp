// Vocabulary types of the DMA API (include/linux/dma-mapping.h, dma-direction.h).
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
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

// How a DmaContext uses the IOMMU, named like the kernel's modes
// (iommu.strict=1 and the pool-style identity/passthrough trade-off).
//   pool:   pool regions are mapped read-write once, when the pool grows; a
//           map of pool memory is O(1) with no system call, and the device
//           can reach every pool buffer at any time.
//   strict: nothing is reachable until mapped: every streaming map and every
//           coherent buffer gets its own IOVA mapping, with the permission
//           its direction implies, torn down at unmap/free.
// Foreign memory (not from the pool) is mapped exactly, by direction, in
// both modes; see docs/dma.md.
enum class IommuPolicy { pool, strict };

[[nodiscard]] constexpr std::string_view to_string(IommuPolicy p) noexcept {
    return p == IommuPolicy::strict ? "strict" : "pool";
}

// "pool" / "strict" (command-line spelling); nullopt for anything else.
[[nodiscard]] constexpr std::optional<IommuPolicy> parse_iommu_policy(std::string_view text) noexcept {
    if (text == "pool") return IommuPolicy::pool;
    if (text == "strict") return IommuPolicy::strict;
    return std::nullopt;
}

// DMA_BIT_MASK(n): the highest address a device with n address bits can reach.
[[nodiscard]] constexpr std::uint64_t dma_bit_mask(unsigned bits) noexcept {
    return bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
}

}  // namespace dmakit::dma
