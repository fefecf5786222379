#include <dmakit/support/log.hpp>

#include <cstdio>

namespace dmakit {

std::string_view to_string(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warning: return "warning";
        case LogLevel::error: return "error";
    }
    return "unknown";
}

Logger::Logger(LogLevel min_level)
    : Logger(min_level, [](LogLevel level, std::string_view message) {
          std::fprintf(stderr, "dmakit: %.*s: %.*s\n", static_cast<int>(to_string(level).size()),
                       to_string(level).data(), static_cast<int>(message.size()), message.data());
      }) {}

Logger::Logger(LogLevel min_level, Sink sink) : min_level_(min_level), sink_(std::move(sink)) {}

void Logger::log(LogLevel level, std::string_view message) const {
    if (level < min_level_ || !sink_) return;
    std::lock_guard lock(mutex_);
    sink_(level, message);
}

}  // namespace dmakit
