// PRP construction (NVMe 1.4 §4.3 Physical Region Page Entry and List).
//
// A transfer is given as device-address segments (what dma_map_sg or a
// coherent buffer yields). The result is PRP1/PRP2 for the command and, for
// transfers over two pages, PRP lists written into pages that a caller's
// allocator hands out (a DmaPool of page-sized, page-aligned blocks in the
// driver). Lists longer than one page are chained: the last entry of a full
// list page points to the next list page.
#pragma once

#include <dmakit/drivers/nvme/commands.hpp>

#include <dmakit/support/result.hpp>

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace dmakit::nvme {

// A run of device-visible memory: device (IOVA) address and length in bytes.
// Plain integers here so the protocol core does not depend on the DMA layer;
// the glue converts its DmaAddr at the boundary.
struct DmaSegment {
    std::uint64_t addr = 0;
    std::uint64_t len = 0;
};

// One PRP list page: CPU pointer to write entries through and the device
// address the controller reads it at. Must be `page_size` bytes, page aligned.
struct PrpListPage {
    void* cpu = nullptr;
    std::uint64_t dma = 0;
};

// Source of PRP list pages; release() gets back exactly what allocate() gave.
class PrpListAllocator {
public:
    virtual ~PrpListAllocator() = default;
    [[nodiscard]] virtual Result<PrpListPage> allocate() = 0;
    virtual void release(PrpListPage page) noexcept = 0;
};

// A command's data pointer (DPTR: PRP1/PRP2, or SGL1 when sgl() is set; see
// sgl.hpp) plus the list pages it owns (PRP lists or SGL segments). Move-only:
// the pages go back to the allocator when the chain is destroyed, which must
// be after the command completed (the controller reads them during it).
class DataChain {
public:
    DataChain() = default;
    DataChain(const DataChain&) = delete;
    DataChain& operator=(const DataChain&) = delete;
    DataChain(DataChain&& other) noexcept;
    DataChain& operator=(DataChain&& other) noexcept;
    ~DataChain() { reset(); }

    [[nodiscard]] DataPointer data() const noexcept { return data_; }
    // PSDT 01b (§4.2): DPTR holds SGL Descriptor 1 instead of PRP entries.
    [[nodiscard]] bool sgl() const noexcept { return sgl_; }
    [[nodiscard]] std::span<const PrpListPage> list_pages() const noexcept { return pages_; }
    // Returns the list pages to the allocator now.
    void reset() noexcept;

private:
    friend Result<DataChain> build_prp(std::span<const DmaSegment>, std::uint64_t, std::uint64_t, PrpListAllocator*);
    friend class SglWriter;
    // One more list page from `allocator`, aligned to `align` (a power of
    // two); from the first on, the chain releases what it got.
    [[nodiscard]] Result<PrpListPage> take_page(PrpListAllocator& allocator, std::uint64_t align);

    DataPointer data_;
    bool sgl_ = false;
    std::vector<PrpListPage> pages_;
    PrpListAllocator* allocator_ = nullptr;
};
using PrpChain = DataChain;

inline constexpr std::uint64_t no_transfer_limit = std::numeric_limits<std::uint64_t>::max();

// Builds the PRPs for `segments` with controller page size `page_size`
// (CC.MPS, a power of two >= 4096). Rules checked (§4.3): the first segment
// may start at a dword-aligned offset into a page, every later segment starts
// on a page boundary, every segment but the last ends on one, no segment is
// empty or wraps the address space, and the total is at most `max_transfer`
// (MDTS in bytes). `allocator` may be null when the transfer spans at most
// two pages; a needed list page that is missing, null or unaligned is an error.
[[nodiscard]] Result<PrpChain> build_prp(std::span<const DmaSegment> segments, std::uint64_t page_size,
                                         std::uint64_t max_transfer, PrpListAllocator* allocator);

// Number of PRP entries (pages touched) and list pages a valid transfer needs.
struct PrpShape {
    std::uint64_t entries = 0;
    std::uint64_t list_pages = 0;
};
[[nodiscard]] PrpShape prp_shape(std::span<const DmaSegment> segments, std::uint64_t page_size) noexcept;

}  // namespace dmakit::nvme
