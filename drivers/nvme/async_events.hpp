// Asynchronous Events (NVMe 1.4 §5.2): the Asynchronous Event Request
// command, the Asynchronous Event Configuration feature (§5.21.1.11), the
// decoding of an AER completion (DW0: type, information, log page) and the
// Changed Namespace List log (§5.14.1.4) that clears a namespace event.
// Protocol only; Controller keeps the requests outstanding and reads the logs.
#pragma once

#include <dmakit/drivers/nvme/commands.hpp>
#include <dmakit/drivers/nvme/log_pages.hpp>

#include <dmakit/support/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace dmakit::nvme {

// §5.2.1 Asynchronous Event Type (completion DW0 bits 2:0).
enum class AsyncEventType : std::uint8_t {
    error_status = 0,
    smart_health = 1,
    notice = 2,
    io_command_set = 6,
    vendor_specific = 7,
};

// Event information of a notice (Figure "Asynchronous Event Information - Notice").
namespace notice_info {
inline constexpr std::uint8_t namespace_attribute_changed = 0x00;
inline constexpr std::uint8_t firmware_activation_starting = 0x01;
inline constexpr std::uint8_t telemetry_log_changed = 0x02;
}  // namespace notice_info

// One AER completion, decoded.
struct AsyncEventCompletion {
    std::uint8_t type = 0;      // AsyncEventType value (others are reserved)
    std::uint8_t info = 0;      // bits 15:8
    std::uint8_t log_page = 0;  // bits 23:16: the log that clears the event
    [[nodiscard]] static constexpr AsyncEventCompletion decode(std::uint32_t dw0) noexcept {
        return {static_cast<std::uint8_t>(dw0 & 0x7u), static_cast<std::uint8_t>((dw0 >> 8) & 0xffu),
                static_cast<std::uint8_t>((dw0 >> 16) & 0xffu)};
    }
    [[nodiscard]] constexpr std::uint32_t encode() const noexcept {
        return std::uint32_t{type} | std::uint32_t{info} << 8 | std::uint32_t{log_page} << 16;
    }
};

// "SMART / health: temperature threshold", "notice: namespace attribute changed", ...
[[nodiscard]] std::string async_event_name(AsyncEventCompletion e);

// What the driver hands to the callback for each event, after it read the log page.
struct AsyncEvent {
    AsyncEventCompletion raw;
    std::string description;  // async_event_name(raw)
    // Namespace attribute changed: the NSIDs the Changed Namespace List named
    // (empty when it said more than 1024 changed: every namespace was rescanned).
    std::vector<std::uint32_t> changed_namespaces;
    std::optional<SmartLog> smart;  // SMART / health events: the log that cleared it
    // Set when reading or parsing the clearing log page failed (the event is
    // still delivered; the controller may report it again).
    std::string log_error;
};
using AsyncEventCallback = void (*)(void* user, const AsyncEvent& event) noexcept;

// §5.2 Asynchronous Event Request: no fields besides the opcode.
[[nodiscard]] SubmissionEntry async_event_request();

// §5.21.1.11 Asynchronous Event Configuration, CDW11: every SMART / health
// critical warning (bits 7:0), namespace attribute notices (bit 8) and
// firmware activation notices (bit 9).
inline constexpr std::uint32_t async_event_config_all = 0xffu | 1u << 8 | 1u << 9;
[[nodiscard]] SubmissionEntry set_async_event_config(std::uint32_t cdw11 = async_event_config_all);

// Bytes to read of the log page that clears an event, at most `limit`:
// Error Information (`error_entries` 64-byte entries), SMART and Firmware
// Slot (512), Changed Namespace List (4096), anything else 512.
[[nodiscard]] std::uint32_t clearing_log_bytes(std::uint8_t log_page, std::uint32_t error_entries,
                                               std::uint32_t limit) noexcept;

// §5.14.1.4 Changed Namespace List: up to 1024 NSIDs, ended by 0; a first
// entry of FFFFFFFFh means more than 1024 changed (`overflow`). Rejects an
// FFFFFFFFh after the first entry and a buffer shorter than 4096 bytes.
struct ChangedNamespaces {
    std::vector<std::uint32_t> nsids;
    bool overflow = false;
};
[[nodiscard]] Result<ChangedNamespaces> parse_changed_namespace_list(std::span<const std::byte> data);

}  // namespace dmakit::nvme
