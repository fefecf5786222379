#include <dmakit/drivers/nvme/async_events.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace dmakit::nvme {

std::string async_event_name(AsyncEventCompletion e) {
    const std::string info = std::to_string(e.info);
    switch (static_cast<AsyncEventType>(e.type)) {
    case AsyncEventType::error_status:
        // §5.2.1 Figure "Asynchronous Event Information - Error Status".
        switch (e.info) {
        case 0x00: return "error: write to an invalid doorbell register";
        case 0x01: return "error: invalid doorbell write value";
        case 0x02: return "error: diagnostic failure";
        case 0x03: return "error: persistent internal error";
        case 0x04: return "error: transient internal error";
        case 0x05: return "error: firmware image load error";
        default: return "error: information " + info;
        }
    case AsyncEventType::smart_health:
        switch (e.info) {
        case 0x00: return "SMART / health: NVM subsystem reliability";
        case 0x01: return "SMART / health: temperature threshold";
        case 0x02: return "SMART / health: spare below threshold";
        default: return "SMART / health: information " + info;
        }
    case AsyncEventType::notice:
        switch (e.info) {
        case notice_info::namespace_attribute_changed: return "notice: namespace attribute changed";
        case notice_info::firmware_activation_starting: return "notice: firmware activation starting";
        case notice_info::telemetry_log_changed: return "notice: telemetry log changed";
        case 0x03: return "notice: asymmetric namespace access change";
        case 0x04: return "notice: predictable latency event aggregate log change";
        case 0x05: return "notice: LBA status information alert";
        case 0x06: return "notice: endurance group event aggregate log page change";
        default: return "notice: information " + info;
        }
    case AsyncEventType::io_command_set: return "I/O command set specific: information " + info;
    case AsyncEventType::vendor_specific: return "vendor specific: information " + info;
    }
    return "reserved event type " + std::to_string(e.type) + ": information " + info;
}

SubmissionEntry async_event_request() {
    SubmissionEntry e;
    e.cdw0 = admin_opcode::async_event_request;
    return e;
}

SubmissionEntry set_async_event_config(std::uint32_t cdw11) {
    return set_features(feature::async_event_config, cdw11);
}

std::uint32_t clearing_log_bytes(std::uint8_t log_page, std::uint32_t error_entries, std::uint32_t limit) noexcept {
    std::uint64_t bytes = 512;
    if (log_page == log_page::error_information) bytes = std::uint64_t{std::max(error_entries, 1u)} * 64;
    if (log_page == log_page::changed_namespace_list) bytes = log_page::changed_namespace_list_size;
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(bytes, limit));
}

Result<ChangedNamespaces> parse_changed_namespace_list(std::span<const std::byte> data) {
    if (data.size() < log_page::changed_namespace_list_size) {
        return Error(EINVAL, "Changed Namespace List of " + std::to_string(data.size()) +
                                 " bytes is shorter than 4096 (NVMe 1.4 §5.14.1.4)");
    }
    std::uint32_t ids[1024];  // the device could rewrite the buffer while we read it
    std::memcpy(ids, data.data(), sizeof ids);
    ChangedNamespaces out;
    if (ids[0] == 0xffffffffu) {
        out.overflow = true;
        return out;
    }
    for (std::uint32_t id : ids) {
        if (id == 0) break;
        if (id == 0xffffffffu) {
            return Error(EPROTO, "Changed Namespace List has NSID FFFFFFFFh after entry 0 (only the first entry may "
                                 "say that more than 1024 namespaces changed)");
        }
        out.nsids.push_back(id);
    }
    return out;
}

}  // namespace dmakit::nvme
