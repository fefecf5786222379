#include <dmakit/internal/page_map.hpp>

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

namespace dmakit::mem {
namespace {

constexpr std::size_t kArenaAlignment = kHugePage1G;

std::size_t round_up(std::size_t value, std::size_t to) { return (value + to - 1) / to * to; }

Result<MemoryMapping> map_metadata(std::size_t bytes, const char* what) {
    return MemoryMapping::map(nullptr, round_up(bytes, kPageSize), PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, what);
}

std::size_t resident_bytes(const MemoryMapping& mapping) noexcept {
    const std::size_t pages = mapping.size() / kPageSize;
    std::vector<unsigned char> vec(pages);
    if (::mincore(mapping.data(), mapping.size(), vec.data()) != 0) return mapping.size();
    std::size_t resident = 0;
    for (unsigned char v : vec) resident += (v & 1u);
    return resident * kPageSize;
}

}  // namespace

Result<PageMap> PageMap::reserve(std::size_t bytes) {
    if (bytes == 0 || bytes % kArenaAlignment != 0) {
        return Error(EINVAL, "allocator address space of " + std::to_string(bytes) +
                                 " bytes must be a non-zero multiple of 1 GiB");
    }
    if ((bytes >> kRegionGranuleShift) > UINT16_MAX) {
        return Error(EINVAL, "allocator address space of " + std::to_string(bytes >> 30) +
                                 " GiB is too large; at most 128 GiB per allocator");
    }
    // Over-reserve, then trim to a 1 GiB-aligned window.
    const std::size_t padded = bytes + kArenaAlignment;
    void* raw = ::mmap(nullptr, padded, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
    if (raw == MAP_FAILED) {
        return system_error(errno, "reserving " + std::to_string(bytes >> 30) +
                                       " GiB of address space for the allocator",
                            "lower BuddyOptions::address_space or raise ulimit -v");
    }
    auto start = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t aligned = round_up(start, kArenaAlignment);
    if (aligned > start) ::munmap(raw, aligned - start);
    const std::uintptr_t tail = aligned + bytes;
    const std::uintptr_t end = start + padded;
    if (end > tail) ::munmap(reinterpret_cast<void*>(tail), end - tail);

    PageMap map;
    map.arena_ = MemoryMapping(reinterpret_cast<void*>(aligned), bytes);
    map.base_ = map.arena_.bytes();
    map.size_ = bytes;
    DMAKIT_ASSIGN_OR_RETURN(map.desc_mapping_,
                            map_metadata((bytes >> kPageShift) * sizeof(PageDesc), "page descriptors"));
    DMAKIT_ASSIGN_OR_RETURN(map.granule_mapping_,
                            map_metadata((bytes >> kRegionGranuleShift) * sizeof(Region*),
                                         "region lookup table"));
    map.descs_ = static_cast<PageDesc*>(map.desc_mapping_.data());
    map.granules_ = static_cast<Region**>(map.granule_mapping_.data());
    map.granule_used_.assign(bytes >> kRegionGranuleShift, false);
    return map;
}

Result<std::byte*> PageMap::place(std::size_t length, std::size_t alignment) {
    const std::size_t need = length >> kRegionGranuleShift;
    const std::size_t step = std::max<std::size_t>(alignment >> kRegionGranuleShift, 1);
    for (std::size_t first = 0; first + need <= granule_used_.size(); first += step) {
        std::size_t run = 0;
        while (run < need && !granule_used_[first + run]) ++run;
        if (run == need) {
            for (std::size_t i = 0; i < need; ++i) granule_used_[first + i] = true;
            return base_ + (first << kRegionGranuleShift);
        }
    }
    return Error(ENOMEM, "the allocator's " + std::to_string(size_ >> 30) +
                             " GiB address space has no room for another " +
                             std::to_string(length >> 20) +
                             " MiB region; raise BuddyOptions::address_space or call shrink()");
}

void PageMap::unplace(std::byte* address, std::size_t length) noexcept {
    const std::size_t first = offset_of(address) >> kRegionGranuleShift;
    for (std::size_t i = 0; i < (length >> kRegionGranuleShift); ++i) granule_used_[first + i] = false;
}

void PageMap::publish(Region& region) noexcept {
    const std::size_t first = offset_of(region.cpu_base()) >> kRegionGranuleShift;
    for (std::size_t i = 0; i < (region.length() >> kRegionGranuleShift); ++i) {
        std::atomic_ref<Region*>(granules_[first + i]).store(&region, std::memory_order_release);
    }
}

void PageMap::unpublish(const Region& region) noexcept {
    const std::size_t first = offset_of(region.cpu_base()) >> kRegionGranuleShift;
    for (std::size_t i = 0; i < (region.length() >> kRegionGranuleShift); ++i) {
        std::atomic_ref<Region*>(granules_[first + i]).store(nullptr, std::memory_order_release);
    }
}

void PageMap::init_descs(std::byte* address, std::size_t length, std::uint16_t slot) noexcept {
    PageDesc* first = &desc_of(address);
    const std::size_t count = length >> kPageShift;
    for (std::size_t i = 0; i < count; ++i) {
        first[i] = PageDesc{kNoPage, kNoPage, 0, PageState::tail, slot, 0, nullptr};
    }
}

void PageMap::clear_descs(std::byte* address, std::size_t length) noexcept {
    auto* first = reinterpret_cast<std::byte*>(&desc_of(address));
    const std::size_t bytes = (length >> kPageShift) * sizeof(PageDesc);
    std::memset(first, 0, bytes);
    // Return whole descriptor pages; MADV_DONTNEED refills them with zeroes
    // (PageState::unmanaged) if they are touched again.
    const auto lo = round_up(reinterpret_cast<std::uintptr_t>(first), kPageSize);
    const auto hi = (reinterpret_cast<std::uintptr_t>(first) + bytes) / kPageSize * kPageSize;
    if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

std::size_t PageMap::resident_metadata_bytes() const noexcept {
    return resident_bytes(desc_mapping_) + resident_bytes(granule_mapping_);
}

}  // namespace dmakit::mem
