// open_nic: from a PCI address to a running port, choosing the driver by the
// device's vendor/device ID (read from sysfs) through an explicit registry.
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/driver_registry.hpp>
#include <dmakit/drivers/net/nic.hpp>
#include <dmakit/drivers/net/nic_open_context.hpp>

#include <memory>

namespace dmakit::net {

// ENODEV "no PCI device at BDF" when sysfs does not know the address; the
// registry's ENODEV when no driver claims the ID; the driver's errors after
// that (a device on another driver says "run: dmakit bind BDF").
[[nodiscard]] Result<std::unique_ptr<Nic>> open_nic(const NicDriverRegistry& registry,
                                                    NicOpenContext& context);

}  // namespace dmakit::net
