// NicDriver: a NIC driver as data. Each driver exports one constant of this
// type (e.g. e1000e::driver in e1000e/e1000e.hpp): its name, the PCI IDs it
// claims and its open function. drivers/net/meson.build lists the drivers to
// build (`net_drivers`), and the build turns that list into the table
// register_builtin_drivers() walks (builtin_net_drivers.hpp, generated), so
// adding a driver is one folder and one word: docs/writing-a-driver.md.
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/nic.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace dmakit::net {

struct NicOpenContext;  // nic_open_context.hpp

struct PciId {
    std::uint16_t vendor = 0;
    std::uint16_t device = 0;
    friend bool operator==(const PciId&, const PciId&) = default;
    [[nodiscard]] std::string to_string() const;  // "8086:10d3"
};

using NicFactory = Result<std::unique_ptr<Nic>> (*)(NicOpenContext& context);

struct NicDriver {
    std::string_view name;      // "e1000e": in `dmakit list`, messages, meson's net_drivers
    std::span<const PciId> ids; // the functions it drives
    NicFactory open = nullptr;  // brings a port up (see open_port.hpp for the shared part)

    [[nodiscard]] bool claims(PciId id) const noexcept {
        for (const PciId& mine : ids) {
            if (mine == id) return true;
        }
        return false;
    }
};

// A driver left out of this build, and why (meson: the driver's own
// meson.build set `build = false` with a `reason`, or -Ddisable_net_drivers).
struct DisabledNicDriver {
    std::string_view name;
    std::string_view reason;
};

}  // namespace dmakit::net
