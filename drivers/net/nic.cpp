#include <dmakit/drivers/net/nic.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>
#include <utility>

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

Result<MacAddress> MacAddress::parse(std::string_view text) {
    const auto refuse = [&] {
        // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false
        // positive) on "'" + std::string(text).
        std::string message = "'";
        message.append(text);
        message += "' is not a MAC address; write six hex bytes joined by colons, e.g. 02:00:00:00:00:01";
        return Error(EINVAL, std::move(message));
    };
    if (text.size() != 17) return refuse();
    const auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    MacAddress mac;
    for (std::size_t i = 0; i < mac.bytes.size(); ++i) {
        const std::size_t at = 3 * i;
        const int high = digit(text[at]), low = digit(text[at + 1]);
        if (high < 0 || low < 0 || (i + 1 < mac.bytes.size() && text[at + 2] != ':')) return refuse();
        mac.bytes[i] = static_cast<std::uint8_t>(high * 16 + low);
    }
    return mac;
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
