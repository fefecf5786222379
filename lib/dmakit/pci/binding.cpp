#include <dmakit/pci/binding.hpp>

#include <dmakit/pci/host_use.hpp>
#include <dmakit/support/text_file.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <filesystem>
#include <vector>

namespace dmakit::pci {
namespace {

bool contains(std::span<const PciAddress> list, const PciAddress& address) {
    return std::find(list.begin(), list.end(), address) != list.end();
}

// "A; REMEDY A; B; REMEDY B": every use, each with what to do about it.
std::string describe(const std::vector<HostUse>& uses) {
    std::string text;
    for (const HostUse& use : uses) text += (text.empty() ? "" : "; ") + use.what + "; " + use.remedy;
    return text;
}

}  // namespace

bool driver_allowed_in_vfio_group(const std::optional<std::string>& driver,
                                  std::uint32_t class_code) {
    if (!driver) return true;
    if (is_bridge_class(class_code)) return true;
    // vfio-pci and its variant drivers (mlx5_vfio_pci, ...) all carry "vfio".
    if (driver->find("vfio") != std::string::npos) return true;
    constexpr std::array<std::string_view, 2> allowed = {"pci-stub", "pcieport"};
    return std::find(allowed.begin(), allowed.end(), *driver) != allowed.end();
}

Binder::Binder(Sysfs sysfs)
    : Binder(std::move(sysfs), [](const std::string& path, std::string_view value) {
          return write_text_file(path, value);
      }) {}

Binder::Binder(Sysfs sysfs, AttributeWriter writer)
    : sysfs_(std::move(sysfs)), writer_(std::move(writer)) {}

Status Binder::check_group_viable(const PciAddress& address,
                                  std::span<const PciAddress> binding_together) const {
    DMAKIT_ASSIGN_OR_RETURN(auto group, sysfs_.iommu_group(address));
    if (!group) {
        DMAKIT_TRY(sysfs_.require_iommu_groups());
        return Error(ENODEV, address.to_string() +
                                 " is in no IOMMU group; the IOMMU does not cover it, so VFIO "
                                 "cannot use it");
    }
    DMAKIT_ASSIGN_OR_RETURN(auto members, sysfs_.group_members(*group));
    for (const PciAddress& member : members) {
        if (member == address || contains(binding_together, member)) continue;
        DMAKIT_ASSIGN_OR_RETURN(auto driver, sysfs_.driver(member));
        DMAKIT_ASSIGN_OR_RETURN(std::uint32_t class_code,
                                sysfs_.read_hex_attribute(member, "class"));
        if (driver_allowed_in_vfio_group(driver, class_code)) continue;
        const std::string name = member.to_string();
        return Error(EBUSY, "cannot bind " + address.to_string() + ": IOMMU group " +
                                std::to_string(*group) + " also holds " + name +
                                ", which is bound to " + *driver +
                                "; VFIO needs the whole group, so bind it too: dmakit bind " +
                                address.to_string() + " " + name);
    }
    return {};
}

Status Binder::check_not_in_use(const PciAddress& address, std::span<const PciAddress> binding_together,
                                const HostView& host) const {
    const std::string name = address.to_string();
    DMAKIT_ASSIGN_OR_RETURN(auto uses, host_use(sysfs_, host, address));
    if (!uses.empty()) {
        return Error(EBUSY, "will not bind " + name + ": " + describe(uses) +
                                ", or bind anyway with: dmakit bind --force " + name);
    }
    DMAKIT_ASSIGN_OR_RETURN(auto group, sysfs_.iommu_group(address));
    if (!group) return {};
    DMAKIT_ASSIGN_OR_RETURN(auto members, sysfs_.group_members(*group));
    for (const PciAddress& member : members) {
        if (member == address || contains(binding_together, member)) continue;
        // A bridge elsewhere in the group stays with its driver; only its own use counts.
        DMAKIT_ASSIGN_OR_RETURN(auto member_uses, host_use(sysfs_, host, member, false));
        if (member_uses.empty()) continue;
        return Error(EBUSY, "will not bind " + name + ": " + member.to_string() + " in its IOMMU group " +
                                std::to_string(*group) + " is in use: " + describe(member_uses) +
                                ", or bind anyway with: dmakit bind --force " + name);
    }
    return {};
}

Status Binder::check_bindable(const PciAddress& address,
                              std::span<const PciAddress> together) const {
    DMAKIT_TRY(sysfs_.require_device(address));
    // Checked before anything is written: without an IOMMU there is nothing to bind to.
    DMAKIT_TRY(sysfs_.require_iommu_groups());
    std::error_code ec;
    if (!std::filesystem::exists(sysfs_.driver_path(vfio_pci_driver), ec)) {
        return Error(ENODEV, "the vfio-pci driver is not loaded (no " +
                                 sysfs_.driver_path(vfio_pci_driver) + "); run: modprobe vfio-pci");
    }
    return check_group_viable(address, together);
}

Status Binder::bind_one(const PciAddress& address) const {
    const std::string name = address.to_string();
    const std::string device = sysfs_.device_path(address);
    DMAKIT_ASSIGN_OR_RETURN(auto current, sysfs_.driver(address));
    if (current && *current == vfio_pci_driver) return {};

    auto step = [&](const std::string& path, std::string_view value) -> Status {
        auto status = writer_(path, value);
        if (!status.ok()) return status.error().with_context("binding " + name + " to vfio-pci");
        return {};
    };
    DMAKIT_TRY(step(device + "/driver_override", vfio_pci_driver));
    if (current) DMAKIT_TRY(step(device + "/driver/unbind", name));
    DMAKIT_TRY(step(sysfs_.drivers_probe_path(), name));

    DMAKIT_ASSIGN_OR_RETURN(auto now, sysfs_.driver(address));
    if (!now || *now != vfio_pci_driver) {
        return Error(EIO, name + " did not bind to vfio-pci (driver now: " +
                              (now ? *now : std::string("none")) +
                              "); see the kernel log: dmesg | tail");
    }
    return {};
}

Status Binder::unbind_one(const PciAddress& address) const {
    const std::string name = address.to_string();
    const std::string device = sysfs_.device_path(address);
    DMAKIT_TRY(sysfs_.require_device(address));
    DMAKIT_ASSIGN_OR_RETURN(auto current, sysfs_.driver(address));

    auto step = [&](const std::string& path, std::string_view value) -> Status {
        auto status = writer_(path, value);
        if (!status.ok()) return status.error().with_context("unbinding " + name + " from vfio-pci");
        return {};
    };
    // "\n" clears the override (sysfs-bus-pci, driver_override).
    DMAKIT_TRY(step(device + "/driver_override", "\n"));
    if (!current || *current != vfio_pci_driver) return {};
    DMAKIT_TRY(step(device + "/driver/unbind", name));
    DMAKIT_TRY(step(sysfs_.drivers_probe_path(), name));

    DMAKIT_ASSIGN_OR_RETURN(auto now, sysfs_.driver(address));
    if (now && *now == vfio_pci_driver) {
        return Error(EIO, name + " is still bound to vfio-pci after unbinding; see the kernel "
                                 "log: dmesg | tail");
    }
    return {};
}

Status Binder::restore(const PciAddress& address, const std::optional<std::string>& driver,
                       const std::string& override_value) const {
    const std::string name = address.to_string();
    const std::string device = sysfs_.device_path(address);
    DMAKIT_ASSIGN_OR_RETURN(auto current, sysfs_.driver(address));
    DMAKIT_TRY(writer_(device + "/driver_override", override_value.empty() ? "\n" : override_value));
    if (current == driver) return {};
    if (current) DMAKIT_TRY(writer_(device + "/driver/unbind", name));
    if (driver) DMAKIT_TRY(writer_(sysfs_.drivers_probe_path(), name));
    DMAKIT_ASSIGN_OR_RETURN(auto now, sysfs_.driver(address));
    if (now != driver) {
        return Error(EIO, name + " did not go back to " + driver.value_or("no driver") + " (driver now: " +
                              now.value_or("none") + "); run: dmakit unbind " + name);
    }
    return {};
}

Status Binder::bind_to_vfio(std::span<const PciAddress> devices, const BindOptions& options) const {
    for (const PciAddress& address : devices) {
        DMAKIT_TRY(check_bindable(address, devices));
        if (!options.force) DMAKIT_TRY(check_not_in_use(address, devices, options.host));
    }
    // What each device had, to put back if a later one fails.
    struct Before {
        std::optional<std::string> driver;
        std::string override_value;
    };
    std::vector<Before> before;
    for (const PciAddress& address : devices) {
        DMAKIT_ASSIGN_OR_RETURN(auto driver, sysfs_.driver(address));
        auto override_value = read_trimmed(sysfs_.device_path(address) + "/driver_override");
        // "(null)" is how the kernel shows an unset override.
        std::string value = override_value.ok() && *override_value != "(null)" ? *override_value : "";
        before.push_back({driver, value});
    }
    for (std::size_t i = 0; i < devices.size(); ++i) {
        auto status = bind_one(devices[i]);
        if (status.ok()) continue;
        std::string put_back;
        std::string stuck;
        for (std::size_t k = 0; k <= i; ++k) {
            if (before[k].driver == std::optional<std::string>(vfio_pci_driver)) continue;
            const std::string name = devices[k].to_string();
            const std::string was = before[k].driver.value_or("no driver");
            auto undone = restore(devices[k], before[k].driver, before[k].override_value);
            if (undone.ok()) {
                if (k < i) put_back += (put_back.empty() ? "" : ", ") + name + " (" + was + ")";
            } else {
                stuck += "; could not put " + name + " back on " + was + ": " + undone.error().message();
            }
        }
        std::string message = status.error().message();
        if (!put_back.empty()) message += "; gave back " + put_back;
        return Error(status.error().code(), message + stuck);
    }
    return {};
}

Status Binder::bind_to_vfio(const PciAddress& address, const BindOptions& options) const {
    return bind_to_vfio(std::span<const PciAddress>(&address, 1), options);
}

Status Binder::unbind_from_vfio(std::span<const PciAddress> devices) const {
    for (const PciAddress& address : devices) DMAKIT_TRY(sysfs_.require_device(address));
    for (const PciAddress& address : devices) DMAKIT_TRY(unbind_one(address));
    return {};
}

Status Binder::unbind_from_vfio(const PciAddress& address) const {
    return unbind_from_vfio(std::span<const PciAddress>(&address, 1));
}

}  // namespace dmakit::pci
