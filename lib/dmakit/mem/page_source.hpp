// PageSource: where region memory comes from.
//
// The buddy allocator reserves one address range up front and asks a source
// to back pieces of it (MAP_FIXED) as regions are added. Sources are injected,
// so tests run the allocators over plain anonymous memory while programs use
// hugepages. A source must hand back memory that is populated (pre-faulted)
// and, where it can, locked: faulting pages in on a hot path is what pools
// exist to avoid.
#pragma once

#include <dmakit/support/result.hpp>

#include <cstddef>
#include <string_view>

namespace dmakit::mem {

// How a mapped range is backed.
struct RegionBacking {
    std::size_t page_size = 0;         // 4 KiB, 2 MiB or 1 GiB
    std::size_t contiguous_bytes = 0;  // physically contiguous run (one page)
    int numa_node = -1;                // -1: no binding asked for
    bool locked = false;               // mlock succeeded
};

class PageSource {
public:
    virtual ~PageSource() = default;

    // Backs [address, address + length) with memory, replacing the PROT_NONE
    // reservation there. `address` and `length` are multiples of
    // alignment(). On failure the range must be left reserved and untouched.
    [[nodiscard]] virtual Result<RegionBacking> map(void* address, std::size_t length) = 0;

    // map() with the memory placed on NUMA node `node` (-1: wherever map()
    // puts it). The default refuses a node with ENOTSUP.
    [[nodiscard]] virtual Result<RegionBacking> map_on_node(void* address, std::size_t length,
                                                            int node);

    // Gives the memory back and restores the PROT_NONE reservation.
    virtual void unmap(void* address, std::size_t length) noexcept;

    // Placement and length granularity the source needs (its largest page).
    [[nodiscard]] virtual std::size_t alignment() const noexcept = 0;

    [[nodiscard]] virtual std::string_view name() const noexcept = 0;
};

// Replaces a range with an inaccessible, unbacked reservation (what
// PageSource::unmap does by default). Returns false if mmap failed.
bool reset_to_reservation(void* address, std::size_t length) noexcept;

}  // namespace dmakit::mem
