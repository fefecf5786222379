// The e1000e driver's entry points: the PCI IDs it claims and its factory.
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/nic.hpp>
#include <dmakit/drivers/net/nic_driver.hpp>

#include <array>
#include <memory>

namespace dmakit::net::e1000e {

inline constexpr std::array<PciId, 2> supported_ids{{
    {0x8086, 0x10D3},  // 82574L (what QEMU's "e1000e" device presents)
    {0x8086, 0x10F6},  // 82574LA
}};

// Opens an 82574 port (see e1000e.cpp for what open does and checks).
[[nodiscard]] Result<std::unique_ptr<Nic>> open(NicOpenContext& context);

// The driver, as drivers/net/meson.build's table lists it.
inline constexpr NicDriver driver{"e1000e", supported_ids, &open};

}  // namespace dmakit::net::e1000e
