#include <dmakit/drivers/net/nic.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

namespace dmakit::net {

bool MacAddress::is_zero() const noexcept {
    return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

std::string MacAddress::to_string() const {
    char text[18];
    std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1],
                  bytes[2], bytes[3], bytes[4], bytes[5]);
    return text;
}

Error Nic::bad_queue(const char* call, std::size_t queue) const {
    return Error(EINVAL, std::string(driver_name()) + " " + call + ": queue " + std::to_string(queue) +
                             " does not exist; this port has " + std::to_string(queue_count()) +
                             " queue(s), 0.." + std::to_string(queue_count() - 1));
}

void Nic::mark_removed(std::string port) {
    removed_port_ = std::move(port);
    removed_.store(true, std::memory_order_release);
}

Error Nic::removed_error(const char* call) const {
    return Error(ENODEV, std::string(driver_name()) + " " + call + ": port " + removed_port_ +
                             " was removed (the kernel asked for it back and dmakit released it, with every "
                             "buffer back in its pool); open it again once it is back (dmakit bind " +
                             removed_port_ + ")");
}

}  // namespace dmakit::net
