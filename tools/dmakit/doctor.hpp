// dmakit doctor: the checks behind the command, one verdict per check.
//
// Each check reads only what an ordinary user may read (sysfs, procfs,
// stat() of device nodes), says what it found and, when something is wrong,
// the command or setting that fixes it. Where the answer needs root (the
// kernel log), it says it cannot tell rather than guess.
#pragma once

#include <dmakit/pci/address.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>
#include <sys/types.h>

namespace dmakit::tool {

enum class CheckStatus { ok, warn, fail };

struct CheckResult {
    CheckStatus status = CheckStatus::ok;
    std::string name;    // "IOMMU", "0000:00:04.0 IOMMU group", ...
    std::string detail;  // what was found
    std::string fix;     // what to do; empty when nothing is to be done
};

// Who asks: /dev/vfio/N must be readable and writable by this identity.
struct Caller {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
};
[[nodiscard]] Caller current_caller();

struct DoctorInputs {
    std::string sysfs_root = "/sys";
    std::string proc_root = "/proc";  // PROC/self/root/dev holds the device nodes
    Caller caller;
    std::uint64_t pool_bytes = 0;     // what the DMA pool pins first (its region size)
};

// Every check, in order: IOMMU, interrupt remapping, vfio-pci, the VFIO
// container node, dma_entry_limit, the IOMMU's address width, the
// locked-memory limit, hugepages, then per device: driver, IOMMU group
// viability, /dev/vfio/N. With no device named, the devices bound to
// vfio-pci are checked.
[[nodiscard]] std::vector<CheckResult> run_doctor(const DoctorInputs& inputs,
                                                  std::span<const pci::PciAddress> devices);

// The address width a VT-d unit translates, from its Capability Register
// (VT-d spec 11.4.2): the widest width SAGAW (bits 12:8) supports, capped by
// MGAW (bits 21:16, width - 1). Nullopt when SAGAW names no width.
[[nodiscard]] std::optional<unsigned> vtd_address_width(std::uint64_t cap);

}  // namespace dmakit::tool
