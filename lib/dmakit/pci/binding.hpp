// Moving PCI functions to vfio-pci and back, through sysfs.
//
// Bind (Documentation/ABI/testing/sysfs-bus-pci, "driver_override"):
//   1. write "vfio-pci" to ADDR/driver_override, so only vfio-pci may claim it;
//   2. write ADDR to ADDR/driver/unbind, releasing the current driver;
//   3. write ADDR to bus/pci/drivers_probe, letting vfio-pci claim it;
//   4. read ADDR/driver back and check it is vfio-pci.
// Unbind clears driver_override (writing "\n"), unbinds from vfio-pci and
// probes again, so the device's own driver (if any) takes it back.
//
// Before binding, the whole IOMMU group is checked: VFIO only lets user space
// use a group when every member is safe (Documentation/driver-api/vfio.rst,
// "Groups, Devices, and IOMMUs"). See driver_allowed_in_vfio_group().
//
// And the host's own use is checked (host_use.hpp): a device with a mounted
// filesystem, an interface carrying traffic, a bridge, or a group member in
// such use is refused unless BindOptions::force. Binding several devices is
// all or nothing: on a failure the devices already moved go back to the
// driver they had.
#pragma once

#include <dmakit/pci/address.hpp>
#include <dmakit/pci/host_use.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/support/result.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace dmakit::pci {

inline constexpr std::string_view vfio_pci_driver = "vfio-pci";

// Whether a group member bound to `driver` (nullopt: unbound) with class
// `class_code` leaves the group usable by VFIO. Mirrors the kernel's rule:
// - up to 5.18, drivers/vfio/vfio.c vfio_dev_driver_allowed(): unbound, a vfio
//   driver, "pci-stub", or any PCI device whose header type is not normal
//   (bridges, whatever their driver);
// - since 5.19, pci_dma_configure() (drivers/pci/pci-driver.c) makes every
//   driver claim the group's DMA except those with driver_managed_dma set
//   (vfio-pci and its variants, pci-stub, pcieport), and VFIO's
//   iommu_group_claim_dma_owner() fails while such a claim is held.
// This check accepts the union (unbound, *vfio*, pci-stub, pcieport, bridges),
// so on 5.19+ a bridge on a driver other than pcieport passes here and VFIO
// itself refuses the group when it is opened.
[[nodiscard]] bool driver_allowed_in_vfio_group(const std::optional<std::string>& driver,
                                                std::uint32_t class_code);

struct BindOptions {
    bool force = false;  // bind even what the host is using
    HostView host;       // where the host's use is read (a fake /proc in tests)
};

class Binder {
public:
    // Writes one sysfs attribute; tests replace it to record the writes and
    // to play the kernel's part (moving the driver symlink).
    using AttributeWriter = std::function<Status(const std::string& path, std::string_view value)>;

    explicit Binder(Sysfs sysfs);
    Binder(Sysfs sysfs, AttributeWriter writer);

    // Refuses (EBUSY) when a member of `address`'s IOMMU group other than
    // those in `binding_together` is bound to a driver VFIO does not allow,
    // naming the member, its driver and the command to fix it.
    [[nodiscard]] Status check_group_viable(const PciAddress& address,
                                            std::span<const PciAddress> binding_together = {}) const;

    // Refuses (EBUSY) when the host uses `address` or another member of its
    // IOMMU group not in `binding_together`, saying what and how to free it.
    [[nodiscard]] Status check_not_in_use(const PciAddress& address, std::span<const PciAddress> binding_together,
                                          const HostView& host) const;

    // Checks every device first (exists, IOMMU on, vfio-pci loaded, groups
    // viable counting the others in the list as bound, not used by the host
    // unless options.force), then binds each one. Devices already on vfio-pci
    // are left alone. If one fails, those already moved are given back to
    // their drivers and the error says so.
    [[nodiscard]] Status bind_to_vfio(std::span<const PciAddress> devices, const BindOptions& options = {}) const;
    [[nodiscard]] Status bind_to_vfio(const PciAddress& address, const BindOptions& options = {}) const;

    // Gives each device back to the kernel; devices not on vfio-pci only get
    // their driver_override cleared.
    [[nodiscard]] Status unbind_from_vfio(std::span<const PciAddress> devices) const;
    [[nodiscard]] Status unbind_from_vfio(const PciAddress& address) const;

    [[nodiscard]] const Sysfs& sysfs() const noexcept { return sysfs_; }

private:
    [[nodiscard]] Status check_bindable(const PciAddress& address,
                                        std::span<const PciAddress> together) const;
    [[nodiscard]] Status bind_one(const PciAddress& address) const;
    // Puts a device back on `driver` (nullopt: unbound) with `override_value`.
    [[nodiscard]] Status restore(const PciAddress& address, const std::optional<std::string>& driver,
                                 const std::string& override_value) const;
    [[nodiscard]] Status unbind_one(const PciAddress& address) const;

    Sysfs sysfs_;
    AttributeWriter writer_;
};

}  // namespace dmakit::pci
