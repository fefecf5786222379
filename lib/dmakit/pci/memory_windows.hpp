// PCI memory windows: every physical address range on which a PCI device or
// bridge answers memory reads and writes (host bridge windows, ECAM, BARs).
//
// A DMA address inside one of them may be claimed by a switch or root port
// and routed peer-to-peer before it reaches the IOMMU, and QEMU's NVMe model
// refuses a DMA address on its own registers. That is why Linux's dma-iommu
// keeps such addresses out of every IOVA domain (iova_reserve_pci_windows in
// drivers/iommu/dma-iommu.c); the iommu layer does the same with this list.
//
// Sources, read at open time:
//   /proc/iomem   "PCI Bus DDDD:BB" entries at any nesting (host bridge and
//                 bridge windows) and "PCI MMCONFIG" / "PCI ECAM" (config
//                 space). Non-root readers see every address as 0: then only
//                 sysfs is used, with a warning, and the host bridge windows
//                 are missing (only the BARs and bridge windows remain).
//   sysfs         bus/pci/devices/ADDR/resource, one "start end flags" line per
//                 resource (drivers/pci/pci-sysfs.c resource_show): memory
//                 BARs, the ROM and bridge windows, IORESOURCE_MEM (0x200).
//
// The parsers take untrusted text: a line that does not parse is counted and
// skipped, never guessed at.
#pragma once

#include <dmakit/pci/sysfs.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/support/result.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dmakit::pci {

// An inclusive physical address range [start, last] and what it belongs to:
// "PCI Bus 0000:00", "PCI MMCONFIG 0000 [bus 00-ff]", "0000:00:04.0 BAR 0".
struct MemoryWindow {
    std::uint64_t start = 0;
    std::uint64_t last = 0;
    std::string name;

    friend bool operator==(const MemoryWindow&, const MemoryWindow&) = default;
};

struct IomemWindows {
    std::vector<MemoryWindow> windows;  // in file order
    std::size_t entries = 0;            // lines that parsed (PCI or not)
    std::size_t skipped_lines = 0;      // non-empty lines that did not parse
    // Every parsed entry reads 0-0: the kernel hides addresses from non-root.
    bool addresses_hidden = false;
};

// The PCI windows of a /proc/iomem text ("%*s%08llx-%08llx : name" per line,
// two spaces of indent per nesting level, kernel/resource.c r_show).
[[nodiscard]] IomemWindows parse_iomem(std::string_view text);

struct ResourceWindows {
    std::vector<MemoryWindow> windows;  // memory resources that are assigned
    std::size_t skipped_lines = 0;      // non-empty lines that did not parse
};

// The memory resources of one device's sysfs `resource` file. I/O-port
// resources, unset ones (all zero) and those flagged unset or disabled are
// left out; names are "DEVICE BAR n", "DEVICE ROM" or "DEVICE resource n".
[[nodiscard]] ResourceWindows parse_resource_file(std::string_view text, std::string_view device);

// Where read_memory_windows looks; tests point both into fake trees.
struct MemoryWindowSources {
    std::string iomem = "/proc/iomem";
    std::string sysfs = "/sys";
};

// Every PCI memory window of the machine, sorted by start (overlaps kept:
// a bridge window and the BARs behind it are all listed). Warnings (hidden or
// unreadable /proc/iomem, lines skipped, a resource file unreadable) go to
// `logger`. Fails only when the PCI devices cannot be listed at all.
[[nodiscard]] Result<std::vector<MemoryWindow>> read_memory_windows(
    const MemoryWindowSources& sources, const Logger& logger);

}  // namespace dmakit::pci
