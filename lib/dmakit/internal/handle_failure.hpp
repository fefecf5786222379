// What the DMA handles (StreamingMapping, MappedScatterList, PoolBlock) say
// when a call reaches an empty handle, and do when their destructor cannot
// end what they hold: that error cannot be returned, so it goes to the
// device's context logger as one warning naming the handle and where it was
// made. Never throws, never aborts.
// Not installed: only the handles' .cpp files use it.
#pragma once

#include <dmakit/mem/call_site.hpp>
#include <dmakit/support/error.hpp>

namespace dmakit::dma {

class DmaDevice;

// EINVAL: "<handle>::<call> of an empty handle (moved from, <ended> or
// released); nothing was changed". `ended`: "unmapped", "freed".
[[nodiscard]] Error empty_handle_error(const char* handle, const char* call, const char* ended);

// "<handle> made at FILE:LINE: its destructor could not <what>: <error>"
void warn_handle_failure(DmaDevice& device, const char* handle, const char* what, mem::CallSite made_at,
                         const Error& error) noexcept;

// A handle's destructor path: `end()` empties the handle and returns how
// ending it went; a failure becomes the one warning above. A throw from
// end() (out of memory while building its error) is swallowed: the handle is
// empty by then, and a destructor must not throw.
template <typename End>
void end_in_destructor(DmaDevice& device, const char* handle, const char* what, mem::CallSite made_at,
                       End&& end) noexcept {
    try {
        if (auto status = end(); !status.ok()) warn_handle_failure(device, handle, what, made_at, status.error());
    } catch (...) {
    }
}

}  // namespace dmakit::dma
