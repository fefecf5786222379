// RegistrationCache: makes memory the pools did not allocate ("foreign"
// memory: a caller's heap buffer, a stack array, a file mapping) reachable by
// the device, the way SPDK's spdk_mem_register / vtophys map does.
//
// Memory is pinned and mapped through the IOMMU in extents rounded out to
// 2 MiB (so one map covers many later buffers on the same hugepage-sized
// span), and each extent is reference counted: every streaming mapping inside
// it holds a reference, and so does an explicit registration. When the last
// reference goes, the extent is unmapped at once (the kernel unpins it), so
// memory the program frees afterwards is never left reachable by a device.
// Programs that map the same foreign buffers over and over register them
// once (register_memory) and then every map is a cache hit with no system
// call.
#pragma once

#include <dmakit/dma/types.hpp>
#include <dmakit/iommu/domain.hpp>
#include <dmakit/support/result.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace dmakit::dma {

class RegistrationCache;

// An explicit registration (spdk_mem_register): keeps [cpu, cpu + length)
// mapped for as long as it lives, so streaming maps inside it are cache hits.
class MemoryRegistration {
public:
    MemoryRegistration() noexcept = default;
    ~MemoryRegistration() { reset(); }
    MemoryRegistration(MemoryRegistration&& other) noexcept { *this = std::move(other); }
    MemoryRegistration& operator=(MemoryRegistration&& other) noexcept;
    MemoryRegistration(const MemoryRegistration&) = delete;
    MemoryRegistration& operator=(const MemoryRegistration&) = delete;

    [[nodiscard]] DmaAddr dma() const noexcept { return dma_; }
    [[nodiscard]] bool valid() const noexcept { return cache_ != nullptr; }
    // Drops the registration; the extent is unmapped if nothing else uses it.
    void reset() noexcept;

private:
    friend class RegistrationCache;
    MemoryRegistration(RegistrationCache* cache, DmaAddr dma) noexcept : cache_(cache), dma_(dma) {}
    RegistrationCache* cache_ = nullptr;
    DmaAddr dma_;
};

class RegistrationCache {
public:
    static constexpr std::size_t kGranularity = 2 * 1024 * 1024;

    struct Stats {
        std::uint64_t hits = 0;
        std::uint64_t misses = 0;      // each one a pin + map in the kernel
        std::uint64_t extents = 0;     // live extents
        std::uint64_t mapped_bytes = 0;
    };

    explicit RegistrationCache(iommu::IommuDomain& domain) : domain_(domain) {}
    ~RegistrationCache();
    RegistrationCache(const RegistrationCache&) = delete;
    RegistrationCache& operator=(const RegistrationCache&) = delete;

    // Device address of [cpu, cpu + length), taking one reference on the
    // extent that holds it; maps a new extent below `dma_mask` on a miss.
    [[nodiscard]] Result<DmaAddr> acquire(const void* cpu, std::size_t length,
                                          std::uint64_t dma_mask);

    // Drops the reference acquire() took for the mapping at `addr`; unmaps the
    // extent when it was the last. EINVAL when `addr` is in no extent.
    [[nodiscard]] Status release(DmaAddr addr);

    // Registers memory explicitly (see MemoryRegistration).
    [[nodiscard]] Result<MemoryRegistration> register_memory(const void* cpu, std::size_t length,
                                                             std::uint64_t dma_mask);

    // Device address without taking a reference (for checks; no mapping on miss).
    [[nodiscard]] std::optional<DmaAddr> lookup(const void* cpu, std::size_t length) const;

    [[nodiscard]] Stats stats() const;

private:
    struct Extent {
        std::uintptr_t cpu_start;
        std::size_t length;
        std::uint64_t iova;
        std::uint64_t references;
    };

    [[nodiscard]] Extent* find_locked(std::uintptr_t start, std::uintptr_t end) const;
    [[nodiscard]] Result<Extent*> map_extent_locked(std::uintptr_t start, std::uintptr_t end,
                                                    std::uint64_t dma_mask);
    void drop_extent_locked(std::map<std::uint64_t, Extent>::iterator it);

    iommu::IommuDomain& domain_;
    mutable std::mutex mutex_;
    std::map<std::uint64_t, Extent> by_iova_;  // first IOVA -> extent
    // 2 MiB chunk number -> extents that cover any of it (usually one).
    std::unordered_map<std::uintptr_t, std::vector<Extent*>> by_chunk_;
    std::uint64_t hits_ = 0;
    std::uint64_t misses_ = 0;
    std::uint64_t mapped_bytes_ = 0;
};

}  // namespace dmakit::dma
