#include <dmakit/mem/page_source.hpp>

#include <sys/mman.h>

namespace dmakit::mem {

bool reset_to_reservation(void* address, std::size_t length) noexcept {
    void* p = ::mmap(address, length, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return p != MAP_FAILED;
}

void PageSource::unmap(void* address, std::size_t length) noexcept {
    (void)reset_to_reservation(address, length);
}

}  // namespace dmakit::mem
