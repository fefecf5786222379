// Keeping IOVAs off the machine's PCI memory windows.
//
// Linux's dma-iommu reserves the host bridge windows in every DMA domain
// (iova_reserve_pci_windows, drivers/iommu/dma-iommu.c): a DMA address that
// falls inside a PCI window may be claimed by a switch or root port and
// routed peer-to-peer, never reaching the IOMMU, and QEMU's NVMe refuses one
// on its own registers (Data Transfer Error). VFIO's reported IOVA ranges do
// not exclude these windows, so every domain that opens PCI devices adds them
// to DomainConfig::reserved with reserve_pci_windows() before it is created.
#pragma once

#include <dmakit/iommu/backend.hpp>
#include <dmakit/iommu/domain.hpp>
#include <dmakit/pci/memory_windows.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/support/result.hpp>

#include <span>
#include <vector>

namespace dmakit::iommu {

// The windows as IOVA ranges (same numbers: the IOVA that would alias a
// window is the window's bus address).
[[nodiscard]] std::vector<IovaRange> to_iova_ranges(std::span<const pci::MemoryWindow> windows);

// Reads every PCI memory window (pci::read_memory_windows) and appends them to
// config.reserved, keeping what the caller put there. Warnings (non-root
// /proc/iomem, unreadable files) go to `logger`.
[[nodiscard]] Status reserve_pci_windows(DomainConfig& config,
                                         const pci::MemoryWindowSources& sources,
                                         const Logger& logger);

}  // namespace dmakit::iommu
