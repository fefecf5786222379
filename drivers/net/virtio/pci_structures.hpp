// Where a virtio PCI function keeps its configuration structures (virtio 1.2
// §4.1.4): each is named by a vendor-specific capability (ID 0x09) in config
// space as (BAR, offset, length).
//
// Two steps, both pure so unit tests and the fuzzer drive them with bytes:
//   find_structures   reads every virtio_pci_cap from config space (through
//                     pci::parse_capabilities, which already refuses a
//                     malformed list) and keeps, per type, the candidates in
//                     list order. Capabilities with a reserved cfg_type or BAR
//                     are ignored, as §4.1.4.1 says;
//   choose_structures picks, per type, the first candidate that lies wholly
//                     inside a mapped BAR area (§4.1.4.1: "the first instance
//                     ... they can support"; an I/O BAR cannot be mapped).
// A device may be hostile: a capability too short for its fields, a range
// that overflows or runs past its BAR, a notify structure shorter than one
// doorbell, a common structure shorter than its fields: never used, and when
// no usable candidate is left the error names the device and the structure.
#pragma once

#include <dmakit/support/result.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

namespace dmakit::net::virtio {

struct StructureLocation {
    std::uint8_t bar = 0;
    std::uint32_t offset = 0;  // inside the BAR
    std::uint32_t length = 0;
    friend bool operator==(const StructureLocation&, const StructureLocation&) = default;
};

struct NotifyLocation {
    StructureLocation where;
    std::uint32_t notify_off_multiplier = 0;  // §4.1.4.4
    friend bool operator==(const NotifyLocation&, const NotifyLocation&) = default;
};

// Every candidate of each structure type, in capability-list order.
struct StructureCandidates {
    std::vector<StructureLocation> common;
    std::vector<NotifyLocation> notify;
    std::vector<StructureLocation> isr;
    std::vector<StructureLocation> device;
};

// The structures the driver uses. `isr` is not used (the driver never runs
// INTx) and may be absent; common, notify and device are required.
struct ChosenStructures {
    StructureLocation common;
    NotifyLocation notify;
    StructureLocation device;
};

// `config`: the function's config space from offset 0 (at least the 256
// bytes of the standard space). EPROTO for a malformed capability list.
[[nodiscard]] Result<StructureCandidates> find_structures(std::span<const std::uint8_t> config);

// Whether [offset, offset + length) of `bar` is inside one mapped area.
using MappedCheck = std::function<bool(std::uint8_t bar, std::uint64_t offset, std::uint64_t length)>;

// ENODEV naming `device` and the missing structure ("... has no usable common
// configuration structure (virtio 1.2 §4.1.4.3) ...; for QEMU:
// disable-legacy=on") when a required type has no usable candidate.
[[nodiscard]] Result<ChosenStructures> choose_structures(const StructureCandidates& candidates,
                                                         const MappedCheck& mapped, std::string_view device);

}  // namespace dmakit::net::virtio
