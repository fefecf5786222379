// PCI capability lists, parsed from a function's config space bytes.
//
// Two linked lists live in config space:
// - standard capabilities (PCI Local Bus 3.0 §6.7): present when Status bit 4
//   ("Capabilities List", offset 0x06) is set; the first pointer is the byte
//   at 0x34; each entry starts with an ID byte and a next-pointer byte, lives
//   in 0x40..0xff (after the 64-byte header), and pointers have their low two
//   bits masked off (reserved, §6.7: "software must mask them");
// - PCIe extended capabilities (PCIe Base §7.6.3, "PCI Express Extended
//   Capability Header"): from 0x100, each a 32-bit header
//   ID[15:0] version[19:16] next[31:20] (next also masked to a dword).
//
// The bytes come from a device and a device may be hostile, so the parser
// refuses (EPROTO, naming the offset) a pointer into the header or the wrong
// list's space, a pointer or an entry past the bytes given, a loop, and a
// structure whose known size (MSI by its flags, MSI-X, PM, PCIe, the length
// byte of a vendor-specific capability) runs past its space. Every offset in
// a returned list is therefore safe to read `length` bytes from.
#pragma once

#include <dmakit/support/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace dmakit::pci {

// Standard capability IDs (PCI Code and ID Assignment Specification §2).
namespace capability_id {
inline constexpr std::uint8_t power_management = 0x01;
inline constexpr std::uint8_t msi = 0x05;
inline constexpr std::uint8_t vendor_specific = 0x09;  // virtio's structures use this
inline constexpr std::uint8_t pci_express = 0x10;
inline constexpr std::uint8_t msix = 0x11;
}  // namespace capability_id

// Extended capability IDs (PCI Code and ID Assignment Specification §3).
namespace extended_capability_id {
inline constexpr std::uint16_t advanced_error_reporting = 0x0001;
inline constexpr std::uint16_t device_serial_number = 0x0003;
inline constexpr std::uint16_t vendor_specific = 0x000b;
inline constexpr std::uint16_t sr_iov = 0x0010;
inline constexpr std::uint16_t designated_vendor_specific = 0x0023;
}  // namespace extended_capability_id

// Config space sizes: the type 0/1 header, conventional PCI, PCIe.
inline constexpr std::size_t config_header_size = 0x40;
inline constexpr std::size_t config_space_size = 0x100;
inline constexpr std::size_t extended_config_space_size = 0x1000;

struct Capability {
    std::uint8_t id = 0;
    std::uint16_t offset = 0;  // of its ID byte; dword aligned, 0x40..0xfc
    // Bytes from `offset` known to be the capability's and inside the
    // standard space: a vendor-specific capability's own length byte (offset
    // + 2), the spec's size for PM, MSI, MSI-X and PCIe, else 2 (ID and next).
    std::uint16_t length = 0;
};

struct ExtendedCapability {
    std::uint16_t id = 0;
    std::uint8_t version = 0;
    std::uint16_t offset = 0;  // of its header; dword aligned, 0x100..0xffc
    // Bytes from `offset` that lie inside the bytes given: the length field
    // of a vendor-specific (VSEC, DVSEC) capability, else 4 (the header).
    std::uint16_t length = 0;
};

struct CapabilityList {
    std::vector<Capability> standard;            // in list order
    std::vector<ExtendedCapability> extended;    // in list order

    // The first standard capability with `id`, or nullopt.
    [[nodiscard]] std::optional<Capability> find(std::uint8_t id) const;
    // Every standard capability with `id`, in list order (a function may have
    // several vendor-specific ones: virtio has one per structure).
    [[nodiscard]] std::vector<Capability> find_all(std::uint8_t id) const;
    [[nodiscard]] std::optional<ExtendedCapability> find_extended(std::uint16_t id) const;
};

// Parses both lists from `config`, the function's config space from offset 0
// (64 to 4096 bytes; the extended list is read only when more than 256 are
// given). EINVAL for a size outside that range, EPROTO for a malformed list.
[[nodiscard]] Result<CapabilityList> parse_capabilities(std::span<const std::uint8_t> config);

// Names from the PCI Code and ID Assignment Specification ("Power
// Management", "MSI-X", ...), or "unknown" for an ID not known here.
[[nodiscard]] std::string_view capability_name(std::uint8_t id) noexcept;
[[nodiscard]] std::string_view extended_capability_name(std::uint16_t id) noexcept;

}  // namespace dmakit::pci
