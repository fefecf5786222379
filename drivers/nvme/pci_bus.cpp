#include <dmakit/drivers/nvme/pci_bus.hpp>

#include <dmakit/drivers/nvme/doorbells.hpp>

#include <dmakit/support/mmio.hpp>

#include <cerrno>
#include <string>

namespace dmakit::nvme {

Result<std::unique_ptr<PciControllerBus>> PciControllerBus::open(dma::PciFunction& device) {
    // Queues, PRP lists and identify data all live in DMA memory.
    DMAKIT_TRY(device.require_dma("the NVMe driver"));
    DMAKIT_ASSIGN_OR_RETURN(vfio::Region bar0, device.vfio().map_bar(0));
    if (bar0.size() < min_bar0_size || bar0.base() == nullptr || !bar0.is_mapped(0, register_block_size)) {
        return Error(ENODEV, device.address().to_string() + ": BAR0 of " + std::to_string(bar0.size()) +
                                 " bytes is too small, or its registers are not mappable");
    }
    return std::unique_ptr<PciControllerBus>(new PciControllerBus(device, std::move(bar0)));
}

std::uint32_t PciControllerBus::read32(std::uint32_t offset) const noexcept {
    return mmio::read32(bar0_.base(), offset);
}

void PciControllerBus::write32(std::uint32_t offset, std::uint32_t value) noexcept {
    mmio::write32(bar0_.base(), offset, value);
}

std::unique_ptr<Doorbells> PciControllerBus::doorbells(DoorbellOffsets offsets) {
    return std::make_unique<MmioDoorbells>(bar0_.base(), offsets);
}

Status PciControllerBus::function_reset() {
    DMAKIT_TRY(device_.vfio().reset());
    // FLR clears Bus Master Enable on some paths; DMA needs it.
    return device_.vfio().enable_bus_master();
}

}  // namespace dmakit::nvme
