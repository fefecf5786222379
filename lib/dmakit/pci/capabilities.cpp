#include <dmakit/pci/capabilities.hpp>

#include <dmakit/support/number_text.hpp>

#include <algorithm>
#include <array>
#include <bitset>
#include <cerrno>
#include <string>

namespace dmakit::pci {
namespace {

// PCI 3.0 §6.2.3 (Status) and §6.7 (Capabilities Pointer).
constexpr std::size_t status_offset = 0x06;
constexpr std::uint16_t status_capabilities_list = 1u << 4;
constexpr std::size_t capabilities_pointer_offset = 0x34;
constexpr std::uint32_t pointer_mask = ~std::uint32_t{3};

// Each entry takes at least a dword, so a list without a loop has at most
// this many: 48 standard, 960 extended. The walks mark visited dwords, so
// they can never take more steps than that.
constexpr std::size_t max_standard_entries = (config_space_size - config_header_size) / 4;
constexpr std::size_t max_extended_entries = (extended_config_space_size - config_space_size) / 4;

// PCIe Base §7.6.3: no extended capabilities reads 0 at 0x100; a function
// that does not decode extended config space (or is gone) reads all ones.
constexpr std::uint32_t no_extended_list = 0;
constexpr std::uint32_t all_ones = 0xffffffff;

// Config space is little-endian (PCI 3.0 §6.1); callers check the bounds.
std::uint16_t load16(std::span<const std::uint8_t> config, std::size_t offset) {
    return static_cast<std::uint16_t>(config[offset] | (config[offset + 1] << 8));
}

std::uint32_t load32(std::span<const std::uint8_t> config, std::size_t offset) {
    return static_cast<std::uint32_t>(load16(config, offset)) |
           (static_cast<std::uint32_t>(load16(config, offset + 2)) << 16);
}

Error malformed(const std::string& detail) {
    return Error(EPROTO, "malformed PCI capability list: " + detail);
}

// "the 64 bytes given" plus why there may be only 64.
std::string bytes_given(std::size_t size) {
    std::string text = "the " + std::to_string(size) + " bytes of config space given";
    if (size == config_header_size) {
        text += " (without root, sysfs config shows only the 64-byte header; run as root)";
    }
    return text;
}

// Size the spec gives a standard capability, read from its own registers
// where it varies; 0 when the bytes that say it are not inside `limit`.
std::size_t standard_length(std::span<const std::uint8_t> config, std::size_t offset, std::uint8_t id,
                            std::size_t limit) {
    const bool has_word_2 = offset + 4 <= limit;  // the 16-bit register after ID and next
    switch (id) {
        case capability_id::power_management:
            return 8;  // PCI PM 1.2 §3.2: PMC, PMCSR, bridge extension, data
        case capability_id::msix:
            return 12;  // PCI 3.0 §6.8.2: control, table and PBA offsets
        case capability_id::vendor_specific:
            // PCI 3.0 §6.7 / appendix H: the byte after next is the length.
            return offset + 3 <= limit ? config[offset + 2] : 0;
        case capability_id::msi: {
            // PCI 3.0 §6.8.1: 64-bit address (control bit 7) adds the upper
            // address dword, per-vector masking (bit 8) the mask and pending dwords.
            if (!has_word_2) return 0;
            const std::uint16_t control = load16(config, offset + 2);
            std::size_t length = 0x0a;
            if (control & (1u << 7)) length += 4;
            if (control & (1u << 8)) length += 0x0a;
            return length;
        }
        case capability_id::pci_express: {
            // PCIe Base §7.5.3: version 2 defines the whole 0x3c bytes; a
            // version 1 endpoint may end after link status (0x14).
            if (!has_word_2) return 0;
            return (load16(config, offset + 2) & 0xf) >= 2 ? 0x3c : 0x14;
        }
        default:
            return 2;
    }
}

Status parse_standard(std::span<const std::uint8_t> config, std::vector<Capability>& out) {
    if ((load16(config, status_offset) & status_capabilities_list) == 0) return {};
    // Standard capabilities live in the first 256 bytes, whatever follows.
    const std::size_t limit = std::min(config.size(), config_space_size);
    std::bitset<max_standard_entries> visited;
    std::uint32_t pointer = config[capabilities_pointer_offset] & pointer_mask;
    std::string from = "the capabilities pointer (0x34)";
    while (pointer != 0 && out.size() < max_standard_entries) {
        const std::string at = to_hex(pointer);
        if (pointer < config_header_size) {
            return malformed(from + " points to " + at + ", inside the 64-byte header");
        }
        if (pointer + 2 > limit) {
            return malformed(from + " points to " + at + ", beyond " + bytes_given(config.size()));
        }
        const std::size_t slot = (pointer - config_header_size) / 4;
        if (visited[slot]) return malformed(from + " points back to " + at + ": the list loops");
        visited[slot] = true;

        const std::uint8_t id = config[pointer];
        const std::size_t length = standard_length(config, pointer, id, limit);
        const std::string name = "capability " + to_hex(id) + " (" + std::string(capability_name(id)) + ") at " + at;
        if (id == capability_id::vendor_specific && length != 0 && length < 3) {
            return malformed(name + " claims " + std::to_string(length) +
                             " bytes, fewer than its own ID, next and length bytes");
        }
        if (length == 0 || pointer + length > limit) {
            return malformed(name + (length ? " is " + std::to_string(length) + " bytes long and" : "") +
                             " runs past the end of " +
                             (limit == config.size() ? bytes_given(config.size())
                                                     : std::string("the 256-byte standard config space")));
        }
        out.push_back({id, static_cast<std::uint16_t>(pointer), static_cast<std::uint16_t>(length)});
        from = "the next pointer of " + name;
        pointer = config[pointer + 1] & pointer_mask;
    }
    return {};
}

Status parse_extended(std::span<const std::uint8_t> config, std::vector<ExtendedCapability>& out) {
    if (config.size() < config_space_size + 4) return {};  // no extended config space given
    const std::uint32_t first = load32(config, config_space_size);
    if (first == no_extended_list || first == all_ones) return {};
    std::bitset<max_extended_entries> visited;
    std::uint32_t pointer = config_space_size;
    std::string from;
    while (out.size() < max_extended_entries) {
        const std::string at = to_hex(pointer);
        if (pointer < config_space_size) {
            return malformed(from + " points to " + at + ", inside the 256-byte standard config space");
        }
        if (pointer + 4 > config.size()) {
            return malformed(from + " points to " + at + ", beyond " + bytes_given(config.size()));
        }
        const std::size_t slot = (pointer - config_space_size) / 4;
        if (visited[slot]) return malformed(from + " points back to " + at + ": the list loops");
        visited[slot] = true;

        const std::uint32_t header = load32(config, pointer);
        const auto id = static_cast<std::uint16_t>(header & 0xffff);
        const auto version = static_cast<std::uint8_t>((header >> 16) & 0xf);
        const std::string name = "extended capability " + to_hex(id) + " (" +
                                 std::string(extended_capability_name(id)) + ") at " + at;
        std::size_t length = 4;
        if (id == extended_capability_id::vendor_specific || id == extended_capability_id::designated_vendor_specific) {
            // PCIe Base §7.9.5 / §7.9.6: bits 31:20 of the dword after the
            // header give the whole structure's length, header included.
            if (pointer + 8 > config.size()) {
                return malformed(name + " runs past the end of " + bytes_given(config.size()));
            }
            length = load32(config, pointer + 4) >> 20;
            if (length < 8) {
                return malformed(name + " claims " + std::to_string(length) + " bytes, fewer than its own 8-byte header");
            }
            if (pointer + length > config.size()) {
                return malformed(name + " is " + std::to_string(length) + " bytes long and runs past the end of " +
                                 bytes_given(config.size()));
            }
        }
        out.push_back({id, version, static_cast<std::uint16_t>(pointer), static_cast<std::uint16_t>(length)});
        const std::uint32_t next = (header >> 20) & pointer_mask;
        if (next == 0) break;
        from = "the next pointer of " + name;
        pointer = next;
    }
    return {};
}

}  // namespace

std::optional<Capability> CapabilityList::find(std::uint8_t id) const {
    auto it = std::find_if(standard.begin(), standard.end(), [id](const Capability& c) { return c.id == id; });
    if (it == standard.end()) return std::nullopt;
    return *it;
}

std::vector<Capability> CapabilityList::find_all(std::uint8_t id) const {
    std::vector<Capability> found;
    std::copy_if(standard.begin(), standard.end(), std::back_inserter(found),
                 [id](const Capability& c) { return c.id == id; });
    return found;
}

std::optional<ExtendedCapability> CapabilityList::find_extended(std::uint16_t id) const {
    auto it = std::find_if(extended.begin(), extended.end(), [id](const ExtendedCapability& c) { return c.id == id; });
    if (it == extended.end()) return std::nullopt;
    return *it;
}

Result<CapabilityList> parse_capabilities(std::span<const std::uint8_t> config) {
    if (config.size() < config_header_size || config.size() > extended_config_space_size) {
        return Error(EINVAL, "PCI config space of " + std::to_string(config.size()) +
                                 " bytes; expected 64 to 4096 (read it from sysfs ADDR/config)");
    }
    CapabilityList list;
    DMAKIT_TRY(parse_standard(config, list.standard));
    DMAKIT_TRY(parse_extended(config, list.extended));
    return list;
}

std::string_view capability_name(std::uint8_t id) noexcept {
    // PCI Code and ID Assignment Specification §2, in ID order from 0x01.
    static constexpr std::array<std::string_view, 0x15> names = {
        "Power Management", "AGP", "Vital Product Data", "Slot Identification", "MSI",
        "CompactPCI Hot Swap", "PCI-X", "HyperTransport", "Vendor Specific", "Debug Port",
        "CompactPCI Central Resource Control", "PCI Hot-Plug", "Bridge Subsystem Vendor ID", "AGP 8x",
        "Secure Device", "PCI Express", "MSI-X", "SATA Data/Index Configuration", "Advanced Features",
        "Enhanced Allocation", "Flattening Portal Bridge"};
    if (id == 0 || id > names.size()) return "unknown";
    return names[id - 1];
}

std::string_view extended_capability_name(std::uint16_t id) noexcept {
    // PCI Code and ID Assignment Specification §3, in ID order from 0x0000.
    static constexpr std::array<std::string_view, 0x28> names = {
        "Null", "Advanced Error Reporting", "Virtual Channel", "Device Serial Number", "Power Budgeting",
        "Root Complex Link Declaration", "Root Complex Internal Link Control",
        "Root Complex Event Collector Endpoint Association", "Multi-Function Virtual Channel",
        "Virtual Channel", "RCRB Header", "Vendor-Specific Extended", "Configuration Access Correlation",
        "Access Control Services", "Alternative Routing-ID Interpretation", "Address Translation Services",
        "SR-IOV", "MR-IOV", "Multicast", "Page Request Interface", "unknown", "Resizable BAR",
        "Dynamic Power Allocation", "TPH Requester", "Latency Tolerance Reporting", "Secondary PCI Express",
        "Protocol Multiplexing", "Process Address Space ID", "LN Requester", "Downstream Port Containment",
        "L1 PM Substates", "Precision Time Measurement", "M-PCIe", "FRS Queueing", "Readiness Time Reporting",
        "Designated Vendor-Specific", "VF Resizable BAR", "Data Link Feature", "Physical Layer 16.0 GT/s",
        "Lane Margining at the Receiver"};
    if (id >= names.size()) return "unknown";
    return names[id];
}

}  // namespace dmakit::pci
