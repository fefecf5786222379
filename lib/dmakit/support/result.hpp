// Result<T>: a value or an Error, the return type of every fallible call.
//
// C++20 has no std::expected; this is the small subset dmakit needs. Results
// are [[nodiscard]] so an ignored failure is a compile error under -Werror.
// Accessing value() of an error (or error() of a value) is a programming bug
// and is checked with assert in debug builds.
#pragma once

#include <dmakit/support/error.hpp>

#include <cassert>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace dmakit {

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : storage_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    Result(Error error) : storage_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

    [[nodiscard]] bool ok() const noexcept { return storage_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    [[nodiscard]] T& value() & { assert(ok()); return std::get<0>(storage_); }
    [[nodiscard]] const T& value() const& { assert(ok()); return std::get<0>(storage_); }
    [[nodiscard]] T&& value() && { assert(ok()); return std::get<0>(std::move(storage_)); }

    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    [[nodiscard]] const Error& error() const& { assert(!ok()); return std::get<1>(storage_); }
    [[nodiscard]] Error&& error() && { assert(!ok()); return std::get<1>(std::move(storage_)); }

private:
    std::variant<T, Error> storage_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

    [[nodiscard]] bool ok() const noexcept { return !error_.has_value(); }
    explicit operator bool() const noexcept { return ok(); }
    [[nodiscard]] const Error& error() const& { assert(!ok()); return *error_; }
    [[nodiscard]] Error&& error() && { assert(!ok()); return std::move(*error_); }

private:
    // Empty on success, so a successful Status costs no string construction.
    std::optional<Error> error_;
};

using Status = Result<void>;

}  // namespace dmakit

// Propagates an error from an expression returning Result<...>; evaluates to
// nothing on success. Use DMAKIT_ASSIGN_OR_RETURN to keep a value.
#define DMAKIT_TRY(expr)                                                      \
    do {                                                                      \
        auto dmakit_try_result_ = (expr);                                     \
        if (!dmakit_try_result_.ok()) return std::move(dmakit_try_result_).error(); \
    } while (0)

#define DMAKIT_CONCAT_INNER_(a, b) a##b
#define DMAKIT_CONCAT_(a, b) DMAKIT_CONCAT_INNER_(a, b)
#define DMAKIT_ASSIGN_OR_RETURN(lhs, expr)                                    \
    auto DMAKIT_CONCAT_(dmakit_result_, __LINE__) = (expr);                   \
    if (!DMAKIT_CONCAT_(dmakit_result_, __LINE__).ok())                       \
        return std::move(DMAKIT_CONCAT_(dmakit_result_, __LINE__)).error();   \
    lhs = std::move(DMAKIT_CONCAT_(dmakit_result_, __LINE__)).value()
