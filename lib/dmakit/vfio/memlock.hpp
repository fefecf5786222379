// The locked-memory limit against what VFIO will pin.
//
// VFIO type1 pins every page it maps and charges it to the process's
// locked_vm, which may not exceed RLIMIT_MEMLOCK unless the process has
// CAP_IPC_LOCK (drivers/vfio/vfio_iommu_type1.c, vfio_pin_pages_remote and
// vfio_lock_acct; root has the capability). A limit too small fails the map
// with a bare ENOMEM deep inside the first allocation; checking it when the
// domain is opened says what to raise, and how, before anything is pinned.
//
// Everything is read from PROC/self (limits: "Max locked memory"; status:
// CapEff, VmLck), so the `dmakit doctor` tests can use a fake tree.
#pragma once

#include <dmakit/support/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dmakit::vfio {

struct MemlockState {
    std::optional<std::uint64_t> soft_limit;  // bytes; nullopt: unlimited
    std::optional<std::uint64_t> hard_limit;  // bytes; nullopt: unlimited
    std::uint64_t locked = 0;                 // VmLck: already charged (mlock, other pins)
    bool cap_ipc_lock = false;                // CapEff bit 14: no limit applies
};

// Reads PROC/self/limits and PROC/self/status. EINVAL names the file and line
// it could not understand.
[[nodiscard]] Result<MemlockState> read_memlock_state(const std::string& proc_root = "/proc");

// What to do when `bytes` more cannot be pinned: the limit to set, and how
// (ulimit -l, limits.conf, systemd LimitMEMLOCK, prlimit, CAP_IPC_LOCK).
[[nodiscard]] std::string memlock_remedy(const MemlockState& state, std::uint64_t bytes);

// Fine when `bytes` more can be pinned; otherwise ENOMEM saying the limit,
// what `what` pins, and how to raise the limit (ulimit -l, limits.conf,
// systemd LimitMEMLOCK, prlimit) or bypass it (CAP_IPC_LOCK).
[[nodiscard]] Status check_memlock(const MemlockState& state, std::uint64_t bytes, std::string_view what);

}  // namespace dmakit::vfio
