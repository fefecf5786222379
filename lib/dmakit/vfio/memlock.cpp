#include <dmakit/vfio/memlock.hpp>

#include <dmakit/support/number_text.hpp>
#include <dmakit/support/text_file.hpp>

#include <cerrno>
#include <sstream>

namespace dmakit::vfio {
namespace {

constexpr unsigned kCapIpcLock = 14;  // include/uapi/linux/capability.h

// One limit column of PROC/self/limits: a byte count or "unlimited".
Result<std::optional<std::uint64_t>> parse_limit(std::string_view word, const std::string& path) {
    if (word == "unlimited") return std::optional<std::uint64_t>{};
    auto value = parse_integer<std::uint64_t>(word);
    if (!value) return Error(EINVAL, path + ": cannot read the locked-memory limit '" + std::string(word) + "'");
    return std::optional<std::uint64_t>(*value);
}

std::string limit_text(const std::optional<std::uint64_t>& limit) {
    return limit ? format_byte_size(*limit) : std::string("unlimited");
}

}  // namespace

Result<MemlockState> read_memlock_state(const std::string& proc_root) {
    MemlockState state;
    const std::string limits_path = proc_root + "/self/limits";
    DMAKIT_ASSIGN_OR_RETURN(std::string limits, read_text_file(limits_path));
    std::istringstream lines(limits);
    bool found = false;
    for (std::string line; std::getline(lines, line);) {
        constexpr std::string_view name = "Max locked memory";
        if (!line.starts_with(name)) continue;
        std::istringstream words(line.substr(name.size()));
        std::string soft;
        std::string hard;
        words >> soft >> hard;
        DMAKIT_ASSIGN_OR_RETURN(state.soft_limit, parse_limit(soft, limits_path));
        DMAKIT_ASSIGN_OR_RETURN(state.hard_limit, parse_limit(hard, limits_path));
        found = true;
    }
    if (!found) return Error(EINVAL, limits_path + " has no 'Max locked memory' line");

    const std::string status_path = proc_root + "/self/status";
    DMAKIT_ASSIGN_OR_RETURN(std::string status, read_text_file(status_path));
    std::istringstream fields(status);
    for (std::string line; std::getline(fields, line);) {
        std::istringstream words(line);
        std::string key;
        std::string value;
        words >> key >> value;
        if (key == "CapEff:") {
            auto caps = parse_integer<std::uint64_t>(value, 16);
            if (!caps) return Error(EINVAL, status_path + ": cannot read CapEff '" + value + "'");
            state.cap_ipc_lock = ((*caps >> kCapIpcLock) & 1) != 0;
        } else if (key == "VmLck:") {
            auto kib = parse_integer<std::uint64_t>(value);
            if (!kib) return Error(EINVAL, status_path + ": cannot read VmLck '" + value + "'");
            state.locked = *kib << 10;
        }
    }
    return state;
}

std::string memlock_remedy(const MemlockState& state, std::uint64_t bytes) {
    // What the limit must be, in whole MiB: ulimit -l and limits.conf count KiB.
    const std::uint64_t need_mib = (state.locked + bytes + (1u << 20) - 1) >> 20;
    const std::string kib = std::to_string(need_mib << 10);
    const bool soft_can_rise = !state.hard_limit || *state.hard_limit >= (need_mib << 20);
    return "raise it to at least " + std::to_string(need_mib) + " MiB: ulimit -l " + kib +
           " in the shell that starts the program" +
           (soft_can_rise ? "" : " (above the hard limit " + limit_text(state.hard_limit) + ", so as root first)") +
           ", or 'USER - memlock " + kib + "' in /etc/security/limits.conf (next login), or LimitMEMLOCK=" +
           std::to_string(need_mib) + "M in its systemd unit, or prlimit --memlock=" +
           std::to_string(need_mib << 20) + " -- COMMAND; or run it with CAP_IPC_LOCK (root has it)";
}

Status check_memlock(const MemlockState& state, std::uint64_t bytes, std::string_view what) {
    if (state.cap_ipc_lock || !state.soft_limit) return {};
    const std::uint64_t limit = *state.soft_limit;
    if (state.locked <= limit && bytes <= limit - state.locked) return {};
    return Error(ENOMEM, "the locked-memory limit (RLIMIT_MEMLOCK, ulimit -l) is " + format_byte_size(limit) +
                             (state.locked != 0 ? " with " + format_byte_size(state.locked) + " already locked" : "") +
                             ", but " + std::string(what) + " pins " + format_byte_size(bytes) +
                             " (VFIO charges every mapped page to it); " + memlock_remedy(state, bytes));
}

}  // namespace dmakit::vfio
