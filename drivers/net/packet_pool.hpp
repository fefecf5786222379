// PacketPool: fixed-size packet buffers, pre-mapped for DMA, handed out and
// taken back in bursts.
//
// The pool's logic is written against PoolBacking, which supplies N buffers of
// S bytes with their CPU and device addresses. The glue backs it with slab
// memory mapped through the DMA layer; tests back it with plain heap memory.
// Bookkeeping (the PacketBuffer array, the free stack, per-buffer state) is
// ordinary heap memory the device cannot reach.
//
// Threads: PacketPool's own alloc_burst/free_burst are thread-safe (one lock
// per burst). A PacketPoolCache is one thread's private stash in front of the
// shared stack, as rte_mempool's per-lcore cache is: create one per polling
// thread with make_cache() and use it from that thread only.
#pragma once

#include <dmakit/support/log.hpp>
#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/packet_buffer.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace dmakit::net {

// Where the pool's buffers come from. Buffer i occupies
// [cpu_address(i), cpu_address(i) + buffer_size()) and the device reaches it
// at dma_address(i). The backing must outlive nothing but the pool that owns it.
class PoolBacking {
public:
    virtual ~PoolBacking() = default;
    [[nodiscard]] virtual std::size_t buffer_count() const noexcept = 0;
    [[nodiscard]] virtual std::size_t buffer_size() const noexcept = 0;
    [[nodiscard]] virtual std::byte* cpu_address(std::size_t index) const noexcept = 0;
    [[nodiscard]] virtual DeviceAddress dma_address(std::size_t index) const noexcept = 0;
};

struct PacketPoolConfig {
    std::uint32_t headroom = 128;     // bytes left in front of the packet data
    std::uint32_t cache_size = 256;   // buffers one PacketPoolCache holds at most
    const Logger* logger = nullptr;   // where a leak at destruction is reported
};

struct PacketPoolStats {
    std::size_t capacity = 0;
    std::size_t in_use = 0;             // buffers handed out and not yet returned
    std::uint64_t alloc_failures = 0;   // alloc requests that got fewer than asked
    std::uint64_t invalid_frees = 0;    // double frees and foreign/null buffers refused
};

class PacketPoolCache;

class PacketPool {
public:
    // Buffers must be larger than the headroom; at most 2^32-1 of them.
    [[nodiscard]] static Result<std::unique_ptr<PacketPool>> create(
        std::unique_ptr<PoolBacking> backing, PacketPoolConfig config = {});

    PacketPool(const PacketPool&) = delete;
    PacketPool& operator=(const PacketPool&) = delete;
    ~PacketPool();

    // Fills out[0..n) with fresh buffers (length 0, default headroom) and
    // returns n, which is less than out.size() only when the pool runs dry.
    [[nodiscard]] std::size_t alloc_burst(std::span<PacketBuffer*> out);
    // Returns every valid buffer. A null, foreign or already-free buffer is
    // skipped, counted in stats().invalid_frees and reported as EINVAL.
    [[nodiscard]] Status free_burst(std::span<PacketBuffer* const> buffers);

    // One thread's cache; see the file comment.
    [[nodiscard]] PacketPoolCache make_cache();

    // Leak check: buffers out (with users, in rings, in flight), not counting
    // free buffers parked in caches.
    [[nodiscard]] std::size_t in_use() const noexcept { return in_use_.load(std::memory_order_relaxed); }
    [[nodiscard]] std::size_t capacity() const noexcept { return buffers_.size(); }
    [[nodiscard]] std::uint32_t buffer_size() const noexcept { return buffer_size_; }
    [[nodiscard]] std::uint32_t headroom() const noexcept { return config_.headroom; }
    // Most packet bytes one buffer holds: buffer_size() - headroom().
    [[nodiscard]] std::uint32_t data_room() const noexcept { return buffer_size_ - config_.headroom; }
    [[nodiscard]] PacketPoolStats stats() const noexcept;

private:
    friend class PacketPoolCache;
    enum : std::uint8_t { kFree = 0, kOut = 1 };

    PacketPool(std::unique_ptr<PoolBacking> backing, PacketPoolConfig config);

    // Moves up to `count` free indices from the shared stack into `out`.
    std::size_t take_shared(std::uint32_t* out, std::size_t count);
    void give_shared(const std::uint32_t* indices, std::size_t count);
    // Marks a free buffer out and resets its per-use fields.
    PacketBuffer* hand_out(std::uint32_t index) noexcept;
    // Validates and marks `buffer` free; false (and counted) when it is not ours
    // or not out.
    bool take_back(const PacketBuffer* buffer) noexcept;

    std::unique_ptr<PoolBacking> backing_;
    PacketPoolConfig config_;
    std::uint32_t buffer_size_;
    std::vector<PacketBuffer> buffers_;                // out-of-band metadata
    std::unique_ptr<std::atomic<std::uint8_t>[]> state_;
    std::mutex mutex_;
    // The shared stack of free indices, under mutex_: free_[0..free_count_),
    // top last. Sized for every buffer once, so pushing never reallocates.
    std::vector<std::uint32_t> free_;
    std::size_t free_count_ = 0;
    std::atomic<std::size_t> in_use_{0};
    std::atomic<std::uint64_t> alloc_failures_{0};
    std::atomic<std::uint64_t> invalid_frees_{0};
};

// One thread's private stash of free buffers. Not thread-safe; move-only.
// Returns its buffers to the pool when destroyed (the pool must outlive it).
class PacketPoolCache {
public:
    PacketPoolCache(PacketPoolCache&& other) noexcept;
    PacketPoolCache& operator=(PacketPoolCache&& other) noexcept;
    PacketPoolCache(const PacketPoolCache&) = delete;
    PacketPoolCache& operator=(const PacketPoolCache&) = delete;
    ~PacketPoolCache();

    // Same contracts as PacketPool::alloc_burst / free_burst.
    [[nodiscard]] std::size_t alloc_burst(std::span<PacketBuffer*> out);
    [[nodiscard]] Status free_burst(std::span<PacketBuffer* const> buffers);

    // Free buffers parked here right now.
    [[nodiscard]] std::size_t cached() const noexcept { return count_; }
    void flush();

private:
    friend class PacketPool;
    explicit PacketPoolCache(PacketPool& pool);

    PacketPool* pool_;
    std::vector<std::uint32_t> slots_;
    std::size_t count_ = 0;
};

// Returns each buffer to the pool its back-pointer names (TX completion and
// drop paths, where buffers of several pools may mix). Same error contract as
// PacketPool::free_burst.
[[nodiscard]] Status free_to_owners(std::span<PacketBuffer* const> buffers);

}  // namespace dmakit::net
