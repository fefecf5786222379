// dmakit list: every PCI function with its ids, names, driver, IOMMU group
// and NUMA node, as a table or (--json) as a JSON array.
#include "cli.hpp"
#include "json_writer.hpp"
#include "table.hpp"

#include <dmakit/pci/names.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <net/driver_registry.hpp>
#include <nvme/pci_class.hpp>

#include <cstdio>
#include <type_traits>

namespace dmakit::tool {
namespace {

constexpr std::string_view list_help =
    "usage: dmakit list [--json]\n"
    "\n"
    "List every PCI device: address, vendor:device ids and names, class,\n"
    "current (kernel) driver, the dmakit driver that can run it once it is bound\n"
    "to vfio-pci, IOMMU group and NUMA node ('-' when there is none).\n"
    "\n"
    "  --json   print a JSON array of objects with the keys address, vendor_id,\n"
    "           device_id, vendor, device, class, driver, dmakit_driver,\n"
    "           iommu_group, numa_node (ids as hex strings, group and node as\n"
    "           integers or null)\n";

std::string hex4(unsigned value) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "%04x", value & 0xffffu);
    return buffer;
}

template <typename T>
std::string or_dash(const std::optional<T>& value) {
    if (!value) return "-";
    if constexpr (std::is_same_v<T, std::string>) {
        return *value;
    } else {
        return std::to_string(*value);
    }
}

// The dmakit driver for a function: NVMe by class code, NICs by the IDs in
// the built-in driver table (drivers/net/meson.build's net_drivers).
std::optional<std::string> dmakit_driver(const pci::DeviceInfo& d) {
    if (nvme::claims_class(d.class_code)) return std::string("nvme");
    for (const net::NicDriver* driver : net::builtin_nic_drivers()) {
        if (driver->claims(net::PciId{d.vendor_id, d.device_id})) return std::string(driver->name);
    }
    return std::nullopt;
}

void print_json(const std::vector<pci::DeviceInfo>& devices, const pci::PciNames& names,
                std::ostream& out) {
    JsonWriter json(out);
    json.begin_array();
    for (const auto& d : devices) {
        json.begin_object();
        json.key("address").value(d.address.to_string());
        json.key("vendor_id").value(hex4(d.vendor_id));
        json.key("device_id").value(hex4(d.device_id));
        json.key("vendor").value(names.vendor(d.vendor_id));
        json.key("device").value(names.device(d.vendor_id, d.device_id));
        json.key("class").value(names.class_name(d.class_code));
        json.key("driver").value(d.driver);
        json.key("dmakit_driver").value(dmakit_driver(d));
        json.key("iommu_group").value(d.iommu_group);
        json.key("numa_node").value(d.numa_node);
        json.end_object();
    }
    json.end_array();
}

void print_table(const std::vector<pci::DeviceInfo>& devices, const pci::PciNames& names,
                 std::ostream& out) {
    // The free-form names go last so the columns before them stay aligned.
    Table table({"ADDRESS", "ID", "CLASS", "DRIVER", "DMAKIT", "GROUP", "NODE", "DEVICE"});
    for (const auto& d : devices) {
        table.add_row({d.address.to_string(), hex4(d.vendor_id) + ":" + hex4(d.device_id),
                       names.class_name(d.class_code), or_dash(d.driver), or_dash(dmakit_driver(d)),
                       or_dash(d.iommu_group),
                       or_dash(d.numa_node),
                       names.vendor(d.vendor_id) + " " + names.device(d.vendor_id, d.device_id)});
    }
    table.print(out);
}

}  // namespace

int run_list(const GlobalOptions& options, ArgReader args, const Io& io) {
    bool json = false;
    while (!args.done()) {
        if (args.help()) {
            io.out << list_help;
            return exit_ok;
        }
        if (args.flag("--json")) {
            json = true;
            continue;
        }
        return usage_error(io, "unexpected argument '" + args.peek() + "' for list", "list");
    }

    pci::Sysfs sysfs(options.sysfs_root);
    auto addresses = sysfs.list_devices();
    if (!addresses.ok()) return fail(io, addresses.error());
    std::vector<pci::DeviceInfo> devices;
    devices.reserve(addresses->size());
    for (const auto& address : *addresses) {
        auto info = sysfs.device_info(address);
        if (!info.ok()) return fail(io, info.error());
        devices.push_back(std::move(*info));
    }

    pci::PciNames names(options.pci_ids);
    if (json) {
        print_json(devices, names, io.out);
    } else {
        print_table(devices, names, io.out);
        if (!sysfs.has_iommu_groups()) {
            io.err << "note: no IOMMU groups: VFIO/IOMMU is not enabled, so no device can be bound "
                      "(boot with intel_iommu=on or amd_iommu=on)\n";
        }
    }
    return exit_ok;
}

}  // namespace dmakit::tool
