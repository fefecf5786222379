#include <dmakit/dma/context.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <string>

namespace dmakit::dma {
namespace {

constexpr std::uint64_t kMinRegion = std::uint64_t{1} << 21;  // 2 MiB: the smallest pool region
// The widest pool window dmakit supports (1 TiB of device address space).
constexpr std::uint64_t kMaxPoolWindow = std::uint64_t{1} << 40;

}  // namespace

DmaContext::DmaContext(std::unique_ptr<iommu::IommuDomain> domain, DmaContextConfig config,
                       std::unique_ptr<Logger> owned_logger)
    : config_(std::move(config)),
      owned_logger_(std::move(owned_logger)),
      logger_(config_.logger != nullptr ? config_.logger : owned_logger_.get()),
      domain_(std::move(domain)) {}

Result<std::unique_ptr<DmaContext>> DmaContext::create(std::unique_ptr<iommu::IommuDomain> domain,
                                                       std::unique_ptr<mem::PageSource> source,
                                                       DmaContextConfig config) {
    if (!domain || !source) return Error(EINVAL, "DmaContext needs an IOMMU domain and a page source");
    if (config.pool_dma_mask < kMinRegion - 1) {
        return Error(EINVAL, "pool_dma_mask " + iommu::to_hex(config.pool_dma_mask) +
                                 " leaves no room for a 2 MiB pool region");
    }
    if (config.pool_dma_mask >= kMaxPoolWindow) {
        return Error(EINVAL, "pool_dma_mask " + iommu::to_hex(config.pool_dma_mask) +
                                 " is wider than dmakit supports for pools (40 bits)");
    }
    std::unique_ptr<Logger> owned;
    if (config.logger == nullptr) owned = std::make_unique<Logger>();
    std::unique_ptr<DmaContext> context(
        new DmaContext(std::move(domain), std::move(config), std::move(owned)));

    if (context->config_.debug) context->debug_ = std::make_unique<DmaDebug>(*context->logger_);
    context->registrations_ = std::make_unique<RegistrationCache>(*context->domain_);

    mem::BuddyOptions pages = context->config_.pages;
    pages.listener = context.get();
    if (pages.logger == nullptr) pages.logger = context->logger_;
    auto allocator = mem::BuddyAllocator::create(std::move(source), pages);
    if (!allocator.ok()) return std::move(allocator).error().with_context("creating the DMA page pool");
    context->pages_ = std::move(allocator).value();
    return context;
}

DmaContext::~DmaContext() {
    // Members are destroyed in reverse order: debug, registrations, pages
    // (unmapping each region through region_removing), then the domain.
}

Status DmaContext::region_added(mem::Region& region) {
    // Under the strict policy nothing is reachable until it is mapped: a
    // region stays out of the IOMMU and each buffer is mapped on its own.
    if (config_.policy == IommuPolicy::strict) return {};
    // Map the whole region once, aligned to its size (up to 1 GiB) so the
    // IOMMU can use large pages.
    iommu::MapOptions options;
    // A region grown for a Gfp::dma32 allocation goes below 4 GiB (its dma_limit).
    options.dma_mask = std::min<std::uint64_t>(config_.pool_dma_mask, region.dma_limit());
    options.align = std::min<std::uint64_t>(std::bit_ceil(region.length()), std::uint64_t{1} << 30);
    auto mapped = domain_->map(region.cpu_base(), region.length(), iommu::Access::read_write, options);
    if (!mapped.ok()) {
        return std::move(mapped).error().with_context(
            "mapping a " + std::to_string(region.length() >> 20) + " MiB pool region for DMA");
    }
    region.set_dma_base(mapped->iova);
    std::uint64_t top = mapped->iova + region.length() - 1;
    std::uint64_t seen = pool_dma_top_.load(std::memory_order_relaxed);
    while (top > seen && !pool_dma_top_.compare_exchange_weak(seen, top)) {
    }
    return {};
}

Result<std::unique_ptr<mem::SlabCache>> DmaContext::create_device_slab(
    std::string name, std::size_t object_size, mem::SlabCacheOptions options,
    std::uint64_t dma_mask) {
    if (config_.policy == IommuPolicy::strict) {
        options.on_new_slab = [this, dma_mask](void* base, std::size_t bytes) -> Result<std::uint64_t> {
            iommu::MapOptions map;
            map.dma_mask = dma_mask;
            DMAKIT_ASSIGN_OR_RETURN(auto mapped,
                                    domain_->map(base, bytes, iommu::Access::read_write, map));
            return mapped.iova;
        };
        options.on_release_slab = [this](void*, std::size_t, std::uint64_t iova) {
            // A failed unmap leaves the IOVA allocated in the domain (never
            // reused); the pages go back, but the kernel keeps them pinned.
            auto status = domain_->unmap(iova);
            if (!status.ok()) logger_->warning("unmapping a DMA slab: " + dmakit::to_string(status.error()));
        };
    }
    return mem::SlabCache::create(*pages_, std::move(name), object_size, std::move(options));
}

void DmaContext::region_removing(mem::Region& region) noexcept {
    auto dma = region.dma_base();
    if (!dma) return;
    auto status = domain_->unmap(*dma);
    if (!status.ok()) logger_->warning("unmapping a pool region: " + dmakit::to_string(status.error()));
    region.clear_dma_base();
}

}  // namespace dmakit::dma
