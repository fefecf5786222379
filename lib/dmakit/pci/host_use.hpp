// Is the host using a PCI function? Checked before `dmakit bind` takes a
// device away from its kernel driver, because unbinding a controller that
// holds a mounted filesystem or a NIC that carries the machine's traffic
// loses data or the connection (the kernel does not refuse).
//
// What counts as in use, read below a sysfs root and a proc root (so the
// tests run over fake trees):
// - storage: a block device below the function (any ".../dev" whose
//   major:minor is in PROC/self/mountinfo), the root filesystem among them,
//   one listed in PROC/swaps, or one with holders (LVM, RAID, dm-crypt:
//   SYSFS/.../BLOCK/holders/*);
// - network: an interface below the function (ADDR/net/IFACE) that is up
//   (IFF_UP in net/IFACE/flags) and has an IPv4 route (PROC/net/route; every
//   IPv4 address with a prefix shorter than /32 brings one) or a non-link-local
//   IPv6 address (PROC/net/if_inet6);
// - a PCI-to-PCI or CardBus bridge (every device behind it would go too).
#pragma once

#include <dmakit/pci/address.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/support/result.hpp>

#include <string>
#include <vector>

namespace dmakit::pci {

struct HostUse {
    std::string what;     // "namespace nvme0n1p1 (259:1) is mounted on /data"
    std::string remedy;   // "unmount it: umount /data"
};

// How the host uses `address`: empty when it does not. Bridges count only
// when `count_bridge` (a bridge elsewhere in an IOMMU group is harmless).
[[nodiscard]] Result<std::vector<HostUse>> host_use(const Sysfs& sysfs, const std::string& proc_root,
                                                    const PciAddress& address, bool count_bridge = true);

}  // namespace dmakit::pci
