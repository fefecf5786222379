// PciAddress: a PCI function's location, domain:bus:device.function.
//
// The text form is the one sysfs uses for bus/pci/devices entries
// (Documentation/ABI/testing/sysfs-bus-pci): "0000:00:04.0", four or more
// hex digits of domain, two of bus, two of device (0-1f), one function (0-7).
// The short "00:04.0" form (lspci's, domain 0) is accepted on input.
#pragma once

#include <dmakit/support/result.hpp>

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace dmakit::pci {

struct PciAddress {
    std::uint32_t domain = 0;
    std::uint8_t bus = 0;
    std::uint8_t device = 0;    // 0-31
    std::uint8_t function = 0;  // 0-7

    static constexpr std::uint8_t max_device = 31;
    static constexpr std::uint8_t max_function = 7;

    // Strict: no surrounding blanks, no trailing junk. Errors are EINVAL and
    // quote the input next to the expected form.
    [[nodiscard]] static Result<PciAddress> parse(std::string_view text);

    // "0000:00:04.0" (lowercase hex, domain at least four digits).
    [[nodiscard]] std::string to_string() const;

    friend auto operator<=>(const PciAddress&, const PciAddress&) = default;
};

}  // namespace dmakit::pci
