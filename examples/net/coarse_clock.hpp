// The polling loops' clock. Clock is steady_clock (CLOCK_MONOTONIC);
// coarse_now() reads the same time base at tick granularity.
#pragma once

#include <chrono>
#include <ctime>

namespace dmakit::examples {

using Clock = std::chrono::steady_clock;

// Clock::now() from the kernel's tick-granular copy (CLOCK_MONOTONIC_COARSE,
// the same time base, at most one tick behind). The vDSO answers it from
// memory, whatever the clocksource. Clock::now() does not when the clock is
// the HPET, as in the TCG guest (its TSC is marked unstable): that is a
// system call and an emulated register read, which under TCG waits for
// QEMU's global lock while QEMU's main loop is busy moving frames. A
// polling loop that asked for the time every 16 rounds spent most of its
// time in the guest kernel that way (docs/performance.md, virtio-net TX).
[[nodiscard]] inline Clock::time_point coarse_now() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(ts.tv_sec) +
                                                                          std::chrono::nanoseconds(ts.tv_nsec)));
}

}  // namespace dmakit::examples
