#include <dmakit/drivers/nvme/log_pages.hpp>

#include <cerrno>
#include <cstring>
#include <string>

namespace dmakit::nvme {

namespace {

template <typename T>
T load(const std::byte* p, std::size_t offset) noexcept {
    T v;
    std::memcpy(&v, p + offset, sizeof v);
    return v;
}

// Low 64 bits of a 128-bit little-endian counter; notes when the high half is set.
std::uint64_t load_u128(const std::byte* p, std::size_t offset, bool& saturated) noexcept {
    if (load<std::uint64_t>(p, offset + 8) != 0) {
        saturated = true;
        return ~std::uint64_t{0};
    }
    return load<std::uint64_t>(p, offset);
}

}  // namespace

Result<SmartLog> parse_smart_log(std::span<const std::byte> data) {
    if (data.size() < 512) {
        return Error(EINVAL, "SMART log of " + std::to_string(data.size()) + " bytes is shorter than 512 (NVMe 1.4 §5.14.1.2)");
    }
    std::byte copy[512];  // the device could rewrite the buffer while we read it
    std::memcpy(copy, data.data(), sizeof copy);
    SmartLog s;
    s.critical_warning = load<std::uint8_t>(copy, 0);
    s.temperature_kelvin = load<std::uint16_t>(copy, 1);
    s.available_spare = load<std::uint8_t>(copy, 3);
    s.available_spare_threshold = load<std::uint8_t>(copy, 4);
    s.percentage_used = load<std::uint8_t>(copy, 5);
    s.data_units_read = load_u128(copy, 32, s.saturated);
    s.data_units_written = load_u128(copy, 48, s.saturated);
    s.host_read_commands = load_u128(copy, 64, s.saturated);
    s.host_write_commands = load_u128(copy, 80, s.saturated);
    s.controller_busy_minutes = load_u128(copy, 96, s.saturated);
    s.power_cycles = load_u128(copy, 112, s.saturated);
    s.power_on_hours = load_u128(copy, 128, s.saturated);
    s.unsafe_shutdowns = load_u128(copy, 144, s.saturated);
    s.media_errors = load_u128(copy, 160, s.saturated);
    s.error_log_entries = load_u128(copy, 176, s.saturated);
    s.warning_temp_minutes = load<std::uint32_t>(copy, 192);
    s.critical_temp_minutes = load<std::uint32_t>(copy, 196);
    for (std::size_t i = 0; i < s.temperature_sensors.size(); ++i) {
        s.temperature_sensors[i] = load<std::uint16_t>(copy, 200 + 2 * i);
    }
    if (s.temperature_kelvin == 0) {
        return Error(EIO, "SMART log reports a composite temperature of 0 K; the device did not fill the log");
    }
    return s;
}

Result<std::vector<ErrorLogEntry>> parse_error_log(std::span<const std::byte> data) {
    if (data.size() % 64 != 0) {
        return Error(EINVAL, "error log of " + std::to_string(data.size()) + " bytes is not whole 64-byte entries");
    }
    std::vector<ErrorLogEntry> out;
    for (std::size_t off = 0; off < data.size(); off += 64) {
        std::byte e[64];
        std::memcpy(e, data.data() + off, sizeof e);
        ErrorLogEntry entry;
        entry.error_count = load<std::uint64_t>(e, 0);
        if (entry.error_count == 0) continue;
        entry.sqid = load<std::uint16_t>(e, 8);
        entry.cid = load<std::uint16_t>(e, 10);
        entry.status = load<std::uint16_t>(e, 12);
        entry.parameter_location = load<std::uint16_t>(e, 14);
        entry.lba = load<std::uint64_t>(e, 16);
        entry.nsid = load<std::uint32_t>(e, 24);
        out.push_back(entry);
    }
    return out;
}

}  // namespace dmakit::nvme
