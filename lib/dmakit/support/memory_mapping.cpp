#include <dmakit/support/memory_mapping.hpp>

#include <cerrno>
#include <string>
#include <sys/mman.h>

namespace dmakit {

MemoryMapping& MemoryMapping::operator=(MemoryMapping&& other) noexcept {
    if (this != &other) {
        reset();
        addr_ = other.addr_;
        length_ = other.length_;
        other.addr_ = nullptr;
        other.length_ = 0;
    }
    return *this;
}

void MemoryMapping::reset() noexcept {
    if (addr_ != nullptr) ::munmap(addr_, length_);
    addr_ = nullptr;
    length_ = 0;
}

Result<MemoryMapping> MemoryMapping::map(void* hint, std::size_t length, int prot, int flags,
                                         int fd, off_t offset, const char* what) {
    void* addr = ::mmap(hint, length, prot, flags, fd, offset);
    if (addr == MAP_FAILED) {
        return system_error(errno, std::string("mmap ") + what + " (" + std::to_string(length) +
                                       " bytes)");
    }
    return MemoryMapping(addr, length);
}

}  // namespace dmakit
