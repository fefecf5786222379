#include <dmakit/dma/registration_cache.hpp>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

namespace dmakit::dma {
namespace {

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

RegistrationCache::Extent* RegistrationCache::find_registered_locked(std::uintptr_t start,
                                                                     std::uintptr_t end) const {
    auto it = by_chunk_.find(start / kChunk);
    if (it == by_chunk_.end()) return nullptr;
    for (Extent* extent : it->second) {
        if (start >= extent->cpu_start && end <= extent->cpu_start + extent->length) return extent;
    }
    return nullptr;
}

Result<MemoryRegistration> RegistrationCache::register_memory(const void* cpu, std::size_t length,
                                                             std::uint64_t dma_mask) {
    const auto start = reinterpret_cast<std::uintptr_t>(cpu);
    if (cpu == nullptr || length == 0) {
        return Error(EINVAL, "register_memory needs a non-null address and a non-zero length");
    }
    if (start + length < start || align_up(start + length, kSmallPage) < start + length) {
        return Error(EOVERFLOW, "register_memory: the range wraps around the address space");
    }
    const std::uintptr_t span_start = align_down(start, kSmallPage);
    const std::uintptr_t span_end = align_up(start + length, kSmallPage);

    std::lock_guard lock(mutex_);
    for (std::uintptr_t chunk = span_start / kChunk; chunk <= (span_end - 1) / kChunk; ++chunk) {
        auto it = by_chunk_.find(chunk);
        if (it == by_chunk_.end()) continue;
        for (const Extent* other : it->second) {
            if (span_start < other->cpu_start + other->length && other->cpu_start < span_end) {
                return Error(EEXIST, "register_memory of " + iommu::to_hex(start) + " (" +
                                         std::to_string(length) +
                                         " bytes) overlaps a live registration at " +
                                         iommu::to_hex(other->cpu_start) +
                                         "; end that one first or register disjoint ranges");
            }
        }
    }
    iommu::MapOptions options;
    options.dma_mask = dma_mask;
    auto mapped = domain_.map(reinterpret_cast<const void*>(span_start), span_end - span_start,
                              iommu::Access::read_write, options);
    if (!mapped.ok()) {
        return std::move(mapped).error().with_context("registering " + std::to_string(length) +
                                                      " bytes of memory for DMA");
    }
    auto [it, inserted] = by_iova_.emplace(
        mapped->iova, Extent{span_start, span_end - span_start, mapped->iova, 0, true});
    Extent* extent = &it->second;
    for (std::uintptr_t chunk = span_start / kChunk; chunk <= (span_end - 1) / kChunk; ++chunk) {
        by_chunk_[chunk].push_back(extent);
    }
    mapped_bytes_ += extent->length;
    return MemoryRegistration(this, mapped->iova, DmaAddr(mapped->iova + (start - span_start)));
}

std::optional<RegistrationCache::Hit> RegistrationCache::acquire(const void* cpu,
                                                                 std::size_t length,
                                                                 std::uint64_t dma_mask) {
    const auto start = reinterpret_cast<std::uintptr_t>(cpu);
    if (length == 0 || start + length < start) return std::nullopt;
    std::lock_guard lock(mutex_);
    if (by_chunk_.empty()) return std::nullopt;
    Extent* extent = find_registered_locked(start, start + length);
    if (extent == nullptr) return std::nullopt;
    const std::uint64_t addr = extent->iova + (start - extent->cpu_start);
    if (addr + (length - 1) > dma_mask) return std::nullopt;  // registered above this device's reach
    ++extent->references;
    ++hits_;
    return Hit{DmaAddr(addr), extent->iova};
}

void RegistrationCache::drop_if_unused_locked(std::map<std::uint64_t, Extent>::iterator it) {
    Extent& extent = it->second;
    if (extent.registered || extent.references != 0) return;
    mapped_bytes_ -= extent.length;
    // A failed unmap leaves the IOVA allocated in the domain, so it is never reused.
    (void)domain_.unmap(it->first);
    by_iova_.erase(it);
}

Status RegistrationCache::release(std::uint64_t extent) {
    std::lock_guard lock(mutex_);
    auto it = by_iova_.find(extent);
    if (it == by_iova_.end() || it->second.references == 0) {
        return Error(EINVAL, "no registration at DMA address " + iommu::to_hex(extent) +
                                 " holds a streaming mapping");
    }
    --it->second.references;
    drop_if_unused_locked(it);
    return {};
}

void RegistrationCache::unregister(std::uint64_t extent) noexcept {
    std::lock_guard lock(mutex_);
    auto it = by_iova_.find(extent);
    if (it == by_iova_.end() || !it->second.registered) return;
    Extent* e = &it->second;
    // From now on no map can hit it (it leaves the index), even while
    // streaming mappings inside it keep its pages mapped.
    for (std::uintptr_t chunk = e->cpu_start / kChunk;
         chunk <= (e->cpu_start + e->length - 1) / kChunk; ++chunk) {
        auto found = by_chunk_.find(chunk);
        if (found == by_chunk_.end()) continue;
        auto& list = found->second;
        list.erase(std::remove(list.begin(), list.end(), e), list.end());
        if (list.empty()) by_chunk_.erase(found);
    }
    e->registered = false;
    drop_if_unused_locked(it);
}

MemoryRegistration& MemoryRegistration::operator=(MemoryRegistration&& other) noexcept {
    if (this != &other) {
        reset();
        cache_ = std::exchange(other.cache_, nullptr);
        extent_ = other.extent_;
        dma_ = other.dma_;
    }
    return *this;
}

void MemoryRegistration::reset() noexcept {
    if (cache_ != nullptr) cache_->unregister(extent_);
    cache_ = nullptr;
}

std::optional<DmaAddr> RegistrationCache::lookup(const void* cpu, std::size_t length) const {
    const auto start = reinterpret_cast<std::uintptr_t>(cpu);
    std::lock_guard lock(mutex_);
    const Extent* extent = find_registered_locked(start, start + length);
    if (extent == nullptr) return std::nullopt;
    return DmaAddr(extent->iova + (start - extent->cpu_start));
}

RegistrationCache::Stats RegistrationCache::stats() const {
    std::lock_guard lock(mutex_);
    std::uint64_t registered = 0;
    for (const auto& [iova, extent] : by_iova_) registered += extent.registered ? 1 : 0;
    return Stats{hits_, registered, by_iova_.size(), mapped_bytes_};
}

}  // namespace dmakit::dma
