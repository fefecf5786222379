#include "driver_registry.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>

namespace dmakit::net {

std::string PciId::to_string() const {
    char text[10];
    std::snprintf(text, sizeof text, "%04x:%04x", vendor, device);
    return text;
}

Status NicDriverRegistry::add(PciId id, NicFactory factory, std::string_view driver) {
    if (factory == nullptr) {
        return Error(EINVAL, "NIC registry: null factory given for " + id.to_string());
    }
    for (const auto& e : entries_) {
        if (e.id == id) {
            return Error(EEXIST, "NIC registry: " + id.to_string() + " is already handled by " +
                                     (e.driver.empty() ? std::string("another driver") : e.driver));
        }
    }
    entries_.push_back(NicDriverEntry{id, factory, std::string(driver)});
    return {};
}

Result<const NicDriverEntry*> NicDriverRegistry::find(PciId id) const {
    const auto it = std::find_if(entries_.begin(), entries_.end(),
                                 [&](const NicDriverEntry& e) { return e.id == id; });
    if (it != entries_.end()) return &*it;

    std::string supported;
    for (const auto& e : entries_) {
        if (!supported.empty()) supported += ", ";
        supported += e.id.to_string();
        if (!e.driver.empty()) supported += " (" + e.driver + ")";
    }
    if (supported.empty()) supported = "none (call register_builtin_drivers first)";
    return Error(ENODEV, "no NIC driver for PCI ID " + id.to_string() +
                             "; supported: " + supported);
}

Result<std::unique_ptr<Nic>> NicDriverRegistry::open(PciId id, NicOpenContext& context) const {
    DMAKIT_ASSIGN_OR_RETURN(const NicDriverEntry* entry, find(id));
    return entry->factory(context);
}

}  // namespace dmakit::net
