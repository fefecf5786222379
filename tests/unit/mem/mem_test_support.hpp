// Helpers shared by the mem unit tests.
#pragma once

#include <dmakit/mem/anonymous_source.hpp>
#include <dmakit/mem/buddy.hpp>
#include <dmakit/support/log.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace dmakit::mem::testing {

// A Logger whose lines tests can inspect.
class CapturedLog {
public:
    CapturedLog()
        : logger_(LogLevel::debug, [this](LogLevel level, std::string_view message) {
              std::lock_guard lock(mutex_);
              lines_.push_back(std::string(to_string(level)) + ": " + std::string(message));
          }) {}

    [[nodiscard]] const Logger& logger() const { return logger_; }
    [[nodiscard]] std::vector<std::string> lines() const {
        std::lock_guard lock(mutex_);
        return lines_;
    }
    [[nodiscard]] std::size_t count_containing(std::string_view text) const {
        std::size_t n = 0;
        for (const auto& line : lines()) n += line.find(text) != std::string::npos;
        return n;
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;
    Logger logger_;
};

// Anonymous memory that claims whatever NUMA node it is asked for (a fake
// multi-node machine on a one-node host), counting every call that backs a
// region: an allocation that grows the pool shows up in maps().
class CountingSource final : public PageSource {
public:
    [[nodiscard]] Result<RegionBacking> map(void* address, std::size_t length) override {
        return map_on_node(address, length, -1);
    }
    [[nodiscard]] Result<RegionBacking> map_on_node(void* address, std::size_t length,
                                                    int node) override {
        maps_.fetch_add(1);
        {
            std::lock_guard lock(mutex_);
            nodes_.push_back(node);
        }
        auto backing = inner_.map(address, length);
        if (backing.ok()) backing->numa_node = node;
        return backing;
    }
    [[nodiscard]] std::size_t alignment() const noexcept override { return inner_.alignment(); }
    [[nodiscard]] std::string_view name() const noexcept override { return "counting-fake-numa"; }

    [[nodiscard]] int maps() const { return maps_.load(); }
    // The node each map was asked for (-1: none).
    [[nodiscard]] std::vector<int> nodes() const {
        std::lock_guard lock(mutex_);
        return nodes_;
    }

private:
    AnonymousSource inner_{AnonymousSourceOptions{false, true, nullptr}};
    std::atomic<int> maps_{0};
    mutable std::mutex mutex_;
    std::vector<int> nodes_;
};

// Small, test-sized defaults: 4 MiB regions in a 4 GiB window over 4 KiB
// anonymous memory.
inline BuddyOptions test_options(const Logger& logger) {
    BuddyOptions options;
    options.region_size = std::size_t{4} << 20;
    options.address_space = std::size_t{4} << 30;
    options.logger = &logger;
    return options;
}

inline std::unique_ptr<BuddyAllocator> make_buddy(BuddyOptions options) {
    auto buddy = BuddyAllocator::create(std::make_unique<AnonymousSource>(), options);
    EXPECT_TRUE(buddy.ok()) << (buddy.ok() ? "" : dmakit::to_string(buddy.error()));
    return buddy.ok() ? std::move(buddy).value() : nullptr;
}

// Every region is one maximal free block: regions here are powers of two.
inline void expect_fully_coalesced(const BuddyAllocator& buddy) {
    for (const RegionBuddyInfo& info : buddy.buddyinfo()) {
        const unsigned order = order_for_bytes(info.length);
        for (unsigned o = 0; o < kOrderCount; ++o) {
            EXPECT_EQ(info.free_blocks[o], o == order ? 1u : 0u)
                << "region " << info.slot << " order " << o;
        }
    }
}

}  // namespace dmakit::mem::testing
