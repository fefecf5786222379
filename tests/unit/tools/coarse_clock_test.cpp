// examples/net/coarse_clock.hpp: coarse_now() must be Clock::now()'s time
// base (CLOCK_MONOTONIC), at most a tick behind, never ahead: pktgen and fwd
// compare it with deadlines taken from Clock::now().
#include "net/coarse_clock.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace dmakit::examples {
namespace {

TEST(CoarseClock, SameTimeBaseAsTheSteadyClockAndNeverAhead) {
    for (int i = 0; i < 1000; ++i) {
        const Clock::time_point coarse = coarse_now();
        const Clock::time_point precise = Clock::now();
        // The coarse copy is the time of the last tick: not after now...
        EXPECT_LE(coarse, precise);
        // ...and not more than a tick (<= 10 ms at HZ=100) behind; a
        // generous bound for a loaded machine that preempts between the calls.
        EXPECT_LT(precise - coarse, std::chrono::milliseconds(100));
    }
}

TEST(CoarseClock, MovesForward) {
    const Clock::time_point first = coarse_now();
    Clock::time_point later = first;
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    while (later == first && Clock::now() < deadline) later = coarse_now();
    EXPECT_GT(later, first);
}

}  // namespace
}  // namespace dmakit::examples
