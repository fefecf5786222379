#include <dmakit/support/text_file.hpp>

#include <dmakit/support/unique_fd.hpp>

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace dmakit {

Result<std::string> read_text_file(const std::string& path) {
    DMAKIT_ASSIGN_OR_RETURN(UniqueFd fd, UniqueFd::open(path, O_RDONLY));
    std::string content;
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            return system_error(errno, "read " + path);
        }
        if (n == 0) break;
        content.append(buffer, static_cast<std::size_t>(n));
    }
    return content;
}

Result<std::string> read_trimmed(const std::string& path) {
    DMAKIT_ASSIGN_OR_RETURN(std::string content, read_text_file(path));
    auto first = content.find_first_not_of(" \t\n");
    if (first == std::string::npos) return std::string();
    auto last = content.find_last_not_of(" \t\n");
    return content.substr(first, last - first + 1);
}

Status write_text_file(const std::string& path, std::string_view content) {
    DMAKIT_ASSIGN_OR_RETURN(UniqueFd fd, UniqueFd::open(path, O_WRONLY));
    ssize_t n = ::write(fd.get(), content.data(), content.size());
    if (n < 0) {
        int err = errno;
        return system_error(err, "write '" + std::string(content) + "' to " + path,
                            err == EACCES || err == EPERM ? "run as root" : "");
    }
    if (static_cast<std::size_t>(n) != content.size()) {
        return Error(EIO, "short write to " + path);
    }
    return {};
}

}  // namespace dmakit
