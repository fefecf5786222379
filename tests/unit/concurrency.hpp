// Helpers for the concurrency tests (gtest suites named Concurrent*), which
// scripts/run-tests also runs under ThreadSanitizer (docs/testing.md).
//
// Each test draws one seed: DMAKIT_TEST_SEED when set (to replay a failure),
// else a fresh random one. The seed is printed with the test's output and
// recorded in its JSON report; thread i's operations come from seed + i, so a
// replay repeats every thread's sequence of operations (the interleaving is
// up to the scheduler, which is why the seed changes between runs).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace dmakit::testing {

// More than two, so a free can race an allocation and a refill at once.
inline constexpr unsigned kConcurrentThreads = 6;

// The test's seed; call once per test, at its start.
inline std::uint64_t concurrency_seed() {
    std::uint64_t seed = 0;
    const char* replay = std::getenv("DMAKIT_TEST_SEED");
    if (replay != nullptr && *replay != '\0') {
        char* end = nullptr;
        seed = std::strtoull(replay, &end, 0);
        if (*end != '\0') ADD_FAILURE() << "DMAKIT_TEST_SEED='" << replay << "' is not a number";
    } else {
        std::random_device device;
        seed = (std::uint64_t{device()} << 32) | device();
    }
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::printf("[ seed     ] %s.%s: DMAKIT_TEST_SEED=%llu (set it to replay)\n",
                info->test_suite_name(), info->name(), static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    ::testing::Test::RecordProperty("seed", std::to_string(seed));
    return seed;
}

// Runs body(thread_index, rng) on `threads` threads at once and joins them;
// each thread's generator is seeded with seed + thread_index.
inline void run_concurrently(std::uint64_t seed, unsigned threads,
                             const std::function<void(unsigned, std::mt19937_64&)>& body) {
    std::vector<std::thread> workers;
    workers.reserve(threads);
    for (unsigned i = 0; i < threads; ++i) {
        workers.emplace_back([&body, seed, i] {
            std::mt19937_64 rng(seed + i);
            body(i, rng);
        });
    }
    for (auto& worker : workers) worker.join();
}

// Items passed from the thread that allocated them to whichever thread takes
// them next: the cross-thread frees every allocator must survive.
template <typename T>
class Handoff {
public:
    void put(T item) {
        std::lock_guard lock(mutex_);
        items_.push_back(std::move(item));
    }
    [[nodiscard]] std::optional<T> take() {
        std::lock_guard lock(mutex_);
        if (items_.empty()) return std::nullopt;
        T item = std::move(items_.back());
        items_.pop_back();
        return item;
    }
    [[nodiscard]] std::vector<T> take_all() {
        std::lock_guard lock(mutex_);
        return std::exchange(items_, {});
    }

private:
    std::mutex mutex_;
    std::vector<T> items_;
};

}  // namespace dmakit::testing
