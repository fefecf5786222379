// Helpers shared by the mem unit tests.
#pragma once

#include <dmakit/mem/anonymous_source.hpp>
#include <dmakit/mem/buddy.hpp>
#include <dmakit/support/log.hpp>

#include <gtest/gtest.h>

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
    EXPECT_TRUE(buddy.ok()) << (buddy.ok() ? "" : buddy.error().message());
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
