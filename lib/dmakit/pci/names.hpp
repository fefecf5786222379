// Vendor, device and class names from the PCI ID database, through libpci.
//
// A PciNames owns one libpci access object (pci_alloc/pci_cleanup). When the
// database (pci.ids, or udev's hwdb) is missing or unreadable, or an id is
// not in it, the lookups return the id in hex ("1b36") instead of failing:
// names are a convenience, never a reason to stop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

struct pci_access;  // libpci; kept out of this header

namespace dmakit::pci {

class PciNames {
public:
    // `ids_file`: a pci.ids to use instead of the system one; given one, udev's
    // hwdb is not consulted either, so the answers depend on that file only.
    explicit PciNames(std::optional<std::string> ids_file = std::nullopt);
    ~PciNames();
    PciNames(PciNames&&) noexcept;
    PciNames& operator=(PciNames&&) noexcept;
    PciNames(const PciNames&) = delete;
    PciNames& operator=(const PciNames&) = delete;

    // False when no ID database could be loaded (every lookup is then hex).
    [[nodiscard]] bool has_database() const noexcept { return database_loaded_; }

    [[nodiscard]] std::string vendor(std::uint16_t vendor_id) const;
    [[nodiscard]] std::string device(std::uint16_t vendor_id, std::uint16_t device_id) const;
    // `class_code` is the 24-bit sysfs "class" (base, subclass, prog-if).
    [[nodiscard]] std::string class_name(std::uint32_t class_code) const;

private:
    struct AccessDeleter {
        void operator()(pci_access* access) const noexcept;
    };
    std::unique_ptr<pci_access, AccessDeleter> access_;
    bool database_loaded_ = false;
};

}  // namespace dmakit::pci
