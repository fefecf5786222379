#include <dmakit/iommu/pci_windows.hpp>

namespace dmakit::iommu {

std::vector<IovaRange> to_iova_ranges(std::span<const pci::MemoryWindow> windows) {
    std::vector<IovaRange> ranges;
    ranges.reserve(windows.size());
    for (const pci::MemoryWindow& window : windows) ranges.push_back({window.start, window.last});
    return ranges;
}

Status reserve_pci_windows(DomainConfig& config, const pci::MemoryWindowSources& sources,
                           const Logger& logger) {
    auto windows = pci::read_memory_windows(sources, logger);
    if (!windows.ok()) return std::move(windows).error();
    for (const IovaRange& range : to_iova_ranges(*windows)) config.reserved.push_back(range);
    logger.debug("IOVA space: " + std::to_string(windows->size()) +
                 " PCI memory windows reserved");
    return {};
}

}  // namespace dmakit::iommu
