// Is the host using a PCI function? Checked before `dmakit bind` takes a
// device away from its kernel driver, because unbinding a controller that
// holds a mounted filesystem or a NIC that carries the machine's traffic
// loses data or the connection (the kernel does not refuse).
//
// What counts as in use, read below a sysfs root and a proc root (so the
// tests run over fake trees):
// - storage: a device node below the function (any ".../dev": the NVMe
//   character device, namespaces, partitions) that
//   - is mounted: its major:minor in PROC/self/mountinfo, or the mount's
//     source names it (btrfs reports an anonymous 0:N device; a source given
//     as /dev/disk/by-id/... is resolved below PROC/self/root), the root
//     filesystem among them;
//   - is swap (PROC/swaps, resolved the same way);
//   - has holders (LVM, RAID, dm-crypt: SYSFS/.../NODE/holders/*);
//   - is a member of a mounted btrfs filesystem (SYSFS/fs/btrfs/*/devices/*);
//   - is held open by a process (PROC/PID/fd/* links to /dev/NODE): nvme-cli,
//     smartctl, fio, a database on the raw device;
// - network: an interface below the function (ADDR/net/IFACE) that is up
//   (IFF_UP in net/IFACE/flags) and has an IPv4 address, an IPv4 route
//   (PROC/net/route) or a non-link-local IPv6 address (PROC/net/if_inet6);
// - a PCI-to-PCI or CardBus bridge (every device behind it would go too).
#pragma once

#include <dmakit/pci/address.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/support/result.hpp>

#include <functional>
#include <string>
#include <vector>

namespace dmakit::pci {

struct HostUse {
    std::string what;     // "namespace nvme0n1p1 (259:1) is mounted on /data"
    std::string remedy;   // "unmount it: umount /data"
};

// An interface's IPv4 addresses ("10.0.0.5/32"). Procfs has no such list:
// net/route holds only the main table, where a /32 or noprefixroute address
// puts nothing, and net/fib_trie names no interface. So they come from the
// kernel over netlink, or from a fake in tests.
using Ipv4AddressLookup = std::function<Result<std::vector<std::string>>(const std::string& iface)>;

// The running kernel's answer, through getifaddrs(3).
[[nodiscard]] Result<std::vector<std::string>> kernel_ipv4_addresses(const std::string& iface);

// Where host_use() looks besides sysfs.
struct HostView {
    std::string proc_root = "/proc";
    Ipv4AddressLookup ipv4_addresses = kernel_ipv4_addresses;
};

// How the host uses `address`: empty when it does not. Bridges count only
// when `count_bridge` (a bridge elsewhere in an IOMMU group is harmless).
[[nodiscard]] Result<std::vector<HostUse>> host_use(const Sysfs& sysfs, const HostView& view,
                                                    const PciAddress& address, bool count_bridge = true);

}  // namespace dmakit::pci
