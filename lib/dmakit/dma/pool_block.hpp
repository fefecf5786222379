// PoolBlock: a dma_pool_alloc that frees itself.
//
// DmaPool::alloc_block / zalloc_block allocate like alloc / zalloc and hand
// back this move-only handle; the block goes back to its pool when the handle
// does (dma_pool_free), or now with free(), which returns the result.
// release() gives the raw block up for DmaPool::free. The raw alloc / free
// stay for hot paths (an NVMe queue's PRP-list pages).
//
// A handle frees at most once (moved-from handles are empty). A failure in
// the destructor is logged through the pool's device logger, never aborts.
// The pool must outlive the handle.
#pragma once

#include <dmakit/dma/types.hpp>
#include <dmakit/mem/call_site.hpp>
#include <dmakit/support/result.hpp>

#include <cstddef>
#include <span>
#include <utility>

namespace dmakit::dma {

class DmaPool;

class [[nodiscard]] PoolBlock {
public:
    PoolBlock() noexcept = default;
    ~PoolBlock() { reset(); }
    PoolBlock(PoolBlock&& other) noexcept { *this = std::move(other); }
    PoolBlock& operator=(PoolBlock&& other) noexcept;
    PoolBlock(const PoolBlock&) = delete;
    PoolBlock& operator=(const PoolBlock&) = delete;

    [[nodiscard]] void* cpu() const noexcept { return cpu_; }
    template <typename T>
    [[nodiscard]] T* as() const noexcept { return static_cast<T*>(cpu_); }
    [[nodiscard]] DmaAddr dma() const noexcept { return dma_; }
    // The pool's block size; 0 for an empty handle.
    [[nodiscard]] std::size_t size() const noexcept;
    [[nodiscard]] std::span<std::byte> bytes() const noexcept {
        return {static_cast<std::byte*>(cpu_), size()};
    }
    [[nodiscard]] bool valid() const noexcept { return pool_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

    // dma_pool_free now, with its result; the handle is empty afterwards
    // whatever the result. EINVAL on an empty handle.
    [[nodiscard]] Status free();

    // Gives the block up without freeing it and returns its CPU address:
    // the caller frees it with DmaPool::free(cpu). The handle is empty
    // afterwards (read dma() first if you need it).
    [[nodiscard]] void* release() noexcept;

private:
    friend class DmaPool;
    PoolBlock(DmaPool* pool, void* cpu, DmaAddr dma, mem::CallSite site) noexcept
        : pool_(pool), cpu_(cpu), dma_(dma), site_(site) {}

    void reset() noexcept;

    DmaPool* pool_ = nullptr;
    void* cpu_ = nullptr;
    DmaAddr dma_;
    mem::CallSite site_;  // where alloc_block was called: the destructor's warning names it
};

}  // namespace dmakit::dma
