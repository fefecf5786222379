// PCI discovery through sysfs.
//
// Everything is read below a root folder given to the constructor (default
// "/sys"), so the unit tests can run over a fake tree in a temp folder. The
// attributes used are those of Documentation/ABI/testing/sysfs-bus-pci and
// sysfs-kernel-iommu_groups:
//   bus/pci/devices/ADDR/{vendor,device,class,subsystem_vendor,subsystem_device,numa_node}
//   bus/pci/devices/ADDR/driver        -> symlink to bus/pci/drivers/NAME
//   bus/pci/devices/ADDR/iommu_group   -> symlink to kernel/iommu_groups/N
//   kernel/iommu_groups/N/devices/ADDR
//   bus/pci/devices/ADDR/config        config space bytes (64 of them without root)
#pragma once

#include <dmakit/pci/address.hpp>
#include <dmakit/support/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dmakit::pci {

struct DeviceInfo {
    PciAddress address;
    std::uint16_t vendor_id = 0;
    std::uint16_t device_id = 0;
    std::uint16_t subsystem_vendor_id = 0;
    std::uint16_t subsystem_device_id = 0;
    std::uint32_t class_code = 0;              // 24 bits: base class, subclass, prog-if
    std::optional<std::string> driver;         // nullopt: not bound
    std::optional<unsigned> iommu_group;       // nullopt: no IOMMU (or not in a group)
    std::optional<int> numa_node;              // nullopt: the kernel reports -1 (no affinity)
};

class Sysfs {
public:
    explicit Sysfs(std::string root = "/sys");

    [[nodiscard]] const std::string& root() const noexcept { return root_; }
    // ROOT/bus/pci/devices/ADDR
    [[nodiscard]] std::string device_path(const PciAddress& address) const;
    // ROOT/bus/pci/drivers/NAME
    [[nodiscard]] std::string driver_path(std::string_view driver) const;
    // ROOT/bus/pci/drivers_probe
    [[nodiscard]] std::string drivers_probe_path() const;

    // Every PCI function, sorted by address.
    [[nodiscard]] Result<std::vector<PciAddress>> list_devices() const;

    // ENOENT "no PCI device at ADDR; run: dmakit list" when absent.
    [[nodiscard]] Status require_device(const PciAddress& address) const;

    [[nodiscard]] Result<DeviceInfo> device_info(const PciAddress& address) const;

    // A hex attribute such as "vendor" ("0x1b36").
    [[nodiscard]] Result<std::uint32_t> read_hex_attribute(const PciAddress& address,
                                                           const std::string& name) const;
    [[nodiscard]] Result<std::optional<std::string>> driver(const PciAddress& address) const;
    [[nodiscard]] Result<std::optional<unsigned>> iommu_group(const PciAddress& address) const;
    [[nodiscard]] Result<std::optional<int>> numa_node(const PciAddress& address) const;
    // The function's config space as the kernel shows it: 256 or 4096 bytes
    // for root, only the 64-byte header for anyone else (pci-sysfs.c
    // pci_read_config). Parse it with parse_capabilities (capabilities.hpp).
    [[nodiscard]] Result<std::vector<std::uint8_t>> read_config(const PciAddress& address) const;

    // True when the kernel has at least one IOMMU group.
    [[nodiscard]] bool has_iommu_groups() const;
    // ENODEV with what to do (enable the IOMMU, load vfio-pci) when there are none.
    [[nodiscard]] Status require_iommu_groups() const;

    // Members of IOMMU group `group`, sorted.
    [[nodiscard]] Result<std::vector<PciAddress>> group_members(unsigned group) const;

private:
    std::string root_;
};

// Base class and subclass (class_code >> 8) of PCI-to-PCI and CardBus bridges,
// whose header type is not "normal" (PCI spec: header types 1 and 2).
[[nodiscard]] bool is_bridge_class(std::uint32_t class_code) noexcept;

}  // namespace dmakit::pci
