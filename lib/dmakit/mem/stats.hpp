// Allocator statistics: the /proc/buddyinfo and /proc/slabinfo of dmakit.
#pragma once

#include <dmakit/mem/page.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace dmakit::mem {

struct BuddyStats {
    std::size_t managed_bytes = 0;        // all regions
    std::size_t free_bytes = 0;           // on the buddy free lists
    std::size_t thread_cached_bytes = 0;  // order-0 pages parked in per-thread caches
    std::size_t allocated_bytes = 0;      // handed out (to callers and slabs)
    std::size_t regions = 0;
    std::size_t regions_added = 0;        // since creation
    std::size_t regions_released = 0;     // by shrink()
    std::size_t invalid_frees = 0;        // rejected frees (bad pointer, double free)
    std::size_t metadata_bytes = 0;       // descriptors, lookup table, caches, regions
};

// One line of buddyinfo: free blocks per order in one region. Pages in
// per-thread caches count as allocated, as per-cpu pages do in the kernel's.
struct RegionBuddyInfo {
    std::uint16_t slot = 0;
    const std::byte* cpu_base = nullptr;
    std::size_t length = 0;
    std::size_t page_size = 0;
    int numa_node = -1;  // as the allocator counts it (node 0 on a one-node machine)
    bool dma32 = false;  // the whole region lies below 4 GiB device address
    std::array<std::size_t, kOrderCount> free_blocks{};
};

// One line of slabinfo. Objects in per-thread caches count as active, as
// objects on per-cpu slabs do under SLUB.
struct SlabInfo {
    std::string name;
    std::size_t object_size = 0;   // as requested
    std::size_t stride = 0;        // bytes per object in a slab (alignment, red zones)
    std::size_t active_objects = 0;
    std::size_t total_objects = 0;
    std::size_t slabs = 0;
    std::size_t pages_per_slab = 0;
    std::size_t pages = 0;
    std::size_t metadata_bytes = 0;  // slab descriptors, bitmaps, thread caches
    bool debug = false;
};

}  // namespace dmakit::mem
