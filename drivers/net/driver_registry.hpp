// NicDriverRegistry: which driver opens which PCI device.
//
// An explicit object the program fills (register_builtin_drivers adds the
// drivers shipped here); no static constructors, no global table. Two
// registries in one process are independent.
#pragma once

#include <dmakit/support/result.hpp>

#include "nic.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dmakit::net {

struct NicOpenContext;  // nic_open_context.hpp; completed by the DMA/VFIO glue

struct PciId {
    std::uint16_t vendor = 0;
    std::uint16_t device = 0;
    friend bool operator==(const PciId&, const PciId&) = default;
    [[nodiscard]] std::string to_string() const;  // "8086:10d3"
};

using NicFactory = Result<std::unique_ptr<Nic>> (*)(NicOpenContext& context);

struct NicDriverEntry {
    PciId id;
    NicFactory factory = nullptr;
    std::string driver;  // "e1000e"
};

class NicDriverRegistry {
public:
    // EEXIST when the ID already has a driver; EINVAL for a null factory.
    [[nodiscard]] Status add(PciId id, NicFactory factory, std::string_view driver = {});

    // ENODEV naming the supported IDs when no driver claims `id`.
    [[nodiscard]] Result<const NicDriverEntry*> find(PciId id) const;
    [[nodiscard]] Result<std::unique_ptr<Nic>> open(PciId id, NicOpenContext& context) const;

    [[nodiscard]] const std::vector<NicDriverEntry>& entries() const noexcept { return entries_; }

private:
    std::vector<NicDriverEntry> entries_;
};

// Adds every NIC driver built into dmakit (today: e1000e).
[[nodiscard]] Status register_builtin_drivers(NicDriverRegistry& registry);

}  // namespace dmakit::net
