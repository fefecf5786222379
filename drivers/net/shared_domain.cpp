#include "shared_domain.hpp"

#include <algorithm>

#include <dmakit/mem/hugepage_source.hpp>
#include <dmakit/vfio/type1_backend.hpp>

#include <cerrno>

namespace dmakit::net {

SharedDmaDomain::~SharedDmaDomain() {
    // Every member released for a hot unplug: the kernel dropped the
    // container's mappings with the last group (see PciDmaDevice).
    const bool all_released = !devices_.empty() && std::all_of(devices_.begin(), devices_.end(),
                                                                [](const vfio::Device& d) { return d.released(); });
    if (all_released && context_) context_->domain().forget_backend_mappings();
    dma_.clear();
    context_.reset();
    devices_.clear();
    groups_.clear();
}

Result<std::unique_ptr<SharedDmaDomain>> SharedDmaDomain::open(
    std::span<const pci::PciAddress> addresses, dma::PciDmaOptions options) {
    if (addresses.empty()) return Error(EINVAL, "shared DMA domain: no devices given");
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
            if (addresses[i] == addresses[j]) {
                return Error(EINVAL, "shared DMA domain: " + addresses[i].to_string() +
                                         " is given twice; name each port once");
            }
        }
    }
    DMAKIT_ASSIGN_OR_RETURN(vfio::Container container, vfio::Container::open(options.paths));
    std::unique_ptr<SharedDmaDomain> domain(new SharedDmaDomain(std::move(container)));
    for (const auto& address : addresses) {
        auto fail = [&](const Error& e) { return e.with_context("opening " + address.to_string()); };
        auto group = domain->container_.attach_group_of(address);
        if (!group.ok()) return fail(group.error());
        auto device = group->open_device(address);
        if (!device.ok()) return fail(device.error());
        domain->groups_.push_back(std::move(group).value());
        domain->devices_.push_back(std::move(device).value());
    }
    DMAKIT_TRY(dma::reserve_pci_windows(options));
    DMAKIT_ASSIGN_OR_RETURN(auto iommu, vfio::create_type1_domain(domain->container_, options.domain));
    if (options.pages.logger == nullptr) options.pages.logger = options.context.logger;
    DMAKIT_ASSIGN_OR_RETURN(auto source, mem::HugepageSource::create(options.pages));
    DMAKIT_ASSIGN_OR_RETURN(
        domain->context_,
        dma::DmaContext::create(std::move(iommu),
                                std::make_unique<mem::HugepageSource>(std::move(source)),
                                options.context));
    for (auto& device : domain->devices_) {
        domain->dma_.push_back(
            std::make_unique<dma::DmaDevice>(*domain->context_, device.address().to_string()));
        if (options.enable_bus_master) DMAKIT_TRY(device.enable_bus_master());
    }
    return domain;
}

}  // namespace dmakit::net
