// PciDmaDevice: a PCI device opened through VFIO, in an IOMMU domain of its
// own, with the DMA API ready to use: the one call a driver makes to start.
//
//     auto dev = dma::PciDmaDevice::open(*pci::PciAddress::parse("0000:00:04.0"));
//     auto bar0 = dev->vfio().map_bar(0);
//     auto ring = dev->dma().alloc_coherent(4096);
//
// It runs the VFIO sequence (container, group viability, type1 IOMMU, device
// fd), creates the type1 IommuDomain and a DmaContext whose pool is backed
// by hugepages (4 KiB pages when none are reserved, with one warning), and
// enables bus mastering. Every failure is an Error that says what to do: a
// device on another driver names `dmakit bind BDF`, a group that is not
// viable names the member in the way, /dev/vfio/N without permission says so.
//
// Devices that must share one domain (one set of mappings) can be built from
// the pieces instead: one vfio::Container, several groups, one DmaContext,
// several DmaDevices.
#pragma once

#include <dmakit/dma/context.hpp>
#include <dmakit/dma/device.hpp>
#include <dmakit/iommu/domain.hpp>
#include <dmakit/mem/hugepage_source.hpp>
#include <dmakit/pci/address.hpp>
#include <dmakit/vfio/container.hpp>
#include <dmakit/vfio/device.hpp>

#include <memory>
#include <string>

namespace dmakit::dma {

struct PciDmaOptions {
    DmaContextConfig context;          // debug, pool window, region size
    mem::HugepageSourceOptions pages;  // page size, NUMA node, 4 KiB fallback
    // Mapping budget cap, and IOVA ranges to keep free; open() appends the
    // machine's PCI memory windows to `reserved` (reserve_pci_windows below).
    iommu::DomainConfig domain;
    vfio::VfioPaths paths;             // /dev/vfio and /sys (tests)
    std::string iomem = "/proc/iomem"; // host bridge windows (tests: a fake file)
    bool enable_bus_master = true;
};

// Appends every PCI memory window of the machine (host bridge windows, ECAM,
// BARs; from options.iomem and options.paths.sysfs) to options.domain.reserved,
// so that no IOVA of the domain aliases MMIO. Every path that creates a domain
// for PCI devices calls it before the domain is created. Warnings go to
// options.context.logger (stderr when null).
[[nodiscard]] Status reserve_pci_windows(PciDmaOptions& options);

class PciDmaDevice {
public:
    [[nodiscard]] static Result<std::unique_ptr<PciDmaDevice>> open(const pci::PciAddress& address,
                                                                    PciDmaOptions options = {});
    // Closes in the safe order: DMA users, then the pool (unmapping its
    // regions), then the device (vfio-pci resets it), the group, the container.
    ~PciDmaDevice();
    PciDmaDevice(const PciDmaDevice&) = delete;
    PciDmaDevice& operator=(const PciDmaDevice&) = delete;

    [[nodiscard]] const pci::PciAddress& address() const noexcept { return device_.address(); }
    [[nodiscard]] vfio::Device& vfio() noexcept { return device_; }
    [[nodiscard]] DmaDevice& dma() noexcept { return *dma_; }
    [[nodiscard]] DmaContext& context() noexcept { return *context_; }

private:
    PciDmaDevice(vfio::Container container, vfio::Group group, vfio::Device device)
        : container_(std::move(container)), group_(std::move(group)), device_(std::move(device)) {}

    vfio::Container container_;
    vfio::Group group_;
    vfio::Device device_;
    std::unique_ptr<DmaContext> context_;
    std::unique_ptr<DmaDevice> dma_;
};

}  // namespace dmakit::dma
