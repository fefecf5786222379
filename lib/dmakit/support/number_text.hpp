// Numbers from text, the one parser for command-line values and kernel files.
//
// The whole text must be the number: no spaces, no sign on unsigned types,
// no trailing characters. Reals must be finite ("nan", "inf" and values that
// overflow a double, such as 1e400, are refused), so a NaN can never slip
// through a range check (every comparison with NaN is false).
#pragma once

#include <dmakit/support/result.hpp>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

namespace dmakit {

template <std::integral T>
[[nodiscard]] std::optional<T> parse_integer(std::string_view text, int base = 10) {
    T value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

[[nodiscard]] inline std::optional<double> parse_real(std::string_view text) {
    double value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    if (!std::isfinite(value)) return std::nullopt;
    return value;
}

// An unsigned count with an optional binary suffix: k/K (2^10), m/M (2^20),
// g/G (2^30). Refuses what does not fit in 64 bits.
[[nodiscard]] inline std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
    std::uint64_t multiplier = 1;
    if (!text.empty()) {
        switch (text.back()) {
            case 'k': case 'K': multiplier = 1ull << 10; break;
            case 'm': case 'M': multiplier = 1ull << 20; break;
            case 'g': case 'G': multiplier = 1ull << 30; break;
            default: break;
        }
        if (multiplier != 1) text.remove_suffix(1);
    }
    auto value = parse_integer<std::uint64_t>(text);
    if (!value || *value > std::numeric_limits<std::uint64_t>::max() / multiplier) return std::nullopt;
    return *value * multiplier;
}

// "64 MiB", "2 GiB", "12 KiB", "100 bytes": the largest binary unit that
// divides the count exactly, for messages about sizes and limits.
[[nodiscard]] inline std::string format_byte_size(std::uint64_t bytes) {
    constexpr const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
    std::string unit = "bytes";
    for (const char* name : units) {
        if (bytes == 0 || bytes % 1024 != 0) break;
        bytes /= 1024;
        unit = name;
    }
    return std::to_string(bytes) + " " + unit;
}

// "0x1f"-style hex for messages (addresses, offsets, register values).
[[nodiscard]] inline std::string to_hex(std::uint64_t value) {
    char buffer[2 + 16] = {'0', 'x'};
    const auto end = std::to_chars(buffer + 2, buffer + sizeof buffer, value, 16).ptr;
    return std::string(buffer, end);
}

// "%g"-like text for a range bound: 0.1, 1000000, 512.
template <typename T>
[[nodiscard]] std::string number_to_text(T value) {
    if constexpr (std::floating_point<T>) {
        std::ostringstream out;
        out << value;
        return out.str();
    } else {
        return std::to_string(value);
    }
}

// A command-line option's value in [min, max], or EINVAL with the one-line
// message every program prints: "OPTION wants a number from MIN to MAX, got 'TEXT'".
// `sizes` accepts the k/m/g suffixes of parse_byte_size (unsigned 64-bit only).
template <typename T>
[[nodiscard]] Result<T> parse_option_number(std::string_view option, std::string_view text, T min, T max,
                                            bool sizes = false) {
    std::optional<T> value;
    if constexpr (std::floating_point<T>) {
        value = parse_real(text);
    } else if constexpr (std::same_as<T, std::uint64_t>) {
        value = sizes ? parse_byte_size(text) : parse_integer<T>(text);
    } else {
        value = parse_integer<T>(text);
    }
    if (!value || *value < min || *value > max) {
        return Error(EINVAL, std::string(option) + " wants a number from " + number_to_text(min) + " to " +
                                 number_to_text(max) + (sizes ? " (k, m, g suffixes allowed)" : "") +
                                 ", got '" + std::string(text) + "'");
    }
    return *value;
}

}  // namespace dmakit
