#include <dmakit/pci/address.hpp>

#include <cerrno>
#include <cstdio>
#include <optional>

namespace dmakit::pci {
namespace {

constexpr std::string_view expected_form =
    "expected DDDD:BB:DD.F (e.g. 0000:00:04.0) or BB:DD.F (e.g. 00:04.0), in hex";

Error malformed(std::string_view text, std::string_view why) {
    std::string message = "invalid PCI address '";
    message += text;
    message += "'";
    if (!why.empty()) {
        message += " (";
        message += why;
        message += ")";
    }
    message += "; ";
    message += expected_form;
    return Error(EINVAL, std::move(message));
}

std::optional<unsigned> hex_digit(char c) {
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<unsigned>(c - 'A' + 10);
    return std::nullopt;
}

// Parses all of `field` as hex with a digit count in [min_digits, max_digits].
std::optional<std::uint32_t> parse_hex(std::string_view field, std::size_t min_digits,
                                       std::size_t max_digits) {
    if (field.size() < min_digits || field.size() > max_digits) return std::nullopt;
    std::uint32_t value = 0;
    for (char c : field) {
        auto digit = hex_digit(c);
        if (!digit) return std::nullopt;
        value = value * 16 + *digit;
    }
    return value;
}

}  // namespace

Result<PciAddress> PciAddress::parse(std::string_view text) {
    if (text.empty()) return malformed(text, "empty");

    // Split "[domain:]bus:device.function".
    auto dot = text.rfind('.');
    if (dot == std::string_view::npos) return malformed(text, "no '.' before the function");
    std::string_view function_field = text.substr(dot + 1);
    std::string_view head = text.substr(0, dot);

    auto last_colon = head.rfind(':');
    if (last_colon == std::string_view::npos) return malformed(text, "no ':' before the device");
    std::string_view device_field = head.substr(last_colon + 1);
    head = head.substr(0, last_colon);

    std::string_view domain_field;
    std::string_view bus_field = head;
    if (auto colon = head.rfind(':'); colon != std::string_view::npos) {
        domain_field = head.substr(0, colon);
        bus_field = head.substr(colon + 1);
        if (domain_field.empty()) return malformed(text, "empty domain");
    }

    PciAddress address;
    if (!domain_field.empty()) {
        // sysfs prints the domain with %04x, so longer domains (VMD) have more digits.
        auto domain = parse_hex(domain_field, 4, 8);
        if (!domain) return malformed(text, "domain must be 4 to 8 hex digits");
        address.domain = *domain;
    }
    auto bus = parse_hex(bus_field, 2, 2);
    if (!bus) return malformed(text, "bus must be 2 hex digits");
    auto device = parse_hex(device_field, 2, 2);
    if (!device) return malformed(text, "device must be 2 hex digits");
    if (*device > max_device) return malformed(text, "device must be 00-1f");
    auto function = parse_hex(function_field, 1, 1);
    if (!function) return malformed(text, "function must be 1 hex digit");
    if (*function > max_function) return malformed(text, "function must be 0-7");

    address.bus = static_cast<std::uint8_t>(*bus);
    address.device = static_cast<std::uint8_t>(*device);
    address.function = static_cast<std::uint8_t>(*function);
    return address;
}

std::string PciAddress::to_string() const {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%04x:%02x:%02x.%x", static_cast<unsigned>(domain),
                  static_cast<unsigned>(bus), static_cast<unsigned>(device),
                  static_cast<unsigned>(function));
    return buffer;
}

}  // namespace dmakit::pci
