// HwStats: the 82574's statistics registers folded into 64-bit totals.
//
// The registers clear on read (§10.2.7, "Statistics Registers") and are at
// most 32 bits wide per half, so the driver reads them periodically (on every
// stats() call, and often enough that none can wrap) and adds each read to a
// 64-bit accumulator. A read taken while the device has gone away (STATUS all
// ones) is discarded, never added.
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/nic.hpp>
#include <dmakit/drivers/net/e1000e/register_access.hpp>

#include <array>
#include <cstdint>
#include <string_view>

namespace dmakit::net::e1000e {

struct StatRegister {
    std::string_view name;   // lower-case datasheet mnemonic: "gprc", "gorc"
    std::uint32_t low;
    std::uint32_t high;      // 0 for 32-bit counters; low is read before high
};

inline constexpr std::size_t stat_register_count = 35;
[[nodiscard]] const std::array<StatRegister, stat_register_count>& stat_registers() noexcept;

class HwStats {
public:
    // Reads every counter once and adds it to the totals. ENODEV (totals
    // unchanged) when the device does not answer.
    [[nodiscard]] Status fold(RegisterAccess& regs);
    // Totals back to zero (the registers themselves are cleared by reading).
    void reset() noexcept { totals_.fill(0); }

    // Total for a mnemonic from stat_registers(); 0 for an unknown name.
    [[nodiscard]] std::uint64_t value(std::string_view name) const noexcept;
    [[nodiscard]] DeviceCounters counters() const;

private:
    std::array<std::uint64_t, stat_register_count> totals_{};
};

}  // namespace dmakit::net::e1000e
