// UniqueFd: a move-only owner of a file descriptor, closed on destruction.
#pragma once

#include <dmakit/support/result.hpp>

#include <string>

namespace dmakit {

class UniqueFd {
public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    ~UniqueFd() { reset(); }

    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    // Gives up ownership without closing.
    [[nodiscard]] int release() noexcept {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1) noexcept;

    // open(2) with O_CLOEXEC added; the error names the path.
    [[nodiscard]] static Result<UniqueFd> open(const std::string& path, int flags, unsigned mode = 0);

private:
    int fd_ = -1;
};

}  // namespace dmakit
