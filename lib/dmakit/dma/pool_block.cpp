#include <dmakit/dma/pool_block.hpp>

#include <dmakit/internal/handle_failure.hpp>
#include <dmakit/dma/pool.hpp>
#include <dmakit/support/error.hpp>

#include <utility>

namespace dmakit::dma {

PoolBlock& PoolBlock::operator=(PoolBlock&& other) noexcept {
    if (this != &other) {
        reset();
        pool_ = std::exchange(other.pool_, nullptr);
        cpu_ = std::exchange(other.cpu_, nullptr);
        dma_ = std::exchange(other.dma_, DmaAddr());
        site_ = other.site_;
    }
    return *this;
}

std::size_t PoolBlock::size() const noexcept { return pool_ != nullptr ? pool_->block_size() : 0; }

Status PoolBlock::free() {
    if (!valid()) return empty_handle_error("PoolBlock", "free", "freed");
    DmaPool* pool = pool_;
    void* cpu = release();  // empty first: whatever happens, never freed twice
    return pool->free(cpu);
}

void* PoolBlock::release() noexcept {
    pool_ = nullptr;
    dma_ = DmaAddr();
    return std::exchange(cpu_, nullptr);
}

void PoolBlock::reset() noexcept {
    if (!valid()) return;
    end_in_destructor(pool_->device_, "PoolBlock", "free", site_, [this] { return free(); });
}

}  // namespace dmakit::dma
