// MemoryMapping: a move-only owner of an mmap(2) range, unmapped on destruction.
#pragma once

#include <dmakit/support/result.hpp>

#include <cstddef>
#include <sys/types.h>

namespace dmakit {

class MemoryMapping {
public:
    MemoryMapping() noexcept = default;
    MemoryMapping(void* addr, std::size_t length) noexcept : addr_(addr), length_(length) {}
    ~MemoryMapping() { reset(); }

    MemoryMapping(MemoryMapping&& other) noexcept
        : addr_(other.addr_), length_(other.length_) {
        other.addr_ = nullptr;
        other.length_ = 0;
    }
    MemoryMapping& operator=(MemoryMapping&& other) noexcept;
    MemoryMapping(const MemoryMapping&) = delete;
    MemoryMapping& operator=(const MemoryMapping&) = delete;

    [[nodiscard]] void* data() const noexcept { return addr_; }
    [[nodiscard]] std::byte* bytes() const noexcept { return static_cast<std::byte*>(addr_); }
    [[nodiscard]] std::size_t size() const noexcept { return length_; }
    [[nodiscard]] bool valid() const noexcept { return addr_ != nullptr; }

    void reset() noexcept;

    // mmap(2); `what` names the mapping in the error message.
    [[nodiscard]] static Result<MemoryMapping> map(void* hint, std::size_t length, int prot,
                                                   int flags, int fd, off_t offset,
                                                   const char* what);

private:
    void* addr_ = nullptr;
    std::size_t length_ = 0;
};

}  // namespace dmakit
