// Error values returned by every fallible dmakit call.
//
// An Error carries an errno-style code (so callers can branch on ENOENT,
// EBUSY, ENOMEM, ...) and a message written for a person: what went wrong and
// what to do about it ("0000:00:04.0 is bound to nvme; run: dmakit bind
// 0000:00:04.0"). The library never prints these itself; the caller decides.
//
// How to print one: the single text form is the message, a space, and the
// errno name in brackets:
//     0000:00:04.0: device busy: Device or resource busy [EBUSY]
// given by to_string(error), `stream << error` and, with a standard library
// that has <format>, std::format("{}", error). A code with no errno name
// prints as "[errno 4242]". Use message() only to build a longer message or
// to compare; print the Error itself.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>
#include <version>

namespace dmakit {

class Error {
public:
    Error(int code, std::string message) : code_(code), message_(std::move(message)) {}

    // errno-style code, positive (ENOENT, EINVAL, ...).
    [[nodiscard]] int code() const noexcept { return code_; }
    [[nodiscard]] const std::string& message() const noexcept { return message_; }

    // Prefixes context ("opening 0000:00:04.0: ") while keeping the code.
    [[nodiscard]] Error with_context(std::string_view context) const;

private:
    int code_;
    std::string message_;
};

// Builds an Error from a failed system call: "what: strerror(err)" plus an
// optional hint that tells the user what to do.
[[nodiscard]] Error system_error(int err, std::string_view what, std::string_view hint = {});

// The errno name of `code` ("EBUSY"), or "errno N" when it has none.
[[nodiscard]] std::string errno_name(int code);

// The text form: "message [ENAME]" (see the top of this file).
[[nodiscard]] std::string to_string(const Error& error);
std::ostream& operator<<(std::ostream& out, const Error& error);

}  // namespace dmakit

// std::format("{}", error) gives to_string(error). libstdc++ 12 (GCC 12, the
// project's compiler) has no <format>, so this is compiled only where the
// library defines __cpp_lib_format (libstdc++ 13 and later, recent libc++);
// it takes no format spec.
#if defined(__cpp_lib_format)
#include <algorithm>
#include <format>

template <>
struct std::formatter<dmakit::Error, char> {
    constexpr auto parse(std::format_parse_context& context) { return context.begin(); }
    auto format(const dmakit::Error& error, std::format_context& context) const {
        const std::string text = dmakit::to_string(error);
        return std::copy(text.begin(), text.end(), context.out());
    }
};
#endif
