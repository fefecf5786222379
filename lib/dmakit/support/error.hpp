// Error values returned by every fallible dmakit call.
//
// An Error carries an errno-style code (so callers can branch on ENOENT,
// EBUSY, ENOMEM, ...) and a message written for a person: what went wrong and
// what to do about it ("0000:00:04.0 is bound to nvme; run: dmakit bind
// 0000:00:04.0"). The library never prints these itself; the caller decides.
#pragma once

#include <string>
#include <string_view>

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

}  // namespace dmakit
