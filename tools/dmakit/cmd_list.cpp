// dmakit list: every PCI function with its ids, names, driver, IOMMU group
// and NUMA node, as a table or (--json) as a JSON array; -v adds each
// function's capabilities, read from its config space.
#include "cli.hpp"
#include <dmakit/support/json_writer.hpp>
#include "table.hpp"

#include <dmakit/pci/capabilities.hpp>
#include <dmakit/pci/names.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/support/number_text.hpp>
#include <dmakit/drivers/net/driver_registry.hpp>
#include <dmakit/drivers/nvme/pci_class.hpp>

#include <cstdio>
#include <type_traits>

namespace dmakit::tool {
namespace {

constexpr std::string_view list_help =
    "usage: dmakit list [--json] [-v|--verbose]\n"
    "\n"
    "List every PCI device: address, vendor:device ids and names, class,\n"
    "current (kernel) driver, the dmakit driver that can run it once it is bound\n"
    "to vfio-pci, IOMMU group and NUMA node ('-' when there is none).\n"
    "\n"
    "  --json      print a JSON array of objects with the keys address, vendor_id,\n"
    "              device_id, vendor, device, class, driver, dmakit_driver,\n"
    "              iommu_group, numa_node (ids as hex strings, group and node as\n"
    "              integers or null)\n"
    "  -v, --verbose\n"
    "              also list each device's PCI capabilities (offset and name, read\n"
    "              from its config space; needs root, which the kernel requires to\n"
    "              show more than the 64-byte header). With --json: the keys\n"
    "              capabilities and extended_capabilities (arrays of objects with\n"
    "              offset, id, name, length, and version for extended ones; null\n"
    "              when unreadable) and capabilities_error (null or why)\n";

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

// A device's capability lists, or why they could not be read.
struct DeviceCapabilities {
    std::optional<pci::CapabilityList> list;
    std::string error;
};

DeviceCapabilities read_capabilities(const pci::Sysfs& sysfs, const pci::PciAddress& address) {
    auto config = sysfs.read_config(address);
    if (!config.ok()) return {std::nullopt, config.error().message()};
    auto list = pci::parse_capabilities(*config);
    if (!list.ok()) return {std::nullopt, list.error().message()};
    return {std::move(*list), ""};
}

// "0x40 MSI-X, 0x84 Vendor Specific (16 bytes); extended: 0x100 Advanced Error Reporting v1"
std::string describe(const DeviceCapabilities& caps) {
    if (!caps.list) return "unreadable: " + caps.error;
    std::string text;
    for (const auto& c : caps.list->standard) {
        text += (text.empty() ? "" : ", ") + to_hex(c.offset) + " " + std::string(pci::capability_name(c.id));
        if (c.id == pci::capability_id::vendor_specific) text += " (" + std::to_string(c.length) + " bytes)";
    }
    if (text.empty()) text = "none";
    std::string extended;
    for (const auto& c : caps.list->extended) {
        extended += (extended.empty() ? "" : ", ") + to_hex(c.offset) + " " +
                    std::string(pci::extended_capability_name(c.id)) + " v" + std::to_string(c.version);
    }
    if (!extended.empty()) text += "; extended: " + extended;
    return text;
}

// KEY: an array of the entries (with version when they have one), or null
// when the config space could not be read.
template <typename Entry, typename NameOf>
void write_capability_array(JsonWriter& json, std::string_view key, const std::vector<Entry>* entries,
                            NameOf name_of) {
    json.key(key);
    if (entries == nullptr) {
        json.null();
        return;
    }
    json.begin_array();
    for (const Entry& c : *entries) {
        json.begin_object();
        json.key("offset").value(unsigned{c.offset});
        json.key("id").value(unsigned{c.id});
        if constexpr (requires { c.version; }) json.key("version").value(unsigned{c.version});
        json.key("name").value(name_of(c.id));
        json.key("length").value(unsigned{c.length});
        json.end_object();
    }
    json.end_array();
}

void print_capabilities_json(const DeviceCapabilities& caps, JsonWriter& json) {
    write_capability_array(json, "capabilities", caps.list ? &caps.list->standard : nullptr, pci::capability_name);
    write_capability_array(json, "extended_capabilities", caps.list ? &caps.list->extended : nullptr,
                           pci::extended_capability_name);
    json.key("capabilities_error");
    if (caps.list) {
        json.null();
    } else {
        json.value(caps.error);
    }
}

// `capabilities` is empty unless -v asked for them.
void print_json(const std::vector<pci::DeviceInfo>& devices, const std::vector<DeviceCapabilities>& capabilities,
                const pci::PciNames& names, std::ostream& out) {
    JsonWriter json(out);
    json.begin_array();
    for (std::size_t i = 0; i < devices.size(); ++i) {
        const auto& d = devices[i];
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
        if (!capabilities.empty()) print_capabilities_json(capabilities[i], json);
        json.end_object();
    }
    json.end_array();
}

void print_table(const std::vector<pci::DeviceInfo>& devices, const std::vector<DeviceCapabilities>& capabilities,
                 const pci::PciNames& names, std::ostream& out) {
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
    if (capabilities.empty()) return;
    // A second table: the lists are too long for a column of the first.
    Table caps({"ADDRESS", "CAPABILITIES"});
    for (std::size_t i = 0; i < devices.size(); ++i) {
        caps.add_row({devices[i].address.to_string(), describe(capabilities[i])});
    }
    out << '\n';
    caps.print(out);
}

}  // namespace

int run_list(const GlobalOptions& options, ArgReader args, const Io& io) {
    bool json = false;
    bool verbose = false;
    while (!args.done()) {
        if (args.help()) {
            io.out << list_help;
            return exit_ok;
        }
        if (args.flag("--json")) {
            json = true;
            continue;
        }
        if (args.flag("-v") || args.flag("--verbose")) {
            verbose = true;
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
    // One device's unreadable config space does not stop the listing.
    std::vector<DeviceCapabilities> capabilities;
    if (verbose) {
        for (const auto& address : *addresses) capabilities.push_back(read_capabilities(sysfs, address));
    }

    pci::PciNames names(options.pci_ids);
    if (json) {
        print_json(devices, capabilities, names, io.out);
    } else {
        print_table(devices, capabilities, names, io.out);
        if (!sysfs.has_iommu_groups()) {
            io.err << "note: no IOMMU groups: VFIO/IOMMU is not enabled, so no device can be bound "
                      "(boot with intel_iommu=on or amd_iommu=on)\n";
        }
    }
    return exit_ok;
}

}  // namespace dmakit::tool
