#include <dmakit/iommu/iova_allocator.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <string>

namespace dmakit::iommu {

namespace {

constexpr std::uint64_t block_bytes(unsigned order) noexcept { return std::uint64_t{1} << order; }

// Largest order o with 2^o <= span_minus_one + 1 (span may be 2^64).
unsigned order_fitting(std::uint64_t span_minus_one) noexcept {
    if (span_minus_one == ~std::uint64_t{0}) return IovaAllocator::kMaxOrder;
    return static_cast<unsigned>(std::bit_width(span_minus_one + 1) - 1);
}

}  // namespace

Result<IovaAllocator> IovaAllocator::create(std::vector<IovaRange> usable, std::uint64_t granule) {
    if (granule == 0 || !std::has_single_bit(granule)) {
        return Error(EINVAL, "IOVA granule " + std::to_string(granule) +
                                 " is not a power of two (the backend reported no page sizes?)");
    }
    IovaAllocator allocator;
    allocator.granule_ = granule;
    allocator.min_order_ = static_cast<unsigned>(std::countr_zero(granule));

    constexpr std::uint64_t kTop = ~std::uint64_t{0};
    std::vector<IovaRange> trimmed;
    for (const IovaRange& range : usable) {
        if (range.last < range.start) {
            return Error(EINVAL, "IOVA range " + to_hex(range.start) + "-" + to_hex(range.last) +
                                     " ends before it starts");
        }
        // Trim inwards to whole granules; the page at IOVA 0 is never usable.
        std::uint64_t start = std::max(range.start, granule);
        if (start % granule != 0) {
            if (start > kTop - granule) continue;
            start = (start | (granule - 1)) + 1;
        }
        std::uint64_t last = kTop;
        if (range.last != kTop) {
            const std::uint64_t end_exclusive = (range.last + 1) & ~(granule - 1);
            if (end_exclusive == 0) continue;
            last = end_exclusive - 1;
        }
        if (last < start) continue;
        trimmed.push_back({start, last});
    }
    std::sort(trimmed.begin(), trimmed.end(),
              [](const IovaRange& a, const IovaRange& b) { return a.start < b.start; });
    for (const IovaRange& range : trimmed) {
        auto& merged = allocator.usable_;
        if (!merged.empty() &&
            (merged.back().last == kTop || range.start <= merged.back().last + 1)) {
            merged.back().last = std::max(merged.back().last, range.last);
        } else {
            merged.push_back(range);
        }
    }
    for (const IovaRange& range : allocator.usable_) allocator.add_free_range(range.start, range.last);
    if (allocator.usable_.empty()) {
        return Error(EINVAL, "no usable IOVA range of at least one IOMMU page (" +
                                 std::to_string(granule) + " bytes)");
    }
    return allocator;
}

// Cuts [start, last] (granule-aligned, last + 1 aligned) into maximal aligned
// blocks. Each block's buddy overlaps space outside the range, so no block
// here can coalesce with a free neighbour that is not really free.
void IovaAllocator::add_free_range(std::uint64_t start, std::uint64_t last) {
    std::uint64_t cursor = start;
    for (;;) {
        unsigned order = order_fitting(last - cursor);
        if (cursor != 0) order = std::min(order, static_cast<unsigned>(std::countr_zero(cursor)));
        order = std::min(order, kMaxOrder);
        free_[order].insert(cursor);
        free_bytes_ += block_bytes(order);
        std::uint64_t block_last = cursor + (block_bytes(order) - 1);
        if (block_last == last) break;
        cursor = block_last + 1;
    }
}

Result<std::uint64_t> IovaAllocator::allocate(std::uint64_t size, std::uint64_t dma_mask,
                                              std::uint64_t align) {
    if (size == 0) return Error(EINVAL, "IOVA allocation of 0 bytes");
    if (align != 0 && !std::has_single_bit(align)) {
        return Error(EINVAL, "IOVA alignment " + to_hex(align) + " is not a power of two");
    }
    if (size > block_bytes(kMaxOrder)) {
        return Error(ENOMEM, "no free IOVA range of " + std::to_string(size) +
                                 " bytes below mask " + to_hex(dma_mask) +
                                 ": larger than any IOVA block");
    }
    const std::uint64_t want = block_for(size, align);
    unsigned order = static_cast<unsigned>(std::countr_zero(want));

    auto no_space = [&]() {
        return Error(ENOMEM, "no free IOVA range of " + std::to_string(size) +
                                 " bytes below mask " + to_hex(dma_mask) + " (needs a " +
                                 std::to_string(want) + "-byte aligned block; largest free below "
                                 "the mask: " + std::to_string(largest_free_below(dma_mask)) +
                                 " bytes, free in total: " + std::to_string(free_bytes_) +
                                 " bytes)");
    };
    if (dma_mask < want - 1) return no_space();
    // Highest block start whose block still ends at or below the mask.
    const std::uint64_t limit = (dma_mask - (want - 1)) & ~(want - 1);

    for (unsigned j = order; j <= kMaxOrder; ++j) {
        auto& set = free_[j];
        auto it = set.upper_bound(limit);
        if (it == set.begin()) continue;
        --it;
        const std::uint64_t block = *it;
        // Highest `want`-aligned piece of this block that is below the limit.
        const std::uint64_t block_top_piece = block + (block_bytes(j) - want);
        const std::uint64_t target = std::min(block_top_piece, limit);
        set.erase(it);
        // Split down to `order`, returning the halves we do not keep.
        std::uint64_t cursor = block;
        for (unsigned o = j; o > order; --o) {
            const std::uint64_t half = block_bytes(o - 1);
            if (target >= cursor + half) {
                free_[o - 1].insert(cursor);
                cursor += half;
            } else {
                free_[o - 1].insert(cursor + half);
            }
        }
        free_bytes_ -= want;
        allocated_.emplace(target, order);
        return target;
    }
    return no_space();
}

Status IovaAllocator::free(std::uint64_t iova) {
    auto it = allocated_.find(iova);
    if (it == allocated_.end()) {
        return Error(EINVAL, "IOVA " + to_hex(iova) + " was not allocated here (double free?)");
    }
    unsigned order = it->second;
    allocated_.erase(it);
    free_bytes_ += block_bytes(order);
    std::uint64_t cursor = iova;
    while (order < kMaxOrder) {
        const std::uint64_t buddy = cursor ^ block_bytes(order);
        if (free_[order].erase(buddy) == 0) break;
        cursor = std::min(cursor, buddy);
        ++order;
    }
    free_[order].insert(cursor);
    return {};
}

Status IovaAllocator::reserve(IovaRange range) {
    if (range.last < range.start) {
        return Error(EINVAL, "reserved IOVA range " + to_hex(range.start) + "-" +
                                 to_hex(range.last) + " ends before it starts");
    }
    // Widen to whole granules.
    const std::uint64_t start = range.start & ~(granule_ - 1);
    const std::uint64_t last = range.last | (granule_ - 1);

    auto it = allocated_.upper_bound(last);
    if (it != allocated_.begin()) {
        --it;
        // Blocks are disjoint, so only the one starting closest below `last`
        // and those before it can overlap; walk back while they still might.
        for (;;) {
            const std::uint64_t block_last = it->first + (block_bytes(it->second) - 1);
            if (block_last >= start && it->first <= last) {
                return Error(EBUSY, "IOVA range " + to_hex(start) + "-" + to_hex(last) +
                                        " is in use by the allocation at " + to_hex(it->first));
            }
            if (it->first < start || it == allocated_.begin()) break;
            --it;
        }
    }

    for (unsigned order = min_order_; order <= kMaxOrder; ++order) {
        auto& set = free_[order];
        const std::uint64_t first_candidate = start & ~(block_bytes(order) - 1);
        std::vector<std::uint64_t> hit;
        for (auto b = set.lower_bound(first_candidate); b != set.end() && *b <= last; ++b) {
            hit.push_back(*b);
        }
        for (std::uint64_t block : hit) {
            set.erase(block);
            free_bytes_ -= block_bytes(order);
            const std::uint64_t block_last = block + (block_bytes(order) - 1);
            if (block < start) add_free_range(block, start - 1);
            if (block_last > last) add_free_range(last + 1, block_last);
        }
    }
    remove_from_usable(start, last);
    return {};
}

void IovaAllocator::remove_from_usable(std::uint64_t start, std::uint64_t last) {
    std::vector<IovaRange> kept;
    for (const IovaRange& r : usable_) {
        if (r.last < start || r.start > last) {
            kept.push_back(r);
            continue;
        }
        if (r.start < start) kept.push_back({r.start, start - 1});
        if (r.last > last) kept.push_back({last + 1, r.last});
    }
    usable_ = std::move(kept);
}

std::size_t IovaAllocator::free_block_count() const noexcept {
    std::size_t n = 0;
    for (const auto& set : free_) n += set.size();
    return n;
}

std::optional<std::uint64_t> IovaAllocator::block_size(std::uint64_t iova) const {
    auto it = allocated_.find(iova);
    if (it == allocated_.end()) return std::nullopt;
    return block_bytes(it->second);
}

std::uint64_t IovaAllocator::largest_free_below(std::uint64_t dma_mask) const {
    for (unsigned order = kMaxOrder + 1; order-- > min_order_;) {
        const std::uint64_t size = block_bytes(order);
        if (dma_mask < size - 1) continue;
        const std::uint64_t limit = (dma_mask - (size - 1)) & ~(size - 1);
        for (unsigned j = order; j <= kMaxOrder; ++j) {
            auto it = free_[j].upper_bound(limit);
            if (it != free_[j].begin()) return size;
        }
    }
    return 0;
}

}  // namespace dmakit::iommu
