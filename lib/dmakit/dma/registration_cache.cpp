#include <dmakit/dma/registration_cache.hpp>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

namespace dmakit::dma {
namespace {

constexpr std::uintptr_t kChunk = RegistrationCache::kGranularity;
constexpr std::uintptr_t kSmallPage = 4096;

std::uintptr_t align_down(std::uintptr_t v, std::uintptr_t a) { return v & ~(a - 1); }
std::uintptr_t align_up(std::uintptr_t v, std::uintptr_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace

RegistrationCache::~RegistrationCache() {
    std::lock_guard lock(mutex_);
    for (auto& [iova, extent] : by_iova_) {
        (void)domain_.unmap(iova);  // the container's close drops them anyway
    }
}

RegistrationCache::Extent* RegistrationCache::find_locked(std::uintptr_t start,
                                                          std::uintptr_t end) const {
    auto it = by_chunk_.find(start / kChunk);
    if (it == by_chunk_.end()) return nullptr;
    for (Extent* extent : it->second) {
        if (start >= extent->cpu_start && end <= extent->cpu_start + extent->length) return extent;
    }
    return nullptr;
}

Result<RegistrationCache::Extent*> RegistrationCache::map_extent_locked(std::uintptr_t start,
                                                                        std::uintptr_t end,
                                                                        std::uint64_t dma_mask) {
    // Prefer the 2 MiB-rounded span; memory next to a small buffer may not be
    // mapped at all (EFAULT from the pin), so fall back to 4 KiB rounding.
    std::uintptr_t spans[2][2] = {{align_down(start, kChunk), align_up(end, kChunk)},
                                  {align_down(start, kSmallPage), align_up(end, kSmallPage)}};
    Result<iommu::IommuMapping> mapped = Error(EINVAL, "unset");
    std::uintptr_t span_start = 0;
    std::uintptr_t span_end = 0;
    for (auto& span : spans) {
        span_start = span[0];
        span_end = span[1];
        iommu::MapOptions options;
        options.dma_mask = dma_mask;
        mapped = domain_.map(reinterpret_cast<const void*>(span_start), span_end - span_start,
                             iommu::Access::read_write, options);
        if (mapped.ok() || (mapped.error().code() != EFAULT && mapped.error().code() != ENOMEM &&
                            mapped.error().code() != EINVAL)) {
            break;
        }
    }
    if (!mapped.ok()) {
        return std::move(mapped).error().with_context(
            "registering foreign memory for DMA (" + std::to_string(end - start) + " bytes)");
    }
    auto [it, inserted] =
        by_iova_.emplace(mapped->iova, Extent{span_start, span_end - span_start, mapped->iova, 0});
    Extent* extent = &it->second;
    for (std::uintptr_t chunk = span_start / kChunk; chunk <= (span_end - 1) / kChunk; ++chunk) {
        by_chunk_[chunk].push_back(extent);
    }
    ++misses_;
    mapped_bytes_ += extent->length;
    return extent;
}

void RegistrationCache::drop_extent_locked(std::map<std::uint64_t, Extent>::iterator it) {
    Extent* extent = &it->second;
    for (std::uintptr_t chunk = extent->cpu_start / kChunk;
         chunk <= (extent->cpu_start + extent->length - 1) / kChunk; ++chunk) {
        auto& list = by_chunk_[chunk];
        list.erase(std::remove(list.begin(), list.end(), extent), list.end());
        if (list.empty()) by_chunk_.erase(chunk);
    }
    mapped_bytes_ -= extent->length;
    (void)domain_.unmap(it->first);  // a failure here leaves the IOVA reserved, never reused
    by_iova_.erase(it);
}

Result<DmaAddr> RegistrationCache::acquire(const void* cpu, std::size_t length,
                                           std::uint64_t dma_mask) {
    const auto start = reinterpret_cast<std::uintptr_t>(cpu);
    if (length == 0) return Error(EINVAL, "cannot map 0 bytes for DMA");
    if (start + length < start) return Error(EOVERFLOW, "buffer wraps around the address space");
    const std::uintptr_t end = start + length;

    std::lock_guard lock(mutex_);
    Extent* extent = find_locked(start, end);
    if (extent != nullptr && extent->iova + (extent->length - 1) > dma_mask) {
        extent = nullptr;  // mapped, but above this device's mask: map it again lower
    }
    if (extent == nullptr) {
        DMAKIT_ASSIGN_OR_RETURN(extent, map_extent_locked(start, end, dma_mask));
    } else {
        ++hits_;
    }
    ++extent->references;
    return DmaAddr(extent->iova + (start - extent->cpu_start));
}

Status RegistrationCache::release(DmaAddr addr) {
    std::lock_guard lock(mutex_);
    auto it = by_iova_.upper_bound(addr.value());
    if (it == by_iova_.begin()) {
        return Error(EINVAL, "no foreign-memory registration holds DMA address " +
                                 iommu::to_hex(addr.value()));
    }
    --it;
    if (addr.value() - it->first >= it->second.length) {
        return Error(EINVAL, "no foreign-memory registration holds DMA address " +
                                 iommu::to_hex(addr.value()));
    }
    if (--it->second.references == 0) drop_extent_locked(it);
    return {};
}

Result<MemoryRegistration> RegistrationCache::register_memory(const void* cpu, std::size_t length,
                                                             std::uint64_t dma_mask) {
    DMAKIT_ASSIGN_OR_RETURN(DmaAddr addr, acquire(cpu, length, dma_mask));
    return MemoryRegistration(this, addr);
}

MemoryRegistration& MemoryRegistration::operator=(MemoryRegistration&& other) noexcept {
    if (this != &other) {
        reset();
        cache_ = std::exchange(other.cache_, nullptr);
        dma_ = other.dma_;
    }
    return *this;
}

void MemoryRegistration::reset() noexcept {
    if (cache_ != nullptr) (void)cache_->release(dma_);
    cache_ = nullptr;
}

std::optional<DmaAddr> RegistrationCache::lookup(const void* cpu, std::size_t length) const {
    const auto start = reinterpret_cast<std::uintptr_t>(cpu);
    std::lock_guard lock(mutex_);
    const Extent* extent = find_locked(start, start + length);
    if (extent == nullptr) return std::nullopt;
    return DmaAddr(extent->iova + (start - extent->cpu_start));
}

RegistrationCache::Stats RegistrationCache::stats() const {
    std::lock_guard lock(mutex_);
    return Stats{hits_, misses_, by_iova_.size(), mapped_bytes_};
}

}  // namespace dmakit::dma
