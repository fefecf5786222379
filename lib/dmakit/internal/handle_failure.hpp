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

}  // namespace dmakit::dma
