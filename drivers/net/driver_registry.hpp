// NicDriverRegistry: which driver opens which PCI device.
//
// An explicit object the program fills (register_builtin_drivers adds the
// drivers this build ships, from the table meson generates); no static
// constructors, no global table. Two registries in one process are
// independent, and a program may add drivers of its own.
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/nic.hpp>
#include <dmakit/drivers/net/nic_driver.hpp>

#include <span>
#include <vector>

namespace dmakit::net {

class NicDriverRegistry {
public:
    // Adds every ID of `driver` (which must outlive the registry: drivers
    // are constants). EINVAL for a driver without name, IDs or open
    // function; EEXIST when another driver already claims one of the IDs
    // (nothing is added then).
    [[nodiscard]] Status add(const NicDriver& driver);

    // ENODEV naming the supported IDs when no driver claims `id`.
    [[nodiscard]] Result<const NicDriver*> find(PciId id) const;
    [[nodiscard]] Result<std::unique_ptr<Nic>> open(PciId id, NicOpenContext& context) const;

    [[nodiscard]] std::span<const NicDriver* const> drivers() const noexcept { return drivers_; }

private:
    std::vector<const NicDriver*> drivers_;
};

// The NIC drivers built into this dmakit, in meson's `net_drivers` order,
// and those left out with the reason.
[[nodiscard]] std::span<const NicDriver* const> builtin_nic_drivers() noexcept;
[[nodiscard]] std::span<const DisabledNicDriver> disabled_nic_drivers() noexcept;

// Adds every built-in driver.
[[nodiscard]] Status register_builtin_drivers(NicDriverRegistry& registry);

}  // namespace dmakit::net
