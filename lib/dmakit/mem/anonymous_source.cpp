#include <dmakit/mem/anonymous_source.hpp>

#include <dmakit/mem/numa.hpp>
#include <dmakit/mem/page.hpp>
#include <dmakit/support/log.hpp>

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/mman.h>

namespace dmakit::mem {

std::size_t AnonymousSource::alignment() const noexcept { return kPageSize; }

Result<RegionBacking> AnonymousSource::map(void* address, std::size_t length) {
    return map_bound(address, length, -1);
}

Result<RegionBacking> AnonymousSource::map_on_node(void* address, std::size_t length, int node) {
    return map_bound(address, length, node);
}

Result<RegionBacking> AnonymousSource::map_bound(void* address, std::size_t length, int node) {
    // With a node the pages must be faulted after mbind, so no MAP_POPULATE.
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    if (options_.populate && node < 0) flags |= MAP_POPULATE;
    void* p = ::mmap(address, length, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
        const int err = errno;
        (void)reset_to_reservation(address, length);
        return system_error(err, "mapping a " + std::to_string(length >> 10) +
                                     " KiB anonymous region",
                            "the system is out of memory or the address-space limit "
                            "(ulimit -v) is too small");
    }
    if (node >= 0) {
        if (auto bound = bind_to_node(address, length, node); !bound.ok()) {
            (void)reset_to_reservation(address, length);
            return std::move(bound).error();
        }
        if (options_.populate) {
            auto* bytes = static_cast<volatile unsigned char*>(address);
            for (std::size_t off = 0; off < length; off += kPageSize) bytes[off] = 0;
        }
    }
    RegionBacking backing{kPageSize, kPageSize, node, false};
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
