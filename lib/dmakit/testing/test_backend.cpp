#include <dmakit/testing/test_backend.hpp>

#include <dmakit/iommu/iova_allocator.hpp>

#include <bit>
#include <cerrno>
#include <string>

namespace dmakit::iommu {

Result<IommuCapabilities> TestIommuBackend::query() {
    if (query_error_) return *query_error_;
    IommuCapabilities caps;
    caps.usable_ranges = config_.usable_ranges;
    caps.page_sizes = config_.page_sizes;
    if (config_.budget) {
        caps.mappings_available = *config_.budget > live_.size() ? *config_.budget - live_.size() : 0;
    }
    return caps;
}

Status TestIommuBackend::check_map(std::uint64_t iova, const void* cpu,
                                   std::uint64_t length) const {
    const std::uint64_t granule = config_.page_sizes & (~config_.page_sizes + 1);
    const auto address = reinterpret_cast<std::uintptr_t>(cpu);
    if (length == 0) return Error(EINVAL, "test IOMMU: map of 0 bytes");
    if (granule == 0 || iova % granule != 0 || length % granule != 0 || address % granule != 0) {
        return Error(EINVAL, "test IOMMU: map of " + to_hex(length) + " bytes at IOVA " +
                                 to_hex(iova) + " from " + to_hex(address) +
                                 " is not aligned to the IOMMU page size");
    }
    if (iova > ~std::uint64_t{0} - (length - 1)) {
        return Error(EINVAL, "test IOMMU: IOVA range wraps around");
    }
    const std::uint64_t last = iova + (length - 1);
    bool inside = false;
    for (const IovaRange& r : config_.usable_ranges) {
        if (iova >= r.start && last <= r.last) inside = true;
    }
    if (!inside) {
        return Error(EINVAL, "test IOMMU: IOVA " + to_hex(iova) + "-" + to_hex(last) +
                                 " is outside the usable ranges");
    }
    auto next = live_.upper_bound(last);
    if (next != live_.begin()) {
        auto previous = std::prev(next);
        if (previous->first + (previous->second.length - 1) >= iova) {
            return Error(EEXIST, "test IOMMU: IOVA " + to_hex(iova) + "-" + to_hex(last) +
                                     " overlaps the live mapping at " + to_hex(previous->first));
        }
    }
    if (config_.budget && live_.size() >= *config_.budget) {
        return Error(ENOSPC, "test IOMMU: mapping budget of " + std::to_string(*config_.budget) +
                                 " is used up");
    }
    return {};
}

Status TestIommuBackend::map(std::uint64_t iova, const void* cpu, std::uint64_t length,
                             Access access) {
    Status status;
    if (maps_until_failure_ && *maps_until_failure_ == 0) {
        maps_until_failure_.reset();
        status = *map_error_;
        map_error_.reset();
    } else {
        if (maps_until_failure_) --*maps_until_failure_;
        status = check_map(iova, cpu, length);
    }
    if (config_.record_operations) {
        ops_.push_back({Operation::Kind::map, iova, length, cpu, access, status.ok()});
    }
    if (status.ok()) live_.emplace(iova, LiveMapping{length, cpu, access});
    return status;
}

Status TestIommuBackend::unmap(std::uint64_t iova, std::uint64_t length) {
    Status status;
    auto it = live_.find(iova);
    if (unmap_error_) {
        status = *unmap_error_;
        unmap_error_.reset();
    } else if (it == live_.end() || it->second.length != length) {
        status = Error(EINVAL, "test IOMMU: unmap of " + to_hex(length) + " bytes at IOVA " +
                                   to_hex(iova) + " matches no earlier map");
    }
    if (config_.record_operations) {
        ops_.push_back({Operation::Kind::unmap, iova, length, nullptr, Access::read_write, status.ok()});
    }
    if (status.ok()) live_.erase(it);
    return status;
}

BudgetDescription TestIommuBackend::budget_description() const {
    return {"TestIommuBackend budget", "raise TestBackendConfig::budget"};
}

std::optional<void*> TestIommuBackend::translate(std::uint64_t iova, std::uint64_t length,
                                                 Access access) const {
    if (length == 0) return std::nullopt;
    auto it = live_.upper_bound(iova);
    if (it == live_.begin()) return std::nullopt;
    --it;
    const std::uint64_t offset = iova - it->first;
    if (offset >= it->second.length || it->second.length - offset < length) return std::nullopt;
    if ((allows_read(access) && !allows_read(it->second.access)) ||
        (allows_write(access) && !allows_write(it->second.access))) {
        return std::nullopt;
    }
    // const_cast: the device may write wherever it was given write access.
    return const_cast<std::byte*>(static_cast<const std::byte*>(it->second.cpu)) + offset;
}

void TestIommuBackend::fail_map_after(std::size_t n, Error error) {
    maps_until_failure_ = n;
    map_error_ = std::move(error);
}

void TestIommuBackend::fail_next_unmap(Error error) { unmap_error_ = std::move(error); }

}  // namespace dmakit::iommu
