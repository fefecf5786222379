#include <dmakit/dma/pci_device.hpp>

#include <dmakit/iommu/pci_windows.hpp>
#include <dmakit/vfio/type1_backend.hpp>

namespace dmakit::dma {

Status reserve_pci_windows(PciDmaOptions& options) {
    const pci::MemoryWindowSources sources{options.iomem, options.paths.sysfs};
    if (options.context.logger != nullptr) {
        return iommu::reserve_pci_windows(options.domain, sources, *options.context.logger);
    }
    const Logger to_stderr;
    return iommu::reserve_pci_windows(options.domain, sources, to_stderr);
}

PciDmaDevice::~PciDmaDevice() {
    // Released for a hot unplug (vfio::Device::release): the group left with
    // the device, and the kernel dropped every mapping of the container
    // with it; unmapping them again would only earn errors.
    if (device_.released() && context_) context_->domain().forget_backend_mappings();
    dma_.reset();
    context_.reset();
}

Result<std::unique_ptr<PciDmaDevice>> PciDmaDevice::open(const pci::PciAddress& address,
                                                         PciDmaOptions options) {
    const std::string name = address.to_string();
    auto fail = [&](Error error) { return error.with_context("opening " + name); };

    auto container = vfio::Container::open(options.paths);
    if (!container.ok()) return fail(std::move(container).error());
    auto group = container->attach_group_of(address);
    if (!group.ok()) return fail(std::move(group).error());
    auto device = group->open_device(address);
    if (!device.ok()) return fail(std::move(device).error());
    if (auto reserved = reserve_pci_windows(options); !reserved.ok()) {
        return fail(std::move(reserved).error());
    }
    auto domain = vfio::create_type1_domain(*container, options.domain);
    if (!domain.ok()) return fail(std::move(domain).error());

    if (options.pages.logger == nullptr) options.pages.logger = options.context.logger;
    auto source = mem::HugepageSource::create(options.pages);
    if (!source.ok()) return fail(std::move(source).error());
    auto context = DmaContext::create(std::move(domain).value(),
                                      std::make_unique<mem::HugepageSource>(std::move(source).value()),
                                      options.context);
    if (!context.ok()) return fail(std::move(context).error());

    std::unique_ptr<PciDmaDevice> opened(new PciDmaDevice(
        std::move(container).value(), std::move(group).value(), std::move(device).value()));
    opened->context_ = std::move(context).value();
    opened->dma_ = std::make_unique<DmaDevice>(*opened->context_, name);
    if (options.enable_bus_master) {
        auto status = opened->device_.enable_bus_master();
        if (!status.ok()) return fail(std::move(status).error());
    }
    return opened;
}

}  // namespace dmakit::dma
