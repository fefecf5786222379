#include <dmakit/drivers/nvme/prp.hpp>

#include <dmakit/drivers/nvme/format.hpp>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace dmakit::nvme {

DataChain::DataChain(DataChain&& other) noexcept
    : data_(std::exchange(other.data_, {})),
      sgl_(std::exchange(other.sgl_, false)),
      pages_(std::move(other.pages_)),
      allocator_(std::exchange(other.allocator_, nullptr)) {
    other.pages_.clear();
}

DataChain& DataChain::operator=(DataChain&& other) noexcept {
    if (this != &other) {
        reset();
        data_ = std::exchange(other.data_, {});
        sgl_ = std::exchange(other.sgl_, false);
        pages_ = std::move(other.pages_);
        other.pages_.clear();
        allocator_ = std::exchange(other.allocator_, nullptr);
    }
    return *this;
}

void DataChain::reset() noexcept {
    if (allocator_ != nullptr) {
        for (const PrpListPage& p : pages_) allocator_->release(p);
    }
    pages_.clear();
    data_ = {};
    sgl_ = false;
}

Result<PrpListPage> DataChain::take_page(PrpListAllocator& allocator, std::uint64_t align) {
    allocator_ = &allocator;  // from the first page on, the chain releases what it got
    DMAKIT_ASSIGN_OR_RETURN(PrpListPage p, allocator.allocate());
    if (p.cpu == nullptr || (p.dma & (align - 1)) != 0) {
        allocator.release(p);
        return Error(EINVAL, "list page at " + hex(p.dma) + " is null or not aligned to " + std::to_string(align) +
                                 " bytes; the pool must hand out aligned pages");
    }
    pages_.push_back(p);
    return p;
}

namespace {

std::uint64_t pages_in(const DmaSegment& s, std::uint64_t page_size) noexcept {
    const std::uint64_t offset = s.addr & (page_size - 1);
    return (offset + s.len + page_size - 1) / page_size;
}

// Walks the page addresses of a transfer in order: the first is the exact
// start (with its offset), every other one a page base.
class EntryWalker {
public:
    EntryWalker(std::span<const DmaSegment> segs, std::uint64_t page_size) : segs_(segs), page_(page_size) {}

    std::uint64_t next() noexcept {
        const DmaSegment& s = segs_[seg_];
        const std::uint64_t first = s.addr;
        const std::uint64_t addr = pos_ == 0 ? first : (first & ~(page_ - 1)) + pos_ * page_;
        if (++pos_ == pages_in(s, page_)) {
            ++seg_;
            pos_ = 0;
        }
        return addr;
    }

private:
    std::span<const DmaSegment> segs_;
    std::uint64_t page_;
    std::size_t seg_ = 0;
    std::uint64_t pos_ = 0;
};

Error bad_segment(std::size_t i, const DmaSegment& s, std::string_view why) {
    return Error(EINVAL, "DMA segment " + std::to_string(i) + " {" + hex(s.addr) + ", " + std::to_string(s.len) +
                             " bytes} " + std::string(why) + " (NVMe 1.4 §4.3 PRP rules)");
}

}  // namespace

PrpShape prp_shape(std::span<const DmaSegment> segments, std::uint64_t page_size) noexcept {
    PrpShape shape;
    for (const DmaSegment& s : segments) shape.entries += pages_in(s, page_size);
    if (shape.entries > 2) {
        const std::uint64_t listed = shape.entries - 1;  // PRP1 holds the first
        const std::uint64_t per_page = page_size / 8;
        // Every list page but the last gives its final slot to the chain pointer.
        shape.list_pages = listed <= per_page ? 1 : 1 + (listed - per_page + (per_page - 1) - 1) / (per_page - 1);
    }
    return shape;
}

Result<DataChain> build_prp(std::span<const DmaSegment> segments, std::uint64_t page_size, std::uint64_t max_transfer,
                           PrpListAllocator* allocator) {
    if (page_size < 4096 || (page_size & (page_size - 1)) != 0) {
        return Error(EINVAL, "PRP page size " + std::to_string(page_size) + " is not a power of two of at least 4096");
    }
    if (segments.empty()) return Error(EINVAL, "a PRP transfer needs at least one DMA segment");

    const std::uint64_t mask = page_size - 1;
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
        const DmaSegment& s = segments[i];
        if (s.len == 0) return bad_segment(i, s, "is empty");
        if (s.addr + s.len < s.addr) return bad_segment(i, s, "wraps around the address space");
        if (i == 0 && (s.addr & 3u) != 0) return bad_segment(i, s, "starts at an offset that is not dword aligned");
        if (i > 0 && (s.addr & mask) != 0) {
            return bad_segment(i, s, "is not the first but does not start on a " + std::to_string(page_size) +
                                         "-byte page boundary");
        }
        if (i + 1 < segments.size() && ((s.addr + s.len) & mask) != 0) {
            return bad_segment(i, s, "is not the last but does not end on a " + std::to_string(page_size) +
                                         "-byte page boundary");
        }
        if (total + s.len < total) return bad_segment(i, s, "makes the transfer length overflow");
        total += s.len;
    }
    if (total > max_transfer) {
        return Error(EINVAL, "transfer of " + std::to_string(total) + " bytes exceeds the controller's maximum of " +
                                 std::to_string(max_transfer) + " bytes (MDTS); split the I/O");
    }

    const PrpShape shape = prp_shape(segments, page_size);
    EntryWalker walk(segments, page_size);
    PrpChain chain;
    chain.data_.prp1 = walk.next();
    if (shape.entries == 1) return chain;  // PRP2 unused, left 0
    if (shape.entries == 2) {
        chain.data_.prp2 = walk.next();
        return chain;
    }

    if (allocator == nullptr) {
        return Error(EINVAL, "transfer spans " + std::to_string(shape.entries) +
                                 " pages and needs a PRP list, but no list-page allocator was given");
    }
    chain.pages_.reserve(shape.list_pages);
    auto take_page = [&] { return chain.take_page(*allocator, page_size); };

    const std::uint64_t per_page = page_size / 8;
    std::uint64_t remaining = shape.entries - 1;
    DMAKIT_ASSIGN_OR_RETURN(PrpListPage page, take_page());
    chain.data_.prp2 = page.dma;
    while (remaining > 0) {
        auto* slots = static_cast<std::uint64_t*>(page.cpu);
        if (remaining <= per_page) {
            for (std::uint64_t i = 0; i < remaining; ++i) slots[i] = walk.next();
            remaining = 0;
        } else {
            for (std::uint64_t i = 0; i + 1 < per_page; ++i) slots[i] = walk.next();
            remaining -= per_page - 1;
            DMAKIT_ASSIGN_OR_RETURN(PrpListPage next, take_page());
            slots[per_page - 1] = next.dma;  // chain pointer
            page = next;
        }
    }
    return chain;
}

}  // namespace dmakit::nvme
