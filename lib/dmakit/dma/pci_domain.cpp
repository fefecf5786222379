#include <dmakit/dma/pci_domain.hpp>

#include <dmakit/iommu/pci_windows.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/vfio/memlock.hpp>
#include <dmakit/vfio/type1_backend.hpp>

#include <algorithm>
#include <cerrno>

namespace dmakit::dma {

Status reserve_pci_windows(PciDmaOptions& options) {
    const pci::MemoryWindowSources sources{options.iomem, options.paths.sysfs};
    if (options.context.logger != nullptr) {
        return iommu::reserve_pci_windows(options.domain, sources, *options.context.logger);
    }
    const Logger to_stderr;
    return iommu::reserve_pci_windows(options.domain, sources, to_stderr);
}

Status check_memlock_for_pool(const PciDmaOptions& options) {
    // Under the pool policy the first allocation maps (pins) a whole region;
    // under strict each buffer is pinned alone, at least one 2 MiB page's worth.
    const bool pool = options.context.policy == IommuPolicy::pool;
    const std::uint64_t bytes = pool ? options.context.pages.region_size : std::uint64_t{2} << 20;
    auto state = vfio::read_memlock_state(options.proc);
    // Without a readable /proc the map itself still reports ENOMEM with the remedy.
    if (!state.ok()) return {};
    return vfio::check_memlock(*state, bytes,
                               pool ? "the DMA pool's first region" : "the first DMA buffer (strict policy)");
}

Status PciFunction::require_dma(std::string_view user) const {
    if (has_dma()) return {};
    return Error(EINVAL, address().to_string() + " was opened for its registers only "
                         "(PciDmaOptions::registers_only): " + std::string(user) +
                         " needs DMA; open the domain without registers_only");
}

PciDomain::~PciDomain() {
    // Every function released for a hot unplug (vfio::Device::release): the
    // groups left with the devices and the kernel dropped every mapping of
    // the container; unmapping them again would only earn errors.
    const bool all_released =
        !functions_.empty() && std::all_of(functions_.begin(), functions_.end(),
                                           [](const auto& f) { return f->device_.released(); });
    if (all_released && context_) context_->domain().forget_backend_mappings();
    for (auto& f : functions_) f->dma_.reset();
    context_.reset();
    functions_.clear();
    groups_.clear();
}

PciFunction* PciDomain::find(const pci::PciAddress& address) noexcept {
    for (auto& f : functions_) {
        if (f->address() == address) return f.get();
    }
    return nullptr;
}

Result<std::unique_ptr<PciDomain>> PciDomain::open(std::span<const pci::PciAddress> addresses,
                                                   PciDmaOptions options) {
    if (addresses.empty()) return Error(EINVAL, "a PCI domain needs at least one function");
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
            if (addresses[i] == addresses[j]) {
                return Error(EINVAL, addresses[i].to_string() + " is given twice; name each function once");
            }
        }
    }
    std::string names;
    for (const auto& address : addresses) names += (names.empty() ? "" : ", ") + address.to_string();
    auto fail_all = [&](const Error& e) { return e.with_context("opening " + names); };
    auto container = vfio::Container::open(options.paths);
    if (!container.ok()) return fail_all(container.error());
    std::unique_ptr<PciDomain> domain(new PciDomain(std::move(container).value()));
    const pci::Sysfs sysfs(options.paths.sysfs);
    for (const auto& address : addresses) {
        const std::string name = address.to_string();
        auto fail = [&](const Error& e) { return e.with_context("opening " + name); };
        // Functions of one IOMMU group share it: a group is attached once.
        const vfio::Group* group = nullptr;
        if (auto number = sysfs.iommu_group(address); number.ok() && number->has_value()) {
            for (const auto& g : domain->groups_) {
                if (g.number() == **number) group = &g;
            }
        }
        if (group == nullptr) {
            auto attached = domain->container_.attach_group_of(address);
            if (!attached.ok()) return fail(attached.error());
            domain->groups_.push_back(std::move(attached).value());
            group = &domain->groups_.back();
        }
        auto device = group->open_device(address);
        if (!device.ok()) return fail(device.error());
        domain->functions_.push_back(std::unique_ptr<PciFunction>(new PciFunction(std::move(device).value())));
    }
    // Registers only: the devices are open (the container already holds its
    // IOMMU model, which VFIO needs before it hands out a device fd, but
    // nothing is mapped); no domain, pool, pinning or bus mastering.
    if (options.registers_only) return domain;
    if (auto reserved = reserve_pci_windows(options); !reserved.ok()) return fail_all(reserved.error());
    if (auto memlock = check_memlock_for_pool(options); !memlock.ok()) return fail_all(memlock.error());
    auto iommu = vfio::create_type1_domain(domain->container_, options.domain);
    if (!iommu.ok()) return fail_all(iommu.error());
    if (options.pages.logger == nullptr) options.pages.logger = options.context.logger;
    auto source = mem::HugepageSource::create(options.pages);
    if (!source.ok()) return fail_all(source.error());
    auto context = DmaContext::create(std::move(iommu).value(),
                                      std::make_unique<mem::HugepageSource>(std::move(source).value()),
                                      options.context);
    if (!context.ok()) return fail_all(context.error());
    domain->context_ = std::move(context).value();
    for (auto& f : domain->functions_) {
        f->dma_ = std::make_unique<DmaDevice>(*domain->context_, f->address().to_string());
        // dev_to_node: the kernel's numa_node attribute (-1 or absent: none).
        if (auto node = sysfs.numa_node(f->address()); node.ok() && node->has_value()) {
            if (auto set = f->dma_->set_numa_node(**node); !set.ok()) {
                domain->context_->logger().warning(dmakit::to_string(set.error()) +
                                                   "; its DMA memory comes from any node");
            }
        }
        if (options.enable_bus_master) {
            if (auto s = f->device_.enable_bus_master(); !s.ok()) {
                return std::move(s).error().with_context("opening " + f->address().to_string());
            }
        }
    }
    return domain;
}

}  // namespace dmakit::dma
