#include <dmakit/drivers/net/virtio/pci_structures.hpp>

#include <dmakit/drivers/net/virtio/spec.hpp>

#include <dmakit/pci/capabilities.hpp>

#include <cerrno>
#include <string>

namespace dmakit::net::virtio {
namespace {

std::uint32_t load32(std::span<const std::uint8_t> config, std::size_t offset) {
    return static_cast<std::uint32_t>(config[offset]) | (static_cast<std::uint32_t>(config[offset + 1]) << 8) |
           (static_cast<std::uint32_t>(config[offset + 2]) << 16) |
           (static_cast<std::uint32_t>(config[offset + 3]) << 24);
}

// The bytes a structure must have for the driver to use it.
constexpr std::uint64_t kCommonNeeded = common::size;
constexpr std::uint64_t kNotifyNeeded = 2;  // one 16-bit doorbell (§4.1.4.4)
constexpr std::uint64_t kDeviceNeeded = 1;

bool usable(const StructureLocation& s, std::uint64_t needed, const MappedCheck& mapped) {
    return s.length >= needed && mapped(s.bar, s.offset, s.length);
}

}  // namespace

Result<StructureCandidates> find_structures(std::span<const std::uint8_t> config) {
    DMAKIT_ASSIGN_OR_RETURN(const pci::CapabilityList list, pci::parse_capabilities(config));
    StructureCandidates found;
    for (const pci::Capability& cap : list.find_all(pci::capability_id::vendor_specific)) {
        // parse_capabilities guarantees cap.length bytes from cap.offset exist.
        if (cap.length < pci_cap::size) continue;  // not a virtio_pci_cap
        const std::size_t at = cap.offset;
        const std::uint8_t type = config[at + pci_cap::cfg_type];
        StructureLocation where;
        where.bar = config[at + pci_cap::bar];
        where.offset = load32(config, at + pci_cap::offset);
        where.length = load32(config, at + pci_cap::length);
        if (where.bar > pci_cap::max_bar) continue;  // reserved BAR value: ignored (§4.1.4.1)
        switch (type) {
            case pci_cap::common_cfg: found.common.push_back(where); break;
            case pci_cap::isr_cfg: found.isr.push_back(where); break;
            case pci_cap::device_cfg: found.device.push_back(where); break;
            case pci_cap::notify_cfg:
                if (cap.length < pci_cap::notify_size) break;  // no multiplier: unusable
                found.notify.push_back({where, load32(config, at + pci_cap::notify_off_multiplier)});
                break;
            default: break;  // PCI_CFG, shared memory, vendor data, reserved: not ours
        }
    }
    return found;
}

Result<ChosenStructures> choose_structures(const StructureCandidates& candidates, const MappedCheck& mapped,
                                           std::string_view device) {
    auto missing = [&](const char* what, const char* section) {
        return Error(ENODEV, "virtio-net " + std::string(device) + ": no usable " + what + " (virtio 1.2 " +
                                 section + ") in a mapped memory BAR; the device is not a modern virtio PCI "
                                 "device or its BARs are not memory (for QEMU: disable-legacy=on,iommu_platform=on)");
    };
    ChosenStructures chosen;
    bool have_common = false, have_notify = false, have_device = false;
    for (const auto& s : candidates.common) {
        if (usable(s, kCommonNeeded, mapped)) {
            chosen.common = s;
            have_common = true;
            break;
        }
    }
    for (const auto& n : candidates.notify) {
        if (usable(n.where, kNotifyNeeded, mapped) && n.where.offset % 2 == 0) {
            chosen.notify = n;
            have_notify = true;
            break;
        }
    }
    for (const auto& s : candidates.device) {
        if (usable(s, kDeviceNeeded, mapped)) {
            chosen.device = s;
            have_device = true;
            break;
        }
    }
    if (!have_common) return missing("common configuration structure", "§4.1.4.3");
    if (!have_notify) return missing("notification structure", "§4.1.4.4");
    if (!have_device) return missing("device-specific configuration structure", "§4.1.4.6");
    return chosen;
}

}  // namespace dmakit::net::virtio
