// Logger: where the library's diagnostics go.
//
// The library never writes to stdout. Diagnostics (warnings such as "no
// hugepages, using 4 KiB pages", debug-mode reports) go to a Logger that the
// owner of a Context/allocator passes in; the default writes to stderr. Tests
// install a capturing sink to assert on what was reported.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace dmakit {

enum class LogLevel { debug, info, warning, error };

[[nodiscard]] std::string_view to_string(LogLevel level) noexcept;

class Logger {
public:
    using Sink = std::function<void(LogLevel, std::string_view)>;

    // Writes "dmakit: <level>: message" lines to stderr, at `min_level` and above.
    explicit Logger(LogLevel min_level = LogLevel::info);
    Logger(LogLevel min_level, Sink sink);

    void log(LogLevel level, std::string_view message) const;
    void debug(std::string_view m) const { log(LogLevel::debug, m); }
    void info(std::string_view m) const { log(LogLevel::info, m); }
    void warning(std::string_view m) const { log(LogLevel::warning, m); }
    void error(std::string_view m) const { log(LogLevel::error, m); }

    [[nodiscard]] LogLevel min_level() const noexcept { return min_level_; }

private:
    LogLevel min_level_;
    Sink sink_;
    mutable std::mutex mutex_;  // sinks need not be thread-safe
};

}  // namespace dmakit
