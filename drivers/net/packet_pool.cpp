#include <dmakit/drivers/net/packet_pool.hpp>

#include <dmakit/support/inline_copy.hpp>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <string>
#include <utility>

namespace dmakit::net {

Result<std::unique_ptr<PacketPool>> PacketPool::create(std::unique_ptr<PoolBacking> backing,
                                                       PacketPoolConfig config) {
    if (!backing) return Error(EINVAL, "packet pool: no backing memory given");
    const std::size_t count = backing->buffer_count();
    const std::size_t size = backing->buffer_size();
    if (count == 0 || count >= std::numeric_limits<std::uint32_t>::max()) {
        return Error(EINVAL, "packet pool: buffer count " + std::to_string(count) +
                                 " is out of range (1 .. 2^32-2)");
    }
    if (size > std::numeric_limits<std::uint32_t>::max() || size <= config.headroom) {
        return Error(EINVAL, "packet pool: buffer size " + std::to_string(size) +
                                 " must exceed the headroom (" + std::to_string(config.headroom) +
                                 ") and fit in 32 bits; use larger buffers or less headroom");
    }
    if (config.cache_size < 2) config.cache_size = 2;
    return std::unique_ptr<PacketPool>(new PacketPool(std::move(backing), config));
}

PacketPool::PacketPool(std::unique_ptr<PoolBacking> backing, PacketPoolConfig config)
    : backing_(std::move(backing)),
      config_(config),
      buffer_size_(static_cast<std::uint32_t>(backing_->buffer_size())),
      buffers_(backing_->buffer_count()),
      state_(new std::atomic<std::uint8_t>[backing_->buffer_count()]),
      free_(backing_->buffer_count()) {
    const auto count = static_cast<std::uint32_t>(buffers_.size());
    for (std::uint32_t i = 0; i < count; ++i) {
        PacketBuffer& b = buffers_[i];
        b.base = backing_->cpu_address(i);
        b.dma_base = backing_->dma_address(i);
        b.capacity = buffer_size_;
        b.headroom = config_.headroom;
        b.index = i;
        b.pool = this;
        state_[i].store(kFree, std::memory_order_relaxed);
        // Highest index first so index 0 is handed out first (easier to read in tests).
        free_[i] = count - 1 - i;
    }
    free_count_ = count;
}

PacketPool::~PacketPool() {
    const std::size_t out = in_use();
    if (out != 0 && config_.logger != nullptr) {
        config_.logger->warning("packet pool destroyed with " + std::to_string(out) +
                                " buffers still out; they now point at freed memory "
                                "(free every buffer before destroying its pool)");
    }
}

// Both run on every cache refill and spill: copy_inline, not std::copy or
// vector::insert, which call memmove (see inline_copy.hpp for why that matters).
std::size_t PacketPool::take_shared(std::uint32_t* out, std::size_t count) {
    std::lock_guard lock(mutex_);
    const std::size_t n = std::min(count, free_count_);
    free_count_ -= n;
    copy_inline(out, free_.data() + free_count_, n * sizeof(std::uint32_t));
    return n;
}

void PacketPool::give_shared(const std::uint32_t* indices, std::size_t count) {
    std::lock_guard lock(mutex_);
    // Only indices take_back() moved from out to free (or a cache's free
    // ones) arrive here, each buffer at most once, so the stack has room.
    // Clamped anyway: a bug elsewhere must not write past the stack.
    count = std::min(count, free_.size() - free_count_);
    copy_inline(free_.data() + free_count_, indices, count * sizeof(std::uint32_t));
    free_count_ += count;
}

PacketBuffer* PacketPool::hand_out(std::uint32_t index) noexcept {
    state_[index].store(kOut, std::memory_order_relaxed);
    PacketBuffer* b = &buffers_[index];
    b->headroom = config_.headroom;
    b->length = 0;
    return b;
}

bool PacketPool::take_back(const PacketBuffer* buffer) noexcept {
    // Identity check first: the pointer must be one of our own descriptors.
    if (buffer == nullptr || buffer->pool != this || buffer->index >= buffers_.size() ||
        &buffers_[buffer->index] != buffer) {
        invalid_frees_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    std::uint8_t expected = kOut;
    if (!state_[buffer->index].compare_exchange_strong(expected, kFree,
                                                       std::memory_order_relaxed)) {
        invalid_frees_.fetch_add(1, std::memory_order_relaxed);  // double free
        return false;
    }
    return true;
}

namespace {
Error invalid_free_error(std::size_t refused) {
    return Error(EINVAL, "packet pool: refused " + std::to_string(refused) +
                             " buffer(s) that were null, belong to another pool, or were "
                             "already free (double free); the caller freed a buffer twice "
                             "or kept using one after handing it over");
}
}  // namespace

std::size_t PacketPool::alloc_burst(std::span<PacketBuffer*> out) {
    constexpr std::size_t kChunk = 64;
    std::uint32_t indices[kChunk];
    std::size_t got = 0;
    while (got < out.size()) {
        const std::size_t want = std::min(kChunk, out.size() - got);
        const std::size_t n = take_shared(indices, want);
        for (std::size_t i = 0; i < n; ++i) out[got + i] = hand_out(indices[i]);
        got += n;
        if (n < want) break;
    }
    in_use_.fetch_add(got, std::memory_order_relaxed);
    if (got < out.size()) alloc_failures_.fetch_add(1, std::memory_order_relaxed);
    return got;
}

Status PacketPool::free_burst(std::span<PacketBuffer* const> buffers) {
    constexpr std::size_t kChunk = 64;
    std::uint32_t indices[kChunk];
    std::size_t pending = 0;
    std::size_t freed = 0;
    std::size_t refused = 0;
    for (PacketBuffer* b : buffers) {
        if (!take_back(b)) {
            ++refused;
            continue;
        }
        indices[pending++] = b->index;
        ++freed;
        if (pending == kChunk) {
            give_shared(indices, pending);
            pending = 0;
        }
    }
    if (pending != 0) give_shared(indices, pending);
    in_use_.fetch_sub(freed, std::memory_order_relaxed);
    if (refused != 0) return invalid_free_error(refused);
    return {};
}

PacketPoolStats PacketPool::stats() const noexcept {
    return PacketPoolStats{
        .capacity = capacity(),
        .in_use = in_use(),
        .alloc_failures = alloc_failures_.load(std::memory_order_relaxed),
        .invalid_frees = invalid_frees_.load(std::memory_order_relaxed),
    };
}

PacketPoolCache PacketPool::make_cache() { return PacketPoolCache(*this); }

// ---- PacketPoolCache ----

PacketPoolCache::PacketPoolCache(PacketPool& pool)
    : pool_(&pool), slots_(pool.config_.cache_size) {}

PacketPoolCache::PacketPoolCache(PacketPoolCache&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      slots_(std::move(other.slots_)),
      count_(std::exchange(other.count_, 0)) {}

PacketPoolCache& PacketPoolCache::operator=(PacketPoolCache&& other) noexcept {
    if (this != &other) {
        flush();
        pool_ = std::exchange(other.pool_, nullptr);
        slots_ = std::move(other.slots_);
        count_ = std::exchange(other.count_, 0);
    }
    return *this;
}

PacketPoolCache::~PacketPoolCache() { flush(); }

void PacketPoolCache::flush() {
    if (pool_ != nullptr && count_ != 0) pool_->give_shared(slots_.data(), count_);
    count_ = 0;
}

std::size_t PacketPoolCache::alloc_burst(std::span<PacketBuffer*> out) {
    const std::size_t capacity = slots_.size();
    std::size_t got = 0;
    while (got < out.size()) {
        if (count_ == 0) {
            // Refill to half capacity plus what this burst still needs, so the
            // next few bursts hit the cache without taking the lock.
            const std::size_t want = std::min(capacity, capacity / 2 + (out.size() - got));
            count_ = pool_->take_shared(slots_.data(), want);
            if (count_ == 0) break;
        }
        const std::size_t n = std::min(count_, out.size() - got);
        for (std::size_t i = 0; i < n; ++i) out[got + i] = pool_->hand_out(slots_[--count_]);
        got += n;
    }
    pool_->in_use_.fetch_add(got, std::memory_order_relaxed);
    if (got < out.size()) pool_->alloc_failures_.fetch_add(1, std::memory_order_relaxed);
    return got;
}

Status PacketPoolCache::free_burst(std::span<PacketBuffer* const> buffers) {
    const std::size_t capacity = slots_.size();
    std::size_t freed = 0;
    std::size_t refused = 0;
    for (PacketBuffer* b : buffers) {
        if (!pool_->take_back(b)) {
            ++refused;
            continue;
        }
        if (count_ == capacity) {
            // Full: hand the older half back so both alloc and free stay cheap.
            const std::size_t half = capacity / 2;
            pool_->give_shared(slots_.data(), half);
            copy_inline(slots_.data(), slots_.data() + half, (count_ - half) * sizeof(std::uint32_t));
            count_ -= half;
        }
        slots_[count_++] = b->index;
        ++freed;
    }
    pool_->in_use_.fetch_sub(freed, std::memory_order_relaxed);
    if (refused != 0) return invalid_free_error(refused);
    return {};
}

Status free_to_owners(std::span<PacketBuffer* const> buffers) {
    std::size_t refused = 0;
    std::size_t i = 0;
    while (i < buffers.size()) {
        if (buffers[i] == nullptr || buffers[i]->pool == nullptr) {
            ++refused;
            ++i;
            continue;
        }
        // Free each run of buffers from one pool as a single burst.
        PacketPool* pool = buffers[i]->pool;
        std::size_t j = i + 1;
        while (j < buffers.size() && buffers[j] != nullptr && buffers[j]->pool == pool) ++j;
        if (!pool->free_burst(buffers.subspan(i, j - i)).ok()) ++refused;
        i = j;
    }
    if (refused != 0) {
        return Error(EINVAL, "free_to_owners: some buffers were null, ownerless or already "
                             "free; see each pool's stats().invalid_frees");
    }
    return {};
}

}  // namespace dmakit::net
