#include <dmakit/support/unique_fd.hpp>

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace dmakit {

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

Result<UniqueFd> UniqueFd::open(const std::string& path, int flags, unsigned mode) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) {
        int err = errno;
        const char* hint = nullptr;
        if (err == EACCES || err == EPERM) hint = "run as root or give your user access to it";
        return system_error(err, "open " + path, hint ? hint : "");
    }
    return UniqueFd(fd);
}

}  // namespace dmakit
