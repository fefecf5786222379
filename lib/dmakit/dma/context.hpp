// DmaContext: one IOMMU domain and the memory made reachable through it.
//
// The context owns the domain, the buddy page allocator whose regions it maps
// into the domain as they are added (so pool memory needs no system call per
// buffer: its device address is region.dma_base + offset), the registration
// cache for foreign memory, and the DMA-API debug checker. Devices that share
// the context (DmaDevice) share all of that, like devices behind one IOMMU
// domain in the kernel. Two contexts in one process are independent.
//
// Destruction order matters and is fixed by member order: debug reports and
// registrations go first, then the allocator (which unmaps its regions
// through region_removing), then the domain.
#pragma once

#include <dmakit/dma/debug.hpp>
#include <dmakit/dma/registration_cache.hpp>
#include <dmakit/dma/types.hpp>
#include <dmakit/iommu/domain.hpp>
#include <dmakit/mem/buddy.hpp>
#include <dmakit/mem/page_source.hpp>
#include <dmakit/mem/slab.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/support/result.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace dmakit::dma {

struct DmaContextConfig {
    // IOMMU policy (types.hpp): `pool` maps pool regions once, `strict` maps
    // every buffer on its own with its direction's permission.
    IommuPolicy policy = IommuPolicy::pool;
    // Pool regions are placed below this device address, so every device
    // whose mask is at least this wide can use any pool buffer. The default
    // (32 bits) serves 32-bit devices too; widen it for pools over ~3 GiB.
    std::uint64_t pool_dma_mask = dma_bit_mask(32);
    // CONFIG_DMA_API_DEBUG at run time: track every mapping, check every
    // unmap and sync, report leaks when a device closes.
    bool debug = false;
    // Options of the page allocator (region size, caps, slab debug). Its
    // listener is the context's own.
    mem::BuddyOptions pages;
    // Where warnings and debug reports go; null: stderr.
    const Logger* logger = nullptr;
};

class DmaContext final : private mem::RegionListener {
public:
    // `source` backs the pool (HugepageSource for programs, AnonymousSource
    // in tests); `domain` is the IOMMU domain the devices sit in.
    [[nodiscard]] static Result<std::unique_ptr<DmaContext>> create(
        std::unique_ptr<iommu::IommuDomain> domain, std::unique_ptr<mem::PageSource> source,
        DmaContextConfig config = {});
    ~DmaContext() override;
    DmaContext(const DmaContext&) = delete;
    DmaContext& operator=(const DmaContext&) = delete;

    [[nodiscard]] iommu::IommuDomain& domain() noexcept { return *domain_; }
    [[nodiscard]] mem::BuddyAllocator& pages() noexcept { return *pages_; }
    [[nodiscard]] RegistrationCache& registrations() noexcept { return *registrations_; }
    // Null when debug is off.
    [[nodiscard]] DmaDebug* debug() noexcept { return debug_.get(); }
    [[nodiscard]] const Logger& logger() const noexcept { return *logger_; }
    [[nodiscard]] const DmaContextConfig& config() const noexcept { return config_; }
    // Null unless leak tracking is on (config.pages.leak_check, or
    // DMAKIT_LEAK_CHECK=1 when that is unset); it belongs to the page allocator.
    [[nodiscard]] mem::LeakTracker* leak_tracker() const noexcept { return pages_->leak_tracker(); }

    // Device address of pool memory: O(1), no lock, no system call. Null when
    // `cpu` is not in a pool region.
    [[nodiscard]] std::optional<DmaAddr> pool_dma_address(const void* cpu) const noexcept {
        auto dma = pages_->dma_address_of(cpu);
        return dma ? std::optional<DmaAddr>(DmaAddr(*dma)) : std::nullopt;
    }
    // A slab cache whose objects devices of this context reach (DmaPool
    // blocks, NIC packet buffers). Under IommuPolicy::pool it is an ordinary
    // cache over the pool pages, already mapped with their region; under
    // IommuPolicy::strict each slab is mapped read-write into the IOMMU,
    // below `dma_mask`, when the cache takes it, and unmapped before it goes
    // back: the device reaches those slabs and nothing else of the pool, as
    // the kernel's dma_pool carves blocks from dma_alloc_coherent pages.
    // The cache must be destroyed before the context.
    [[nodiscard]] Result<std::unique_ptr<mem::SlabCache>> create_device_slab(
        std::string name, std::size_t object_size, mem::SlabCacheOptions options,
        std::uint64_t dma_mask);
    // Device address of an object of a cache made by create_device_slab:
    // O(1), no lock, no system call. Null for anything else.
    [[nodiscard]] std::optional<DmaAddr> device_slab_address(const mem::SlabCache& cache,
                                                             const void* object) const noexcept {
        if (config_.policy == IommuPolicy::pool) return pool_dma_address(object);
        const auto tag = cache.slab_tag_of(object);
        if (!tag) return std::nullopt;
        return DmaAddr(*tag + static_cast<std::uint64_t>(static_cast<const std::byte*>(object) -
                                                         cache.slab_base_of(object)));
    }

    // Highest device address any pool region occupies (0 when none yet).
    [[nodiscard]] std::uint64_t pool_dma_top() const noexcept {
        return pool_dma_top_.load(std::memory_order_relaxed);
    }

private:
    DmaContext(std::unique_ptr<iommu::IommuDomain> domain, DmaContextConfig config,
               std::unique_ptr<Logger> owned_logger);

    [[nodiscard]] Status region_added(mem::Region& region) override;
    void region_removing(mem::Region& region) noexcept override;

    DmaContextConfig config_;
    std::unique_ptr<Logger> owned_logger_;
    const Logger* logger_;
    std::unique_ptr<iommu::IommuDomain> domain_;
    std::atomic<std::uint64_t> pool_dma_top_{0};
    std::unique_ptr<mem::BuddyAllocator> pages_;
    std::unique_ptr<RegistrationCache> registrations_;
    std::unique_ptr<DmaDebug> debug_;
};

}  // namespace dmakit::dma
