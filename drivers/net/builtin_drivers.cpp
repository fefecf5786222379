// register_builtin_drivers: the one place that knows which NIC drivers ship.
#include "driver_registry.hpp"

#include "e1000e/e1000e.hpp"

namespace dmakit::net {

Status register_builtin_drivers(NicDriverRegistry& registry) {
    for (const PciId& id : e1000e::supported_ids) {
        DMAKIT_TRY(registry.add(id, &e1000e::open, "e1000e"));
    }
    return {};
}

}  // namespace dmakit::net
