// Parsers for the log pages the driver reads (NVMe 1.4 §5.14.1), from raw
// buffers the device wrote: copied first, decoded once, never trusted as sizes.
#pragma once

#include <dmakit/support/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dmakit::nvme {

// NVMe 1.4 §5.14.1.2 SMART / Health Information (Log Identifier 02h), 512 bytes.
// The 128-bit counters are kept as their low 64 bits; `saturated` says one
// of them had high bits set (a value no test will reach, but a device may claim).
struct SmartLog {
    std::uint8_t critical_warning = 0;        // byte 0
    std::uint16_t temperature_kelvin = 0;     // 2:1 composite temperature
    std::uint8_t available_spare = 0;         // 3, percent
    std::uint8_t available_spare_threshold = 0;  // 4, percent
    std::uint8_t percentage_used = 0;         // 5 (may exceed 100)
    std::uint64_t data_units_read = 0;        // 47:32, thousands of 512-byte units
    std::uint64_t data_units_written = 0;     // 63:48
    std::uint64_t host_read_commands = 0;     // 79:64
    std::uint64_t host_write_commands = 0;    // 95:80
    std::uint64_t controller_busy_minutes = 0;   // 111:96
    std::uint64_t power_cycles = 0;           // 127:112
    std::uint64_t power_on_hours = 0;         // 143:128
    std::uint64_t unsafe_shutdowns = 0;       // 159:144
    std::uint64_t media_errors = 0;           // 175:160
    std::uint64_t error_log_entries = 0;      // 191:176
    std::uint32_t warning_temp_minutes = 0;   // 195:192
    std::uint32_t critical_temp_minutes = 0;  // 199:196
    std::array<std::uint16_t, 8> temperature_sensors{};  // 215:200, 0 = not reported
    bool saturated = false;

    [[nodiscard]] int temperature_celsius() const noexcept { return int{temperature_kelvin} - 273; }
};

// Rejects a buffer shorter than 512 bytes and a composite temperature of 0 K
// (the field is mandatory; 0 means the device wrote nothing there).
[[nodiscard]] Result<SmartLog> parse_smart_log(std::span<const std::byte> data);

// NVMe 1.4 §5.14.1.1 Error Information entry (Log Identifier 01h), 64 bytes.
struct ErrorLogEntry {
    std::uint64_t error_count = 0;  // 7:0, 0 = empty entry
    std::uint16_t sqid = 0;         // 9:8
    std::uint16_t cid = 0;          // 11:10
    std::uint16_t status = 0;       // 13:12, bit 0 is the phase tag
    std::uint16_t parameter_location = 0;  // 15:14
    std::uint64_t lba = 0;          // 23:16
    std::uint32_t nsid = 0;         // 27:24
};

// Parses whole 64-byte entries, dropping empty ones (error count 0); a
// length that is not a multiple of 64 is an error.
[[nodiscard]] Result<std::vector<ErrorLogEntry>> parse_error_log(std::span<const std::byte> data);

}  // namespace dmakit::nvme
