// SGL construction (NVMe 1.4 §4.4 Scatter Gather List) and the choice
// between SGL and PRP for a command.
//
// A transfer is given as pieces of device memory (DMA segments, optionally
// with Bit Bucket pieces that a read discards). One piece goes in the
// command itself as SGL Descriptor 1; more go into SGL segments written into
// list pages from the same page source as PRP lists (a DmaPool of page-sized
// blocks, so a segment never crosses a page): a page holds page_size/16
// descriptors, and a full page gives its last slot to a Segment (or Last
// Segment) descriptor that points at the next page (§4.4 "SGL Segment").
// Unlike PRPs, SGL pieces may start and end anywhere, which is what a
// map_sg list of small, unaligned buffers needs.
#pragma once

#include <dmakit/drivers/nvme/prp.hpp>

#include <dmakit/support/result.hpp>

#include <cstdint>
#include <span>

namespace dmakit::nvme {

// NVMe 1.4 §4.4, Figure "SGL Descriptor Type" (byte 15 bits 7:4; subtype 0h = address).
namespace sgl_type {
inline constexpr std::uint8_t data_block = 0x0;
inline constexpr std::uint8_t bit_bucket = 0x1;
inline constexpr std::uint8_t segment = 0x2;
inline constexpr std::uint8_t last_segment = 0x3;
}  // namespace sgl_type

// One 16-byte SGL descriptor: address, length, SGL identifier (§4.4, Figure "SGL Descriptor Format").
struct SglDescriptor {
    std::uint64_t addr = 0;
    std::uint32_t length = 0;
    std::uint8_t reserved[3] = {0, 0, 0};
    std::uint8_t id = 0;  // type << 4 | subtype
    [[nodiscard]] constexpr std::uint8_t type() const noexcept { return static_cast<std::uint8_t>(id >> 4); }
};
static_assert(sizeof(SglDescriptor) == 16);

// SGL Descriptor 1 in a command's DPTR (bytes 39:24), as the two 64-bit words DataPointer holds.
[[nodiscard]] constexpr DataPointer sgl1(const SglDescriptor& d) noexcept {
    return DataPointer{d.addr, std::uint64_t{d.length} | std::uint64_t{d.id} << 56};
}
[[nodiscard]] constexpr SglDescriptor sgl1_of(DataPointer p) noexcept {
    SglDescriptor d;
    d.addr = p.prp1;
    d.length = static_cast<std::uint32_t>(p.prp2);
    d.id = static_cast<std::uint8_t>(p.prp2 >> 56);
    return d;
}

// What Identify Controller SGLS (bytes 539:536, §5.15.2.1) allows.
struct SglSupport {
    bool supported = false;      // bits 1:0 != 00b
    bool dword_aligned = false;  // bits 1:0 == 10b: data block address and length dword aligned
    bool bit_bucket = false;     // bit 16
    [[nodiscard]] static constexpr SglSupport from_sgls(std::uint32_t sgls) noexcept {
        const std::uint32_t mode = sgls & 3u;
        return SglSupport{mode == 1 || mode == 2, mode == 2, (mode == 1 || mode == 2) && (sgls & (1u << 16)) != 0};
    }
};

// A piece of an SGL transfer: device memory, or (bit_bucket) bytes of a read
// the controller discards (§4.4 SGL Bit Bucket descriptor; `addr` ignored).
struct SglPiece {
    std::uint64_t addr = 0;
    std::uint64_t len = 0;
    bool bit_bucket = false;
};

// Builds the SGL for `pieces` with list pages of `page_size` bytes (a power
// of two >= 4096). Checked: at least one piece that is not a bit bucket, no
// piece empty, longer than 4 GiB - 1 (a descriptor's length field) or
// wrapping the address space; dword alignment when `rules.dword_aligned`;
// bit buckets only when `rules.bit_bucket`; the total (bit buckets included:
// they count as transferred LBA data) at most `max_transfer`. `allocator`
// may be null when there is one piece.
[[nodiscard]] Result<DataChain> build_sgl(std::span<const DmaSegment> segments, std::uint64_t page_size,
                                          std::uint64_t max_transfer, SglSupport rules, PrpListAllocator* allocator);
[[nodiscard]] Result<DataChain> build_sgl(std::span<const SglPiece> pieces, std::uint64_t page_size,
                                          std::uint64_t max_transfer, SglSupport rules, PrpListAllocator* allocator);

// List pages an SGL of `descriptors` data descriptors needs.
[[nodiscard]] std::uint64_t sgl_list_pages(std::uint64_t descriptors, std::uint64_t page_size) noexcept;

// How a command's data pointer is built.
enum class DataTransfer {
    automatic,  // SGL when the controller has them and the buffer is scattered (several
                // segments, or a start PRPs cannot express); PRP otherwise
    prp,        // always PRP (§4.3)
    sgl,        // always SGL; refused (ENOTSUP) when the controller reports none
};
[[nodiscard]] const char* to_string(DataTransfer t) noexcept;

// Whether the command for `segments` uses an SGL under `policy`; ENOTSUP for
// an SGL asked of a controller without them.
[[nodiscard]] Result<bool> use_sgl(DataTransfer policy, SglSupport support, std::span<const DmaSegment> segments);

}  // namespace dmakit::nvme
