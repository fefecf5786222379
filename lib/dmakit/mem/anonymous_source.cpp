#include <dmakit/mem/anonymous_source.hpp>

#include <dmakit/mem/page.hpp>
#include <dmakit/support/log.hpp>

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/mman.h>

namespace dmakit::mem {

std::size_t AnonymousSource::alignment() const noexcept { return kPageSize; }

Result<RegionBacking> AnonymousSource::map(void* address, std::size_t length) {
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    if (options_.populate) flags |= MAP_POPULATE;
    void* p = ::mmap(address, length, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
        const int err = errno;
        (void)reset_to_reservation(address, length);
        return system_error(err, "mapping a " + std::to_string(length >> 10) +
                                     " KiB anonymous region",
                            "the system is out of memory or the address-space limit "
                            "(ulimit -v) is too small");
    }
    RegionBacking backing{kPageSize, kPageSize, -1, false};
    if (options_.lock) {
        if (::mlock(address, length) == 0) {
            backing.locked = true;
        } else if (!warned_lock_) {
            warned_lock_ = true;
            if (options_.logger != nullptr) {
                options_.logger->warning(
                    std::string("mlock of allocator memory failed (") + std::strerror(errno) +
                    "); pages stay unlocked. Raise the limit with `ulimit -l unlimited` or run "
                    "with CAP_IPC_LOCK");
            }
        }
    }
    return backing;
}

}  // namespace dmakit::mem
