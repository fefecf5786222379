// RegisterAccess: how the e1000e code reaches the device's registers.
//
// Everything above it (bring-up, rings, statistics) is written against this
// interface so it runs unchanged over BAR0 and over the unit tests' fake
// register file. The glue implements it over the VFIO BAR0 mapping with the
// support layer's MMIO accessors (lib/dmakit/support/mmio.hpp, not in the tree
// when this was written).
//
// Ordering contract, as Linux's writel/readl: write32 is ordered after every
// earlier store to normal memory (so descriptors written before a tail write
// are visible to the device first), and read32 completes before later loads.
#pragma once

#include <cstdint>

namespace dmakit::net::e1000e {

class RegisterAccess {
public:
    virtual ~RegisterAccess() = default;
    [[nodiscard]] virtual std::uint32_t read32(std::uint32_t offset) = 0;
    virtual void write32(std::uint32_t offset, std::uint32_t value) = 0;
};

// A register value no live device returns for STATUS: the PCIe read of a
// removed or disabled function completes with all ones.
inline constexpr std::uint32_t all_ones = 0xFFFFFFFFu;

}  // namespace dmakit::net::e1000e
