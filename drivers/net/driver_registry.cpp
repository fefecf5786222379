#include <dmakit/drivers/net/driver_registry.hpp>

#include <cerrno>
#include <cstdio>

namespace dmakit::net {

std::string PciId::to_string() const {
    char text[10];
    std::snprintf(text, sizeof text, "%04x:%04x", vendor, device);
    return text;
}

Status NicDriverRegistry::add(const NicDriver& driver) {
    const std::string name(driver.name);
    if (driver.name.empty() || driver.ids.empty() || driver.open == nullptr) {
        return Error(EINVAL, "NIC registry: driver '" + name + "' needs a name, PCI IDs and an open function");
    }
    for (const NicDriver* other : drivers_) {
        for (const PciId& id : driver.ids) {
            if (other->claims(id)) {
                return Error(EEXIST, "NIC registry: " + id.to_string() + " of driver " + name +
                                         " is already claimed by " + std::string(other->name));
            }
        }
    }
    drivers_.push_back(&driver);
    return {};
}

Result<const NicDriver*> NicDriverRegistry::find(PciId id) const {
    for (const NicDriver* driver : drivers_) {
        if (driver->claims(id)) return driver;
    }
    std::string supported;
    for (const NicDriver* driver : drivers_) {
        for (const PciId& mine : driver->ids) {
            if (!supported.empty()) supported += ", ";
            supported += mine.to_string() + " (" + std::string(driver->name) + ")";
        }
    }
    if (supported.empty()) supported = "none (call register_builtin_drivers first)";
    return Error(ENODEV, "no NIC driver for PCI ID " + id.to_string() + "; supported: " + supported);
}

Result<std::unique_ptr<Nic>> NicDriverRegistry::open(PciId id, NicOpenContext& context) const {
    DMAKIT_ASSIGN_OR_RETURN(const NicDriver* driver, find(id));
    return driver->open(context);
}

}  // namespace dmakit::net
