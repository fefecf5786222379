// RegistrationCache: memory the caller registered for DMA explicitly (SPDK's
// spdk_mem_register contract), so that streaming maps inside it cost a
// lookup instead of a system call.
//
// Only explicit registrations are cached. register_memory pins and maps the
// 4 KiB pages that cover [cpu, cpu + length) read-write, once; while the
// registration lives, map_single/map_page/map_sg of memory inside it is a
// cache hit that takes a reference on it. Ending the registration
// (MemoryRegistration::reset or its destructor) invalidates it at once: no
// later map can hit it, and its IOMMU mapping is torn down as soon as the
// last streaming mapping inside it is unmapped. Memory outside every live
// registration is never served from here: DmaDevice maps it exactly, by
// direction, per call (see device.hpp), so a cached translation can never
// outlive the pages it points to — provided the caller keeps its side of the
// contract: registered memory stays mapped in the process (no munmap, no
// MADV_DONTNEED) until the registration ends, exactly as with SPDK.
//
// Extents are indexed by 2 MiB chunk of CPU address, so a lookup is O(1)
// expected; the cache is thread-safe (one mutex).
#pragma once

#include <dmakit/dma/types.hpp>
#include <dmakit/iommu/domain.hpp>
#include <dmakit/support/result.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

namespace dmakit::dma {

class RegistrationCache;

// A live registration: keeps its memory mapped for as long as it lives.
class MemoryRegistration {
public:
    MemoryRegistration() noexcept = default;
    ~MemoryRegistration() { reset(); }
    MemoryRegistration(MemoryRegistration&& other) noexcept { *this = std::move(other); }
    MemoryRegistration& operator=(MemoryRegistration&& other) noexcept;
    MemoryRegistration(const MemoryRegistration&) = delete;
    MemoryRegistration& operator=(const MemoryRegistration&) = delete;

    // Device address of the registered memory's first byte.
    [[nodiscard]] DmaAddr dma() const noexcept { return dma_; }
    [[nodiscard]] bool valid() const noexcept { return cache_ != nullptr; }
    // Ends the registration (spdk_mem_unregister): no map hits it any more.
    void reset() noexcept;

private:
    friend class RegistrationCache;
    MemoryRegistration(RegistrationCache* cache, std::uint64_t extent, DmaAddr dma) noexcept
        : cache_(cache), extent_(extent), dma_(dma) {}
    RegistrationCache* cache_ = nullptr;
    std::uint64_t extent_ = 0;  // the extent's first IOVA
    DmaAddr dma_;
};

class RegistrationCache {
public:
    static constexpr std::size_t kChunk = 2 * 1024 * 1024;  // index granularity

    struct Stats {
        std::uint64_t hits = 0;          // maps served by a live registration
        std::uint64_t registrations = 0; // live registrations
        std::uint64_t extents = 0;       // extents still mapped (live, or ended with maps inside)
        std::uint64_t mapped_bytes = 0;
    };

    explicit RegistrationCache(iommu::IommuDomain& domain) : domain_(domain) {}
    ~RegistrationCache();
    RegistrationCache(const RegistrationCache&) = delete;
    RegistrationCache& operator=(const RegistrationCache&) = delete;

    // Pins and maps the pages covering [cpu, cpu + length) read-write, below
    // `dma_mask`. Registrations may not overlap (EEXIST): one piece of memory
    // has one registered device address.
    [[nodiscard]] Result<MemoryRegistration> register_memory(const void* cpu, std::size_t length,
                                                             std::uint64_t dma_mask);

    // A cache hit: when [cpu, cpu + length) lies inside a live registration
    // mapped at or below `dma_mask`, takes one reference on it and returns the
    // device address with the extent's handle (give it to release()).
    struct Hit {
        DmaAddr addr;
        std::uint64_t extent;
    };
    [[nodiscard]] std::optional<Hit> acquire(const void* cpu, std::size_t length,
                                             std::uint64_t dma_mask);

    // Drops a reference acquire() took, by the extent handle it returned.
    // EINVAL when there is no such extent or it holds no reference.
    [[nodiscard]] Status release(std::uint64_t extent);

    // Device address inside a live registration, without a reference.
    [[nodiscard]] std::optional<DmaAddr> lookup(const void* cpu, std::size_t length) const;

    [[nodiscard]] Stats stats() const;

private:
    friend class MemoryRegistration;
    struct Extent {
        std::uintptr_t cpu_start;
        std::size_t length;
        std::uint64_t iova;
        std::uint64_t references;  // streaming mappings inside it
        bool registered;           // false once the registration ended
    };

    void unregister(std::uint64_t extent) noexcept;
    [[nodiscard]] Extent* find_registered_locked(std::uintptr_t start, std::uintptr_t end) const;
    void drop_if_unused_locked(std::map<std::uint64_t, Extent>::iterator it);

    iommu::IommuDomain& domain_;
    mutable std::mutex mutex_;
    std::map<std::uint64_t, Extent> by_iova_;  // first IOVA -> extent
    // 2 MiB chunk of CPU address -> registered extents that cover any of it.
    std::unordered_map<std::uintptr_t, std::vector<Extent*>> by_chunk_;
    std::uint64_t hits_ = 0;
    std::uint64_t mapped_bytes_ = 0;
};

}  // namespace dmakit::dma
