#include <dmakit/internal/mapping_table.hpp>

#include <mutex>

namespace dmakit::dma {
namespace {

constexpr std::size_t kInitialSlots = 64;

// Fibonacci hashing; the low bits of buffer addresses are mostly zero.
std::uint64_t mix(std::uint64_t addr) noexcept { return addr * 0x9e3779b97f4a7c15ULL; }

bool matches(const LiveMapping& m, std::uint64_t length, DmaDirection dir) noexcept {
    return m.length == length && m.dir == dir;
}

}  // namespace

LiveMappings::LiveMappings() {
    for (Shard& shard : shards_) shard.slots.resize(kInitialSlots);
}

std::size_t LiveMappings::shard_of(std::uint64_t addr) noexcept {
    return static_cast<std::size_t>(mix(addr) >> 60) & (kShards - 1);
}

std::size_t LiveMappings::home_of(std::uint64_t addr, std::size_t mask) noexcept {
    return static_cast<std::size_t>(mix(addr) >> 20) & mask;
}

void LiveMappings::grow_locked(Shard& shard) {
    // Rehash into a table twice the live count's need; tombstones go away.
    std::size_t size = shard.slots.size();
    while (shard.used * 4 >= size) size *= 2;
    std::vector<Slot> old(size);
    old.swap(shard.slots);
    const std::size_t mask = shard.slots.size() - 1;
    for (const Slot& slot : old) {
        if (slot.addr == 0 || slot.addr == kTombstone) continue;
        std::size_t i = home_of(slot.addr, mask);
        while (shard.slots[i].addr != 0) i = (i + 1) & mask;
        shard.slots[i] = slot;
    }
    shard.dead = 0;
}

void LiveMappings::insert(const LiveMapping& mapping) {
    const std::uint64_t addr = mapping.addr.value();
    Shard& shard = shards_[shard_of(addr)];
    std::lock_guard lock(shard.lock);
    // Keep at least half the slots empty so probes stay short.
    if ((shard.used + shard.dead + 1) * 2 > shard.slots.size()) grow_locked(shard);
    const std::size_t mask = shard.slots.size() - 1;
    std::size_t i = home_of(addr, mask);
    while (shard.slots[i].addr != 0 && shard.slots[i].addr != kTombstone) i = (i + 1) & mask;
    if (shard.slots[i].addr == kTombstone) --shard.dead;
    shard.slots[i] = Slot{addr, mapping};
    ++shard.used;
}

std::optional<LiveMapping> LiveMappings::remove(DmaAddr addr, std::uint64_t length,
                                                DmaDirection dir) {
    const std::uint64_t key = addr.value();
    if (key == 0 || key == kTombstone) return std::nullopt;
    Shard& shard = shards_[shard_of(key)];
    std::lock_guard lock(shard.lock);
    const std::size_t mask = shard.slots.size() - 1;
    for (std::size_t i = home_of(key, mask); shard.slots[i].addr != 0; i = (i + 1) & mask) {
        Slot& slot = shard.slots[i];
        if (slot.addr == key && matches(slot.mapping, length, dir)) {
            LiveMapping found = slot.mapping;
            // A slot followed by an empty one can be emptied outright.
            if (shard.slots[(i + 1) & mask].addr == 0) {
                slot.addr = 0;
            } else {
                slot.addr = kTombstone;
                ++shard.dead;
            }
            --shard.used;
            return found;
        }
    }
    return std::nullopt;
}

std::optional<LiveMapping> LiveMappings::find_start(DmaAddr addr, DmaDirection dir,
                                                    std::uint64_t extent) const {
    const std::uint64_t key = addr.value();
    if (key == 0 || key == kTombstone) return std::nullopt;
    const Shard& shard = shards_[shard_of(key)];
    std::lock_guard lock(shard.lock);
    const std::size_t mask = shard.slots.size() - 1;
    std::optional<LiveMapping> best;
    int best_rank = -1;
    for (std::size_t i = home_of(key, mask); shard.slots[i].addr != 0; i = (i + 1) & mask) {
        const Slot& slot = shard.slots[i];
        if (slot.addr != key) continue;
        const int rank = (slot.mapping.length >= extent ? 2 : 0) + (slot.mapping.dir == dir ? 1 : 0);
        if (rank > best_rank) {
            best = slot.mapping;
            best_rank = rank;
            if (rank == 3) break;
        }
    }
    return best;
}

std::optional<LiveMapping> LiveMappings::find_containing(DmaAddr addr, std::uint64_t length) const {
    for (const Shard& shard : shards_) {
        std::lock_guard lock(shard.lock);
        for (const Slot& slot : shard.slots) {
            if (slot.addr == 0 || slot.addr == kTombstone) continue;
            const LiveMapping& m = slot.mapping;
            if (addr.value() >= m.addr.value() && addr.value() - m.addr.value() < m.length &&
                length <= m.length - (addr.value() - m.addr.value())) {
                return m;
            }
        }
    }
    return std::nullopt;
}

std::vector<LiveMapping> LiveMappings::snapshot() const {
    std::vector<LiveMapping> all;
    for (const Shard& shard : shards_) {
        std::lock_guard lock(shard.lock);
        for (const Slot& slot : shard.slots) {
            if (slot.addr != 0 && slot.addr != kTombstone) all.push_back(slot.mapping);
        }
    }
    return all;
}

std::size_t LiveMappings::size() const {
    std::size_t total = 0;
    for (const Shard& shard : shards_) {
        std::lock_guard lock(shard.lock);
        total += shard.used;
    }
    return total;
}

}  // namespace dmakit::dma
