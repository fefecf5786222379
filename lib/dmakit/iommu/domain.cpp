#include <dmakit/iommu/domain.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <string>

namespace dmakit::iommu {

namespace {

constexpr std::uint64_t kUnlimited = ~std::uint64_t{0};

// Parts of `old_ranges` not covered by `new_ranges` (both sorted, disjoint).
std::vector<IovaRange> lost_space(const std::vector<IovaRange>& old_ranges,
                                  const std::vector<IovaRange>& new_ranges) {
    std::vector<IovaRange> lost;
    for (const IovaRange& old_range : old_ranges) {
        std::uint64_t cursor = old_range.start;
        bool done = false;
        for (const IovaRange& keep : new_ranges) {
            if (done || keep.last < cursor) continue;
            if (keep.start > old_range.last) break;
            if (keep.start > cursor) lost.push_back({cursor, keep.start - 1});
            if (keep.last >= old_range.last) {
                done = true;
            } else {
                cursor = keep.last + 1;
            }
        }
        if (!done) lost.push_back({cursor, old_range.last});
    }
    return lost;
}

// An allocator over `usable` minus `reserved`, both widened to whole granules
// the way each side must be: usable inwards (IovaAllocator::create), reserved
// outwards (IovaAllocator::reserve).
Result<IovaAllocator> usable_space(const std::vector<IovaRange>& usable, std::uint64_t granule,
                                   const std::vector<IovaRange>& reserved) {
    auto allocator = IovaAllocator::create(usable, granule);
    if (!allocator.ok()) return allocator;
    for (const IovaRange& range : reserved) {
        // Nothing is allocated yet, so only a malformed range can fail.
        Status status = allocator->reserve(range);
        if (!status.ok()) {
            return std::move(status).error().with_context("DomainConfig::reserved");
        }
    }
    if (allocator->usable_ranges().empty()) {
        return Error(EINVAL, "DomainConfig::reserved covers every usable IOVA range; the domain "
                             "could map nothing");
    }
    return allocator;
}

}  // namespace

Result<std::unique_ptr<IommuDomain>> IommuDomain::create(std::unique_ptr<IommuBackend> backend,
                                                         DomainConfig config) {
    if (!backend) return Error(EINVAL, "IommuDomain::create needs a backend");
    auto caps = backend->query();
    if (!caps.ok()) return std::move(caps).error().with_context("reading IOMMU capabilities");
    if (caps->page_sizes == 0) {
        return Error(EINVAL, "the " + backend->name() + " IOMMU backend reports no page sizes");
    }
    if (config.max_mappings && *config.max_mappings == 0) {
        return Error(EINVAL, "DomainConfig::max_mappings is 0: the domain could map nothing");
    }
    const std::uint64_t granule = std::uint64_t{1} << std::countr_zero(caps->page_sizes);
    auto allocator = usable_space(caps->usable_ranges, granule, config.reserved);
    if (!allocator.ok()) {
        return std::move(allocator).error().with_context("IOMMU backend " + backend->name());
    }
    return std::unique_ptr<IommuDomain>(new IommuDomain(
        std::move(backend), std::move(allocator).value(), std::move(caps).value(),
        std::move(config)));
}

IommuDomain::IommuDomain(std::unique_ptr<IommuBackend> backend, IovaAllocator allocator,
                         IommuCapabilities caps, DomainConfig config)
    : backend_(std::move(backend)),
      allocator_(std::move(allocator)),
      config_(std::move(config)),
      granule_(allocator_.granule()),
      page_sizes_(caps.page_sizes) {
    set_budget_locked(caps);
}

IommuDomain::~IommuDomain() {
    std::lock_guard lock(mutex_);
    for (auto& [first_iova, record] : records_) {
        if (backend_mappings_gone_) break;
        for (const Segment& segment : record.segments) {
            (void)backend_->unmap(segment.iova, segment.length);
        }
    }
}

void IommuDomain::set_budget_locked(const IommuCapabilities& caps) {
    std::uint64_t kernel_total = kUnlimited;
    if (caps.mappings_available) {
        kernel_total = *caps.mappings_available + backend_mappings_;
    }
    budget_ = kernel_total;
    budget_from_config_ = false;
    if (config_.max_mappings && *config_.max_mappings < kernel_total) {
        budget_ = *config_.max_mappings;
        budget_from_config_ = true;
    }
}

Error IommuDomain::budget_error() const {
    const std::string count = std::to_string(budget_);
    if (budget_from_config_) {
        return Error(ENOSPC, "the IOMMU mapping budget (" + count +
                                 " mappings, capped by DomainConfig::max_mappings) is used up; "
                                 "unmap something or raise the cap");
    }
    BudgetDescription words = backend_->budget_description();
    return Error(ENOSPC, "the IOMMU mapping budget (" + count + " mappings, " + words.name +
                             ") is used up; " + words.remedy);
}

Result<IommuMapping> IommuDomain::map(const void* cpu, std::uint64_t length, Access access,
                                      MapOptions options) {
    const CpuSegment segment{cpu, length};
    std::lock_guard lock(mutex_);
    return map_locked(std::span<const CpuSegment>(&segment, 1), access, options);
}

Result<IommuMapping> IommuDomain::map_scattered(std::span<const CpuSegment> segments,
                                                Access access, MapOptions options) {
    std::lock_guard lock(mutex_);
    return map_locked(segments, access, options);
}

Result<IommuMapping> IommuDomain::map_locked(std::span<const CpuSegment> segments, Access access,
                                             MapOptions options) {
    if (segments.empty()) return Error(EINVAL, "IOMMU map of no memory (0 segments)");
    if (!allows_read(access) && !allows_write(access)) {
        return Error(EINVAL, "IOMMU map with neither read nor write access");
    }
    std::vector<Segment> rounded;
    rounded.reserve(segments.size());
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
        const CpuSegment& s = segments[i];
        const auto address = reinterpret_cast<std::uintptr_t>(s.cpu);
        if (s.cpu == nullptr) return Error(EINVAL, "IOMMU map of a null CPU address");
        if (s.length == 0) return Error(EINVAL, "IOMMU map of 0 bytes");
        if (address % granule_ != 0) {
            return Error(EINVAL, "IOMMU map of CPU address " + to_hex(address) +
                                     ", which is not aligned to the IOMMU page size (" +
                                     std::to_string(granule_) + " bytes)");
        }
        if (s.length > kUnlimited - (granule_ - 1) ||
            address > UINTPTR_MAX - (s.length - 1)) {
            return Error(EINVAL, "IOMMU map of " + std::to_string(s.length) + " bytes at " +
                                     to_hex(address) + ": address overflow");
        }
        const std::uint64_t length = (s.length + granule_ - 1) & ~(granule_ - 1);
        if (i + 1 < segments.size() && length != s.length) {
            return Error(EINVAL, "segment " + std::to_string(i) + " of a scattered IOMMU map is " +
                                     std::to_string(s.length) +
                                     " bytes, not a multiple of the IOMMU page size; only the "
                                     "last segment may be partial");
        }
        if (total > kUnlimited - length) {
            return Error(EINVAL, "scattered IOMMU map: total length overflows");
        }
        total += length;
        rounded.push_back({total - length, s.cpu, length});
    }

    if (backend_mappings_ >= budget_ || budget_ - backend_mappings_ < rounded.size()) {
        return budget_error();
    }
    const std::uint64_t block = allocator_.block_for(total, options.align);
    auto iova = allocate_iova_locked(block, total, options);
    if (!iova.ok()) return std::move(iova).error();

    for (Segment& segment : rounded) segment.iova += *iova;  // offsets become IOVAs
    for (std::size_t i = 0; i < rounded.size(); ++i) {
        Status mapped = backend_->map(rounded[i].iova, rounded[i].cpu, rounded[i].length, access);
        if (!mapped.ok()) {
            // Roll back: undo the segments already mapped, then give the IOVA
            // back. If an undo fails the IOVA stays allocated (quarantined),
            // since the device may still reach it.
            Error error = std::move(mapped).error();
            bool undone = true;
            for (std::size_t j = i; j-- > 0;) {
                if (!backend_->unmap(rounded[j].iova, rounded[j].length).ok()) undone = false;
            }
            if (undone) {
                release_iova_locked(*iova, block);
            } else {
                error = error.with_context("rollback incomplete, IOVA " + to_hex(*iova) +
                                           " left reserved");
            }
            return error;
        }
    }
    backend_mappings_ += rounded.size();
    records_.emplace(*iova, Record{total, block, access, std::move(rounded)});
    return IommuMapping{*iova, total};
}

Result<std::uint64_t> IommuDomain::allocate_iova_locked(std::uint64_t block, std::uint64_t length,
                                                        const MapOptions& options) {
    const auto order = static_cast<unsigned>(std::countr_zero(block));
    if (order >= kCacheMinOrder && order <= kCacheMaxOrder) {
        auto& cached = iova_cache_[order - kCacheMinOrder];
        // Cached blocks are the allocator's own, so they already sit in
        // usable space and off every reserved window; only the mask is new.
        if (!cached.empty() && cached.back() + (block - 1) <= options.dma_mask) {
            const std::uint64_t iova = cached.back();
            cached.pop_back();
            cached_bytes_ -= block;
            return iova;
        }
    }
    auto iova = allocator_.allocate(length, options.dma_mask, options.align);
    if (!iova.ok() && iova.error().code() == ENOMEM && cached_bytes_ != 0) {
        flush_iova_cache_locked();  // cached blocks may be what is missing
        iova = allocator_.allocate(length, options.dma_mask, options.align);
    }
    return iova;
}

void IommuDomain::release_iova_locked(std::uint64_t iova, std::uint64_t block) {
    const auto order = static_cast<unsigned>(std::countr_zero(block));
    if (order >= kCacheMinOrder && order <= kCacheMaxOrder) {
        auto& cached = iova_cache_[order - kCacheMinOrder];
        if (cached.size() < kCacheDepth) {
            if (cached.capacity() == 0) cached.reserve(kCacheDepth);
            cached.push_back(iova);
            cached_bytes_ += block;
            return;
        }
    }
    (void)allocator_.free(iova);
}

void IommuDomain::flush_iova_cache_locked() {
    for (auto& cached : iova_cache_) {
        for (std::uint64_t iova : cached) (void)allocator_.free(iova);
        cached.clear();
    }
    cached_bytes_ = 0;
}

Status IommuDomain::unmap(std::uint64_t iova) {
    std::lock_guard lock(mutex_);
    auto it = records_.find(iova);
    if (it == records_.end()) {
        return Error(EINVAL, "IOVA " + to_hex(iova) + " is not the start of a mapping in this "
                                 "IOMMU domain (already unmapped, or never mapped)");
    }
    Record& record = it->second;
    // Segments are unmapped front to back; on failure the ones done are
    // dropped from the record so that a retry continues where this stopped.
    while (!record.segments.empty()) {
        const Segment& segment = record.segments.front();
        Status status = backend_mappings_gone_ ? Status{} : backend_->unmap(segment.iova, segment.length);
        if (!status.ok()) {
            return std::move(status).error().with_context("unmapping IOVA " + to_hex(iova));
        }
        record.segments.erase(record.segments.begin());
        --backend_mappings_;
    }
    const std::uint64_t block = record.block;
    records_.erase(it);
    release_iova_locked(iova, block);
    return {};
}

void IommuDomain::forget_backend_mappings() noexcept {
    std::lock_guard lock(mutex_);
    backend_mappings_gone_ = true;
}

Status IommuDomain::refresh() {
    std::lock_guard lock(mutex_);
    auto caps = backend_->query();
    if (!caps.ok()) return std::move(caps).error().with_context("re-reading IOMMU capabilities");
    flush_iova_cache_locked();  // a cached block may lie in space that is going away
    // Trim the new ranges and take the reserved ones out, the same way
    // create() does, before comparing: space that is reserved never counts
    // as usable again.
    auto trimmed = usable_space(caps->usable_ranges, granule_, config_.reserved);
    if (!trimmed.ok()) return std::move(trimmed).error();
    for (const IovaRange& gone : lost_space(allocator_.usable_ranges(), trimmed->usable_ranges())) {
        DMAKIT_TRY(allocator_.reserve(gone));
    }
    set_budget_locked(*caps);
    return {};
}

std::optional<std::uint64_t> IommuDomain::find_iova(const void* cpu) const {
    std::lock_guard lock(mutex_);
    const auto address = reinterpret_cast<std::uintptr_t>(cpu);
    for (const auto& entry : records_) {
        for (const Segment& s : entry.second.segments) {
            const auto base = reinterpret_cast<std::uintptr_t>(s.cpu);
            if (address >= base && address - base < s.length) return s.iova + (address - base);
        }
    }
    return std::nullopt;
}

std::vector<IovaRange> IommuDomain::usable_ranges() const {
    std::lock_guard lock(mutex_);
    return allocator_.usable_ranges();
}

std::uint64_t IommuDomain::mapping_budget() const {
    std::lock_guard lock(mutex_);
    return budget_;
}

std::uint64_t IommuDomain::mappings_in_use() const {
    std::lock_guard lock(mutex_);
    return backend_mappings_;
}

std::size_t IommuDomain::mapping_count() const {
    std::lock_guard lock(mutex_);
    return records_.size();
}

std::uint64_t IommuDomain::free_iova_bytes() const {
    std::lock_guard lock(mutex_);
    return allocator_.free_bytes() + cached_bytes_;
}

}  // namespace dmakit::iommu
