// LiveMappings: every live streaming mapping of one DmaDevice, known by
// (device address, length, direction), as the kernel's dma-debug knows them
// but kept in every build.
//
// Why in every build: an unmap that names no live mapping must be refused
// before it touches anything. Without this table a double unmap, or an unmap
// with the wrong length, released whichever mapping happened to hold the
// address, and its IOVA was handed to the next map while the old DMA could
// still land (issue 9). The table decides; DmaDebug only explains.
//
// Shape: the device address hashes to one of kShards shards, each an
// open-addressing table behind its own spin lock, so insert/remove/find are
// O(1) expected and threads mapping different buffers rarely meet. The same
// buffer may be mapped more than once (pool memory then has one device
// address for both); each map is its own entry and each unmap removes one.
// Device address 0 is never handed out (IommuDomain keeps IOVA page 0 free),
// so 0 marks an empty slot.
#pragma once

#include <dmakit/dma/debug.hpp>
#include <dmakit/dma/types.hpp>
#include <dmakit/internal/spin_lock.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace dmakit::dma {

// What keeps a streaming mapping reachable by the device, i.e. what its unmap
// must give back.
enum class MappingBacking : std::uint8_t {
    pool,        // pool region mapped once (IommuPolicy::pool): nothing per map
    registered,  // inside an explicit registration: one reference on its extent
    exact,       // its own IOMMU mapping of the covering 4 KiB pages
};

struct LiveMapping {
    DmaAddr addr;
    std::uint64_t length = 0;
    // exact: first IOVA of the IOMMU mapping; registered: the extent's first
    // IOVA; pool: unused.
    std::uint64_t handle = 0;
    DmaDirection dir = DmaDirection::bidirectional;
    MappingKind kind = MappingKind::single;
    MappingBacking backing = MappingBacking::pool;
};

class LiveMappings {
public:
    LiveMappings();
    LiveMappings(const LiveMappings&) = delete;
    LiveMappings& operator=(const LiveMappings&) = delete;

    void insert(const LiveMapping& mapping);

    // Removes and returns one live mapping that starts at `addr` with exactly
    // `length` and `dir`; nullopt (nothing changed) when none does.
    [[nodiscard]] std::optional<LiveMapping> remove(DmaAddr addr, std::uint64_t length,
                                                    DmaDirection dir);

    // A live mapping that starts at `addr`, best first: one with direction
    // `dir` holding at least `extent` bytes, then one holding `extent`, then
    // one with `dir`, then any. The same buffer may be mapped twice with
    // different lengths (pool memory: one device address for both), and a
    // sync of the longer one must find the longer one.
    [[nodiscard]] std::optional<LiveMapping> find_start(DmaAddr addr, DmaDirection dir,
                                                        std::uint64_t extent = 0) const;

    // A live mapping that contains [addr, addr + length). O(n): for syncs
    // of an inner address only (sync_single_range_* stays O(1)).
    [[nodiscard]] std::optional<LiveMapping> find_containing(DmaAddr addr,
                                                             std::uint64_t length) const;

    // Every live mapping (for leak reports and tests).
    [[nodiscard]] std::vector<LiveMapping> snapshot() const;
    [[nodiscard]] std::size_t size() const;

private:
    static constexpr std::size_t kShards = 16;
    struct Slot {
        std::uint64_t addr = 0;  // 0: empty; kTombstone: removed
        LiveMapping mapping;
    };
    static constexpr std::uint64_t kTombstone = ~std::uint64_t{0};

    struct alignas(64) Shard {
        mutable mem::SpinLock lock;
        std::vector<Slot> slots;  // power-of-two size
        std::size_t used = 0;     // live entries
        std::size_t dead = 0;     // tombstones
    };

    [[nodiscard]] static std::size_t shard_of(std::uint64_t addr) noexcept;
    [[nodiscard]] static std::size_t home_of(std::uint64_t addr, std::size_t mask) noexcept;
    static void grow_locked(Shard& shard);

    // Inline: DmaDevice holds the table behind a pointer of its own.
    std::array<Shard, kShards> shards_;
};

}  // namespace dmakit::dma
