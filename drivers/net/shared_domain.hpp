// SharedDmaDomain: several PCI devices in ONE IOMMU domain and DMA context,
// built from the public pieces (one vfio::Container, one group per device,
// one type1 domain, one DmaContext, one DmaDevice per device), as docs/dma.md
// describes. Every pool buffer then has the same device address for every
// member, so a frame received on one port can be sent on another without a
// copy (forwarding), exactly as the kernel does for devices behind one domain.
#pragma once

#include <dmakit/dma/context.hpp>
#include <dmakit/dma/device.hpp>
#include <dmakit/dma/pci_device.hpp>
#include <dmakit/pci/address.hpp>
#include <dmakit/support/result.hpp>
#include <dmakit/vfio/container.hpp>
#include <dmakit/vfio/device.hpp>

#include <memory>
#include <span>
#include <vector>

namespace dmakit::net {

class SharedDmaDomain {
public:
    // Devices must be distinct and in distinct IOMMU groups. Bus mastering is
    // enabled on each when options.enable_bus_master.
    [[nodiscard]] static Result<std::unique_ptr<SharedDmaDomain>> open(
        std::span<const pci::PciAddress> addresses, dma::PciDmaOptions options = {});
    ~SharedDmaDomain();
    SharedDmaDomain(const SharedDmaDomain&) = delete;
    SharedDmaDomain& operator=(const SharedDmaDomain&) = delete;

    [[nodiscard]] std::size_t size() const noexcept { return devices_.size(); }
    [[nodiscard]] vfio::Device& device(std::size_t i) noexcept { return devices_[i]; }
    [[nodiscard]] dma::DmaDevice& dma(std::size_t i) noexcept { return *dma_[i]; }
    [[nodiscard]] dma::DmaContext& context() noexcept { return *context_; }

private:
    explicit SharedDmaDomain(vfio::Container container) : container_(std::move(container)) {}

    // Destroyed bottom-up: DMA users, the context (unmaps the pool), devices,
    // groups, the container (see ~SharedDmaDomain).
    vfio::Container container_;
    std::vector<vfio::Group> groups_;
    std::vector<vfio::Device> devices_;
    std::unique_ptr<dma::DmaContext> context_;
    std::vector<std::unique_ptr<dma::DmaDevice>> dma_;
};

}  // namespace dmakit::net
