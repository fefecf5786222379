// Small text helpers for error messages (GCC 12 has no std::format).
#pragma once

#include <cstdint>
#include <string>

namespace dmakit::nvme {

// "0x1f" style hexadecimal.
[[nodiscard]] inline std::string hex(std::uint64_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    do {
        out.insert(out.begin(), digits[v & 0xf]);
        v >>= 4;
    } while (v != 0);
    return "0x" + out;
}

}  // namespace dmakit::nvme
