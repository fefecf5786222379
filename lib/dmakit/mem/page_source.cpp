#include <dmakit/mem/page_source.hpp>

#include <cerrno>
#include <string>
#include <sys/mman.h>

namespace dmakit::mem {

bool reset_to_reservation(void* address, std::size_t length) noexcept {
    void* p = ::mmap(address, length, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return p != MAP_FAILED;
}

Result<RegionBacking> PageSource::map_on_node(void* address, std::size_t length, int node) {
    if (node < 0) return map(address, length);
    return Error(ENOTSUP, "page source " + std::string(name()) +
                              " cannot place memory on a NUMA node (asked for node " +
                              std::to_string(node) + ")");
}

void PageSource::unmap(void* address, std::size_t length) noexcept {
    (void)reset_to_reservation(address, length);
}

}  // namespace dmakit::mem
