// IommuDomain: one device address space (one VFIO container, later one
// iommufd IOAS) and the memory mapped into it.
//
// The domain owns its backend and an IovaAllocator. map() picks an IOVA range
// inside the usable ranges and below the caller's DMA mask, then asks the
// backend to map it; if the backend fails, the IOVA goes back, so a failed
// call leaves the domain exactly as it was. It also keeps count of the
// mappings against the kernel's budget (type1: dma_entry_limit, 65535 by
// default) and says so plainly when it runs out.
//
// One domain may serve several devices: attach their groups to the same
// container before creating the domain (or call refresh() afterwards, since
// a new group can shrink the usable ranges). Two domains in one process are
// simply two objects with two backends; there is no global state.
//
// Thread-safe: every call takes the domain's mutex. The type1 kernel code
// serialises MAP_DMA/UNMAP_DMA on one container anyway, so holding the lock
// across the ioctl costs nothing extra and keeps rollback simple.
#pragma once

#include <dmakit/iommu/backend.hpp>
#include <dmakit/iommu/iova_allocator.hpp>
#include <dmakit/support/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

namespace dmakit::iommu {

struct DomainConfig {
    // Use at most this many backend mappings, even if the kernel allows more.
    // Lets tests (and cautious programs sharing dma_entry_limit with others)
    // hit the budget on purpose; nullopt means "what the kernel reports".
    std::optional<std::uint64_t> max_mappings;
    // IOVA ranges never handed out, besides the holes the backend reports:
    // the machine's PCI memory windows (iommu/pci_windows.hpp), so that no
    // device address aliases MMIO. Rounded outwards to the IOMMU granule;
    // ranges may overlap each other or lie outside the usable space.
    std::vector<IovaRange> reserved{};
};

// Options for one map() call.
struct MapOptions {
    // Highest IOVA the device can generate (DMA_BIT_MASK(n) in the kernel):
    // the whole mapping ends at or below it.
    std::uint64_t dma_mask = ~std::uint64_t{0};
    // IOVA alignment; 0 means the mapping's size rounded up to a power of two.
    std::uint64_t align = 0;
};

// A live mapping, as the device sees it. Plain value: the domain owns the
// mapping; give `iova` back to unmap().
struct IommuMapping {
    std::uint64_t iova = 0;    // first device address
    std::uint64_t length = 0;  // mapped bytes (the request rounded up to the granule)
};

// One piece of memory for map_scattered().
struct CpuSegment {
    const void* cpu = nullptr;
    std::uint64_t length = 0;
};

class IommuDomain {
public:
    // Queries the backend once for ranges, page sizes and budget, and takes
    // config.reserved out of the usable ranges (EINVAL if one ends before it
    // starts, or if nothing usable is left).
    [[nodiscard]] static Result<std::unique_ptr<IommuDomain>> create(
        std::unique_ptr<IommuBackend> backend, DomainConfig config = {});

    // Unmaps whatever is still mapped (best effort: the kernel drops every
    // mapping when the container closes anyway).
    ~IommuDomain();
    IommuDomain(const IommuDomain&) = delete;
    IommuDomain& operator=(const IommuDomain&) = delete;

    // Maps [cpu, cpu + length) for the device. `cpu` must be aligned to
    // granule(); `length` is rounded up to it. One backend mapping.
    [[nodiscard]] Result<IommuMapping> map(const void* cpu, std::uint64_t length, Access access,
                                           MapOptions options = {});

    // Maps several granule-aligned pieces of memory back to back into one
    // contiguous IOVA range (a buffer contiguous for the device but not for
    // the CPU). One backend mapping per segment, all or nothing.
    [[nodiscard]] Result<IommuMapping> map_scattered(std::span<const CpuSegment> segments,
                                                     Access access, MapOptions options = {});

    // Unmaps what map()/map_scattered() returned at `iova`.
    [[nodiscard]] Status unmap(std::uint64_t iova);

    // The kernel has dropped every mapping of this domain: each of its
    // devices was released for a hot unplug, and with the last one the
    // container's groups and IOMMU went (vfio_device_remove_group). Later
    // unmaps only update the bookkeeping; no backend call is made, because
    // there is nothing left to undo and the kernel answers with errors.
    void forget_backend_mappings() noexcept;

    // Re-reads ranges and budget from the backend (after attaching another
    // group to the same container). Fails with EBUSY if a live mapping lies in
    // space that stopped being usable; only shrinking ranges are applied, and
    // DomainConfig::reserved stays reserved.
    [[nodiscard]] Status refresh();

    // Device address of a CPU address inside a live single-segment or
    // scattered mapping, or nullopt. O(n) over mappings: for checks and tests,
    // not for hot paths (the DMA layer keeps its own O(1) translation).
    [[nodiscard]] std::optional<std::uint64_t> find_iova(const void* cpu) const;

    [[nodiscard]] std::uint64_t granule() const noexcept { return granule_; }
    [[nodiscard]] std::uint64_t page_sizes() const noexcept { return page_sizes_; }
    [[nodiscard]] std::vector<IovaRange> usable_ranges() const;
    // Backend mappings allowed in total / in use now (each segment counts).
    [[nodiscard]] std::uint64_t mapping_budget() const;
    [[nodiscard]] std::uint64_t mappings_in_use() const;
    // Live map()/map_scattered() results.
    [[nodiscard]] std::size_t mapping_count() const;
    [[nodiscard]] std::uint64_t free_iova_bytes() const;

    [[nodiscard]] IommuBackend& backend() noexcept { return *backend_; }

private:
    struct Segment {
        std::uint64_t iova;
        const void* cpu;
        std::uint64_t length;
    };
    struct Record {
        std::uint64_t length;
        std::uint64_t block;  // IOVA bytes set aside (the allocator's block)
        Access access;
        std::vector<Segment> segments;
    };

    // Recently freed IOVA blocks of small sizes, reused before the buddy
    // trees are touched (Linux's iova rcache): strict-mode maps of 4 KiB to
    // 256 KiB then cost no tree operation. Cached blocks stay allocated in
    // the allocator; they are given back when space runs short or the
    // usable ranges change.
    static constexpr unsigned kCacheMinOrder = 12;  // 4 KiB
    static constexpr unsigned kCacheMaxOrder = 18;  // 256 KiB
    static constexpr std::size_t kCacheDepth = 64;
    std::array<std::vector<std::uint64_t>, kCacheMaxOrder - kCacheMinOrder + 1> iova_cache_;
    std::uint64_t cached_bytes_ = 0;

    IommuDomain(std::unique_ptr<IommuBackend> backend, IovaAllocator allocator,
                IommuCapabilities caps, DomainConfig config);

    [[nodiscard]] Result<IommuMapping> map_locked(std::span<const CpuSegment> segments,
                                                  Access access, MapOptions options);
    [[nodiscard]] Result<std::uint64_t> allocate_iova_locked(std::uint64_t block,
                                                             std::uint64_t length,
                                                             const MapOptions& options);
    void release_iova_locked(std::uint64_t iova, std::uint64_t block);
    void flush_iova_cache_locked();
    [[nodiscard]] Error budget_error() const;
    void set_budget_locked(const IommuCapabilities& caps);

    mutable std::mutex mutex_;
    bool backend_mappings_gone_ = false;  // forget_backend_mappings()
    std::unique_ptr<IommuBackend> backend_;
    IovaAllocator allocator_;
    DomainConfig config_;
    std::uint64_t granule_ = 0;
    std::uint64_t page_sizes_ = 0;
    std::uint64_t budget_ = 0;
    bool budget_from_config_ = false;
    std::uint64_t backend_mappings_ = 0;
    std::map<std::uint64_t, Record> records_;  // by first IOVA
};

}  // namespace dmakit::iommu
