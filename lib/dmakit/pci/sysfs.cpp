#include <dmakit/pci/sysfs.hpp>

#include <dmakit/support/number_text.hpp>
#include <dmakit/support/text_file.hpp>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

namespace dmakit::pci {
namespace fs = std::filesystem;

namespace {

Error no_iommu_error(const std::string& root) {
    return Error(ENODEV,
                 "no IOMMU groups in " + root +
                     "/kernel/iommu_groups: VFIO/IOMMU is not enabled; turn on VT-d/AMD-Vi in "
                     "firmware, boot with intel_iommu=on (or amd_iommu=on), then run: modprobe "
                     "vfio-pci");
}

// Last path component of a symlink's target ("../../bus/pci/drivers/nvme" -> "nvme").
Result<std::optional<std::string>> link_basename(const std::string& path) {
    std::error_code ec;
    fs::path target = fs::read_symlink(path, ec);
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory) return std::optional<std::string>{};
        return system_error(ec.value(), "readlink " + path);
    }
    return std::optional<std::string>(target.filename().string());
}

}  // namespace

Sysfs::Sysfs(std::string root) : root_(std::move(root)) {}

std::string Sysfs::device_path(const PciAddress& address) const {
    return root_ + "/bus/pci/devices/" + address.to_string();
}

std::string Sysfs::driver_path(std::string_view driver) const {
    return root_ + "/bus/pci/drivers/" + std::string(driver);
}

std::string Sysfs::drivers_probe_path() const { return root_ + "/bus/pci/drivers_probe"; }

Result<std::vector<PciAddress>> Sysfs::list_devices() const {
    const std::string folder = root_ + "/bus/pci/devices";
    std::error_code ec;
    fs::directory_iterator it(folder, ec);
    if (ec) {
        return system_error(ec.value(), "list " + folder,
                            "is sysfs mounted and does this machine have a PCI bus?");
    }
    std::vector<PciAddress> devices;
    for (const auto& entry : it) {
        // Entries the kernel did not name as an address are not PCI functions.
        auto address = PciAddress::parse(entry.path().filename().string());
        if (address.ok()) devices.push_back(*address);
    }
    std::sort(devices.begin(), devices.end());
    return devices;
}

Status Sysfs::require_device(const PciAddress& address) const {
    std::error_code ec;
    if (!fs::exists(device_path(address), ec)) {
        return Error(ENOENT, "no PCI device at " + address.to_string() + "; run: dmakit list");
    }
    return {};
}

Result<std::uint32_t> Sysfs::read_hex_attribute(const PciAddress& address,
                                                const std::string& name) const {
    const std::string path = device_path(address) + "/" + name;
    DMAKIT_ASSIGN_OR_RETURN(std::string text, read_trimmed(path));
    std::string_view digits = text;
    if (digits.starts_with("0x") || digits.starts_with("0X")) digits.remove_prefix(2);
    auto value = parse_integer<std::uint32_t>(digits, 16);
    if (!value) return Error(EIO, "unexpected content '" + text + "' in " + path);
    return *value;
}

Result<std::optional<std::string>> Sysfs::driver(const PciAddress& address) const {
    return link_basename(device_path(address) + "/driver");
}

Result<std::optional<unsigned>> Sysfs::iommu_group(const PciAddress& address) const {
    const std::string path = device_path(address) + "/iommu_group";
    DMAKIT_ASSIGN_OR_RETURN(auto name, link_basename(path));
    if (!name) return std::optional<unsigned>{};
    auto group = parse_integer<unsigned>(*name, 10);
    if (!group) return Error(EIO, "unexpected IOMMU group '" + *name + "' behind " + path);
    return std::optional<unsigned>(*group);
}

Result<std::optional<int>> Sysfs::numa_node(const PciAddress& address) const {
    const std::string path = device_path(address) + "/numa_node";
    auto text = read_trimmed(path);
    // Kernels built without NUMA have no numa_node attribute.
    if (!text.ok() && text.error().code() == ENOENT) return std::optional<int>{};
    if (!text.ok()) return std::move(text).error();
    auto node = parse_integer<int>(*text, 10);
    if (!node) return Error(EIO, "unexpected content '" + *text + "' in " + path);
    if (*node < 0) return std::optional<int>{};
    return std::optional<int>(*node);
}

Result<std::vector<std::uint8_t>> Sysfs::read_config(const PciAddress& address) const {
    const std::string path = device_path(address) + "/config";
    DMAKIT_ASSIGN_OR_RETURN(std::string bytes, read_text_file(path));
    return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

Result<DeviceInfo> Sysfs::device_info(const PciAddress& address) const {
    DMAKIT_TRY(require_device(address));
    DeviceInfo info;
    info.address = address;
    DMAKIT_ASSIGN_OR_RETURN(std::uint32_t vendor, read_hex_attribute(address, "vendor"));
    DMAKIT_ASSIGN_OR_RETURN(std::uint32_t device, read_hex_attribute(address, "device"));
    DMAKIT_ASSIGN_OR_RETURN(info.class_code, read_hex_attribute(address, "class"));
    info.vendor_id = static_cast<std::uint16_t>(vendor);
    info.device_id = static_cast<std::uint16_t>(device);
    // Subsystem ids are absent on some bridges; zero means "not reported".
    if (auto v = read_hex_attribute(address, "subsystem_vendor"); v.ok()) {
        info.subsystem_vendor_id = static_cast<std::uint16_t>(*v);
    }
    if (auto d = read_hex_attribute(address, "subsystem_device"); d.ok()) {
        info.subsystem_device_id = static_cast<std::uint16_t>(*d);
    }
    DMAKIT_ASSIGN_OR_RETURN(info.driver, driver(address));
    DMAKIT_ASSIGN_OR_RETURN(info.iommu_group, iommu_group(address));
    DMAKIT_ASSIGN_OR_RETURN(info.numa_node, numa_node(address));
    return info;
}

bool Sysfs::has_iommu_groups() const {
    std::error_code ec;
    fs::directory_iterator it(root_ + "/kernel/iommu_groups", ec);
    return !ec && it != fs::directory_iterator();
}

Status Sysfs::require_iommu_groups() const {
    if (!has_iommu_groups()) return no_iommu_error(root_);
    return {};
}

Result<std::vector<PciAddress>> Sysfs::group_members(unsigned group) const {
    DMAKIT_TRY(require_iommu_groups());
    const std::string folder = root_ + "/kernel/iommu_groups/" + std::to_string(group) + "/devices";
    std::error_code ec;
    fs::directory_iterator it(folder, ec);
    if (ec) return system_error(ec.value(), "list IOMMU group " + std::to_string(group) + " at " + folder);
    std::vector<PciAddress> members;
    for (const auto& entry : it) {
        // Groups can hold non-PCI devices (platform devices); they have no PCI address.
        auto address = PciAddress::parse(entry.path().filename().string());
        if (address.ok()) members.push_back(*address);
    }
    std::sort(members.begin(), members.end());
    return members;
}

bool is_bridge_class(std::uint32_t class_code) noexcept {
    const std::uint32_t base_sub = class_code >> 8;
    return base_sub == 0x0604    // PCI-to-PCI bridge (header type 1)
           || base_sub == 0x0607 // CardBus bridge (header type 2)
           || base_sub == 0x0609;  // semi-transparent PCI-to-PCI bridge (header type 1)
}

}  // namespace dmakit::pci
