#include <dmakit/internal/handle_failure.hpp>

#include <dmakit/dma/device.hpp>

#include <cerrno>
#include <string>

namespace dmakit::dma {

Error empty_handle_error(const char* handle, const char* call, const char* ended) {
    return Error(EINVAL, std::string(handle) + "::" + call + " of an empty handle (moved from, " + ended +
                             " or released); nothing was changed");
}

void warn_handle_failure(DmaDevice& device, const char* handle, const char* what, mem::CallSite made_at,
                         const Error& error) noexcept {
    try {
        device.context().logger().warning(std::string(handle) + " made at " + made_at.file() + ":" +
                                          std::to_string(made_at.line()) + ": its destructor could not " + what +
                                          ": " + to_string(error));
    } catch (...) {
        // Out of memory while describing the failure: nothing better to do.
    }
}

}  // namespace dmakit::dma
