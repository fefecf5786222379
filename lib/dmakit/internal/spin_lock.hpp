// SpinLock: a test-and-test-and-set lock for short critical sections.
//
// The buddy free lists and slab lists are held for a few dozen instructions,
// as the kernel holds zone->lock; a futex-based mutex costs more than that
// work when uncontended. After a short spin the waiter yields, so a preempted
// holder on an oversubscribed machine does not burn the waiter's time slice.
#pragma once

#include <atomic>
#include <sched.h>

namespace dmakit::mem {

class SpinLock {
public:
    void lock() noexcept {
        for (;;) {
            if (!locked_.exchange(true, std::memory_order_acquire)) return;
            for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
                if (spins < 64) {
                    __builtin_ia32_pause();
                } else {
                    ::sched_yield();
                }
            }
        }
    }
    [[nodiscard]] bool try_lock() noexcept {
        return !locked_.load(std::memory_order_relaxed) &&
               !locked_.exchange(true, std::memory_order_acquire);
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
    std::atomic<bool> locked_{false};
};

}  // namespace dmakit::mem
