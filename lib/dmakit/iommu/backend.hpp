// IommuBackend: the few operations an IOMMU domain needs from the kernel.
//
// An IommuDomain (domain.hpp) decides *where* memory goes in the device's
// address space; a backend only carries that decision to the hardware. The
// interface is deliberately small so that other kernel interfaces fit later:
//
//  - VFIO type1 (vfio/type1_backend.hpp) is the one implemented today:
//    VFIO_IOMMU_MAP_DMA / VFIO_IOMMU_UNMAP_DMA on a container, usable ranges
//    and the mapping budget from VFIO_IOMMU_GET_INFO's capability chain.
//  - iommufd (Linux 6.2+, CONFIG_IOMMUFD) fits the same shape: IOMMU_IOAS_MAP
//    with IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_UNMAP, IOMMU_IOAS_IOVA_RANGES;
//    it has no per-container mapping budget (mappings_available = nullopt).
//  - no-IOMMU VFIO (CONFIG_VFIO_NOIOMMU) does not: the device sees physical
//    addresses, so nothing can be "mapped at an IOVA". It would need a
//    translate-only mode in the domain (pin + /proc/self/pagemap). That mode
//    is not written; nothing here pretends to support it.
//
// Neither iommufd nor no-IOMMU can be exercised by the VM bench (Debian's
// kernels build neither), which is why neither is implemented yet.
#pragma once

#include <dmakit/support/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dmakit::iommu {

// An inclusive range of IO virtual addresses [start, last], as the kernel
// reports them (struct vfio_iova_range is inclusive too). Inclusive ends let
// the range reach 2^64 - 1 without overflow.
struct IovaRange {
    std::uint64_t start = 0;
    std::uint64_t last = 0;

    friend bool operator==(const IovaRange&, const IovaRange&) = default;
};

// What the device may do with a mapping. `read` means the device reads the
// memory (DMA to the device), `write` means it writes it (DMA from the device),
// like VFIO_DMA_MAP_FLAG_READ / _WRITE in include/uapi/linux/vfio.h.
enum class Access : unsigned { read = 1, write = 2, read_write = 3 };

[[nodiscard]] constexpr bool allows_read(Access a) noexcept {
    return (static_cast<unsigned>(a) & 1U) != 0;
}
[[nodiscard]] constexpr bool allows_write(Access a) noexcept {
    return (static_cast<unsigned>(a) & 2U) != 0;
}

// What the backend's kernel side offers right now.
struct IommuCapabilities {
    // IOVA ranges the device may be given, sorted and disjoint; reserved
    // windows (the x86 MSI window 0xfee00000-0xfeefffff, ...) are holes.
    std::vector<IovaRange> usable_ranges;
    // Bitmap of IOMMU page sizes (bit n set: 2^n bytes). The smallest one is
    // the mapping granule: IOVA, length and CPU address must be aligned to it.
    std::uint64_t page_sizes = 0;
    // How many more mappings the kernel accepts (type1: the DMA_AVAIL
    // capability, counting down from dma_entry_limit); nullopt when the
    // backend has no such limit or the kernel does not report it.
    std::optional<std::uint64_t> mappings_available;
};

// Words for the budget error, so that it names the real knob.
struct BudgetDescription {
    std::string name;    // "vfio_iommu_type1 dma_entry_limit"
    std::string remedy;  // "raise it with modprobe vfio_iommu_type1 dma_entry_limit=..."
};

class IommuBackend {
public:
    virtual ~IommuBackend() = default;
    IommuBackend() = default;
    IommuBackend(const IommuBackend&) = delete;
    IommuBackend& operator=(const IommuBackend&) = delete;

    // Short name for messages ("vfio-type1", "test").
    [[nodiscard]] virtual std::string name() const = 0;

    // Reads the capabilities from the kernel now (ranges can shrink when a
    // group joins the container; the budget counts down with every map).
    [[nodiscard]] virtual Result<IommuCapabilities> query() = 0;

    // Makes [iova, iova + length) translate to [cpu, cpu + length). The caller
    // (IommuDomain) guarantees alignment to the granule, that the range lies in
    // a usable range and that it overlaps no live mapping.
    [[nodiscard]] virtual Status map(std::uint64_t iova, const void* cpu, std::uint64_t length,
                                     Access access) = 0;

    // Removes exactly one earlier map() of the same iova and length.
    [[nodiscard]] virtual Status unmap(std::uint64_t iova, std::uint64_t length) = 0;

    [[nodiscard]] virtual BudgetDescription budget_description() const = 0;
};

}  // namespace dmakit::iommu
