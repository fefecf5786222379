// Which PCI functions the NVMe driver takes: by class code, not by ID. An
// NVMe controller reports base class 01h (mass storage), subclass 08h
// (non-volatile memory), programming interface 02h (NVM Express) in its PCI
// header (NVMe 1.4 §2.1.5, CC - Class Code).
#pragma once

#include <cstdint>

namespace dmakit::nvme {

inline constexpr std::uint32_t pci_class_code = 0x010802;

[[nodiscard]] constexpr bool claims_class(std::uint32_t class_code) noexcept { return class_code == pci_class_code; }

}  // namespace dmakit::nvme
