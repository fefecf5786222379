#include <dmakit/drivers/nvme/sgl.hpp>

#include <dmakit/drivers/nvme/format.hpp>

#include <cerrno>
#include <cstring>
#include <string>

namespace dmakit::nvme {

namespace {

constexpr std::uint8_t id_of(std::uint8_t type) noexcept { return static_cast<std::uint8_t>(type << 4); }

SglPiece piece_of(const DmaSegment& s) noexcept { return SglPiece{s.addr, s.len, false}; }
SglPiece piece_of(const SglPiece& p) noexcept { return p; }

SglDescriptor descriptor_of(const SglPiece& p) noexcept {
    SglDescriptor d;
    d.length = static_cast<std::uint32_t>(p.len);
    if (p.bit_bucket) {
        d.id = id_of(sgl_type::bit_bucket);  // address reserved (§4.4)
    } else {
        d.addr = p.addr;
        d.id = id_of(sgl_type::data_block);
    }
    return d;
}

Error bad_piece(std::size_t i, const SglPiece& p, std::string_view why) {
    return Error(EINVAL, std::string(p.bit_bucket ? "bit bucket " : "DMA segment ") + std::to_string(i) + " {" +
                             hex(p.addr) + ", " + std::to_string(p.len) + " bytes} " + std::string(why) +
                             " (NVMe 1.4 §4.4 SGL rules)");
}

}  // namespace

std::uint64_t sgl_list_pages(std::uint64_t descriptors, std::uint64_t page_size) noexcept {
    const std::uint64_t per_page = page_size / sizeof(SglDescriptor);
    if (descriptors <= 1) return 0;  // SGL Descriptor 1 holds it
    if (descriptors <= per_page) return 1;
    // Every page but the last gives its final slot to the next segment's descriptor.
    return 1 + (descriptors - per_page + (per_page - 1) - 1) / (per_page - 1);
}

// Writes descriptors into a chain's pages (friend of DataChain).
class SglWriter {
public:
    template <typename Piece>
    static Result<DataChain> build(std::span<const Piece> pieces, std::uint64_t page_size,
                                   std::uint64_t max_transfer, SglSupport rules, PrpListAllocator* allocator) {
        if (page_size < 4096 || (page_size & (page_size - 1)) != 0) {
            return Error(EINVAL, "SGL page size " + std::to_string(page_size) + " is not a power of two of at least 4096");
        }
        if (!rules.supported) {
            return Error(ENOTSUP, "the controller does not support SGLs (Identify SGLS bits 1:0 are 0); use PRPs "
                                  "(DataTransfer::prp or automatic)");
        }
        if (pieces.empty()) return Error(EINVAL, "an SGL transfer needs at least one DMA segment");
        std::uint64_t total = 0;
        bool any_data = false;
        for (std::size_t i = 0; i < pieces.size(); ++i) {
            const SglPiece p = piece_of(pieces[i]);
            if (p.len == 0) return bad_piece(i, p, "is empty");
            if (p.len > 0xffffffffull) return bad_piece(i, p, "is longer than one descriptor's 4 GiB - 1 bytes");
            if (p.bit_bucket) {
                if (!rules.bit_bucket) {
                    return Error(ENOTSUP, "the controller does not support SGL Bit Bucket descriptors (SGLS bit 16 "
                                          "clear); read the skipped blocks into a scratch buffer instead");
                }
            } else {
                any_data = true;
                if (p.addr + p.len < p.addr) return bad_piece(i, p, "wraps around the address space");
                if (rules.dword_aligned && ((p.addr | p.len) & 3u) != 0) {
                    return bad_piece(i, p, "is not dword aligned in address and length, which this controller "
                                           "requires (SGLS bits 1:0 = 10b)");
                }
            }
            if (total + p.len < total) return bad_piece(i, p, "makes the transfer length overflow");
            total += p.len;
        }
        if (!any_data) return Error(EINVAL, "an SGL of only bit buckets moves no data; give at least one buffer");
        if (total > max_transfer) {
            return Error(EINVAL, "transfer of " + std::to_string(total) + " bytes exceeds the controller's maximum of " +
                                     std::to_string(max_transfer) + " bytes (MDTS); split the I/O");
        }

        DataChain chain;
        chain.sgl_ = true;
        if (pieces.size() == 1) {
            chain.data_ = sgl1(descriptor_of(piece_of(pieces[0])));
            return chain;
        }
        if (allocator == nullptr) {
            return Error(EINVAL, std::to_string(pieces.size()) +
                                     " SGL descriptors need a segment list, but no list-page allocator was given");
        }
        const std::uint64_t per_page = page_size / sizeof(SglDescriptor);
        chain.pages_.reserve(sgl_list_pages(pieces.size(), page_size));
        std::uint64_t remaining = pieces.size();
        std::size_t next = 0;
        // The descriptor that points at the page being filled: SGL1 first,
        // then the last slot of the previous page.
        SglDescriptor* pointer = nullptr;
        SglDescriptor first_pointer;
        while (remaining > 0) {
            DMAKIT_ASSIGN_OR_RETURN(PrpListPage page, chain.take_page(*allocator, page_size));
            auto* slots = static_cast<SglDescriptor*>(page.cpu);
            const bool last = remaining <= per_page;
            const std::uint64_t here = last ? remaining : per_page - 1;
            SglDescriptor& ptr = pointer == nullptr ? first_pointer : *pointer;
            ptr = SglDescriptor{};
            ptr.addr = page.dma;
            // A Segment descriptor's length covers the whole next segment,
            // its own trailing pointer included (§4.4).
            ptr.length = static_cast<std::uint32_t>((last ? here : per_page) * sizeof(SglDescriptor));
            ptr.id = id_of(last ? sgl_type::last_segment : sgl_type::segment);
            for (std::uint64_t i = 0; i < here; ++i) slots[i] = descriptor_of(piece_of(pieces[next++]));
            remaining -= here;
            pointer = last ? nullptr : &slots[per_page - 1];
        }
        chain.data_ = sgl1(first_pointer);
        return chain;
    }
};

Result<DataChain> build_sgl(std::span<const DmaSegment> segments, std::uint64_t page_size, std::uint64_t max_transfer,
                            SglSupport rules, PrpListAllocator* allocator) {
    return SglWriter::build(segments, page_size, max_transfer, rules, allocator);
}
Result<DataChain> build_sgl(std::span<const SglPiece> pieces, std::uint64_t page_size, std::uint64_t max_transfer,
                            SglSupport rules, PrpListAllocator* allocator) {
    return SglWriter::build(pieces, page_size, max_transfer, rules, allocator);
}

const char* to_string(DataTransfer t) noexcept {
    switch (t) {
        case DataTransfer::automatic: return "auto";
        case DataTransfer::prp: return "prp";
        case DataTransfer::sgl: return "sgl";
    }
    return "?";
}

Result<bool> use_sgl(DataTransfer policy, SglSupport support, std::span<const DmaSegment> segments) {
    switch (policy) {
        case DataTransfer::prp: return false;
        case DataTransfer::sgl:
            if (!support.supported) {
                return Error(ENOTSUP, "SGL transfer asked, but the controller does not support SGLs (Identify SGLS "
                                      "bits 1:0 are 0); use DataTransfer::prp or automatic");
            }
            return true;
        case DataTransfer::automatic: break;
    }
    if (!support.supported || segments.empty()) return false;
    // Scattered: several segments (a map_sg list), or a start PRP1 cannot take.
    const bool scattered = segments.size() > 1 || (segments[0].addr & 3u) != 0;
    if (!scattered) return false;
    if (support.dword_aligned) {
        for (const DmaSegment& s : segments) {
            if (((s.addr | s.len) & 3u) != 0) return false;  // PRP then reports what is wrong
        }
    }
    return true;
}

}  // namespace dmakit::nvme
