#include "doctor.hpp"
#include "hugepages.hpp"

#include <dmakit/mem/buddy.hpp>
#include <dmakit/pci/binding.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/support/number_text.hpp>
#include <dmakit/support/text_file.hpp>
#include <dmakit/vfio/memlock.hpp>

#include <algorithm>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace dmakit::tool {
namespace fs = std::filesystem;
namespace {

CheckResult ok(std::string name, std::string detail) {
    return {CheckStatus::ok, std::move(name), std::move(detail), {}};
}
CheckResult warn(std::string name, std::string detail, std::string fix) {
    return {CheckStatus::warn, std::move(name), std::move(detail), std::move(fix)};
}
CheckResult fail(std::string name, std::string detail, std::string fix) {
    return {CheckStatus::fail, std::move(name), std::move(detail), std::move(fix)};
}

std::vector<std::string> entries(const std::string& folder) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(folder, ec)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

bool exists(const std::string& path) {
    std::error_code ec;
    return fs::exists(path, ec);
}

std::string join(const std::vector<std::string>& words) {
    std::string text;
    for (const auto& word : words) text += (text.empty() ? "" : ", ") + word;
    return text;
}

// The kernel command line's words.
std::vector<std::string> cmdline_words(const std::string& proc_root) {
    std::vector<std::string> words;
    auto text = read_trimmed(proc_root + "/cmdline");
    if (!text.ok()) return words;
    std::string word;
    for (char c : *text + ' ') {
        if (c == ' ' || c == '\n' || c == '\0') {
            if (!word.empty()) words.push_back(word);
            word.clear();
        } else {
            word += c;
        }
    }
    return words;
}

bool has_word(const std::vector<std::string>& words, std::string_view word) {
    return std::find(words.begin(), words.end(), word) != words.end();
}

constexpr std::string_view kGrubHint =
    " on the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)";

CheckResult check_iommu(const DoctorInputs& in) {
    const std::string name = "IOMMU";
    const auto units = entries(in.sysfs_root + "/class/iommu");
    const auto groups = entries(in.sysfs_root + "/kernel/iommu_groups");
    if (!groups.empty()) {
        return ok(name, "on: " + (units.empty() ? std::string("no unit listed in /class/iommu") : join(units)) +
                            "; " + std::to_string(groups.size()) + " IOMMU groups");
    }
    const auto words = cmdline_words(in.proc_root);
    const std::string tables = in.sysfs_root + "/firmware/acpi/tables/";
    const bool dmar = exists(tables + "DMAR");
    const bool ivrs = exists(tables + "IVRS");
    for (std::string_view off : {"intel_iommu=off", "amd_iommu=off", "iommu=off"}) {
        if (has_word(words, off)) {
            return fail(name, "off: no IOMMU groups, and the kernel was booted with " + std::string(off),
                        "remove " + std::string(off) + std::string(kGrubHint));
        }
    }
    if (dmar) {
        return fail(name, "off: the firmware has a DMAR table (Intel VT-d) but the kernel made no IOMMU groups",
                    "add intel_iommu=on" + std::string(kGrubHint));
    }
    if (ivrs) {
        return fail(name, "off: the firmware has an IVRS table (AMD-Vi) but the kernel made no IOMMU groups",
                    "add amd_iommu=on iommu=pt" + std::string(kGrubHint) + ", and check AMD-Vi/IOMMU in the firmware setup");
    }
    return fail(name, "off: no IOMMU groups and no DMAR or IVRS ACPI table",
                "turn on VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup, then add intel_iommu=on (Intel)" +
                    std::string(kGrubHint) + "; in QEMU: -machine q35 -device intel-iommu,intremap=on");
}

// Interrupt remapping: without it a device may forge interrupts, and VFIO
// refuses to attach a group (vfio_iommu_type1 "No interrupt remapping
// support") unless allow_unsafe_interrupts is set. The kernel log says it
// for sure but needs root; /proc/interrupts names the irq chips: remapped
// ones are "IR-PCI-MSI", "IR-IO-APIC".
CheckResult check_interrupt_remapping(const DoctorInputs& in) {
    const std::string name = "interrupt remapping";
    const auto words = cmdline_words(in.proc_root);
    const auto unsafe = read_trimmed(in.sysfs_root + "/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts");
    const bool allow_unsafe = unsafe.ok() && (*unsafe == "Y" || *unsafe == "1");
    const std::string fix_on = "turn on interrupt remapping (part of VT-d/AMD-Vi in the firmware setup; do not boot "
                               "with intremap=off; QEMU: -device intel-iommu,intremap=on)";
    auto remapping_off = [&](const std::string& why) {
        if (allow_unsafe) {
            return warn(name, why + "; VFIO accepts it only because vfio_iommu_type1 allow_unsafe_interrupts=Y, "
                                    "so a device can forge interrupts",
                        fix_on);
        }
        return fail(name, why + "; VFIO refuses to attach IOMMU groups without it", fix_on +
                                                                                    ", or, accepting that a device "
                                                                                    "may forge interrupts: modprobe "
                                                                                    "vfio_iommu_type1 "
                                                                                    "allow_unsafe_interrupts=1");
    };
    if (has_word(words, "intremap=off") || has_word(words, "intel_iommu=off")) {
        return remapping_off("off: the kernel was booted with " +
                             std::string(has_word(words, "intremap=off") ? "intremap=off" : "intel_iommu=off"));
    }
    auto interrupts = read_text_file(in.proc_root + "/interrupts");
    if (interrupts.ok()) {
        if (interrupts->find("IR-") != std::string::npos) {
            return ok(name, "on (remapped irq chips, IR-*, in /proc/interrupts)");
        }
        if (interrupts->find("PCI-MSI") != std::string::npos || interrupts->find("IO-APIC") != std::string::npos) {
            return remapping_off("off: /proc/interrupts shows MSI and IO-APIC chips without IR-");
        }
    }
    return warn(name, "cannot be determined: /proc/interrupts names no MSI or IO-APIC chip, and the kernel log "
                      "needs root",
                "check as root: dmesg | grep -i 'remapping'");
}

CheckResult check_vfio_pci(const DoctorInputs& in) {
    const std::string name = "vfio-pci";
    const std::string driver = in.sysfs_root + "/bus/pci/drivers/vfio-pci";
    if (exists(driver)) return ok(name, "loaded (" + driver + ")");
    const std::string module = exists(in.sysfs_root + "/module/vfio_pci") ? "the vfio_pci module is present but "
                                                                              "its driver is not registered"
                                                                            : "not loaded";
    return fail(name, module + " (no " + driver + ")",
                "modprobe vfio-pci (at every boot: echo vfio-pci > /etc/modules-load.d/vfio-pci.conf)");
}

std::string dev_path(const DoctorInputs& in, const std::string& node) {
    return in.proc_root + "/self/root/dev/" + node;
}

// Whether `caller` may open the node read-write, by its owner, group and mode
// (root may open anything).
bool may_open(const struct stat& st, const Caller& caller) {
    if (caller.uid == 0) return true;
    constexpr mode_t rw_user = S_IRUSR | S_IWUSR, rw_group = S_IRGRP | S_IWGRP, rw_other = S_IROTH | S_IWOTH;
    if (st.st_uid == caller.uid) return (st.st_mode & rw_user) == rw_user;
    const bool in_group = st.st_gid == caller.gid ||
                          std::find(caller.groups.begin(), caller.groups.end(), st.st_gid) != caller.groups.end();
    if (in_group) return (st.st_mode & rw_group) == rw_group;
    return (st.st_mode & rw_other) == rw_other;
}

std::string mode_text(const struct stat& st) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return "owner uid " + std::to_string(st.st_uid) + ", gid " + std::to_string(st.st_gid) + ", mode " + buffer;
}

CheckResult check_container_node(const DoctorInputs& in) {
    const std::string name = "/dev/vfio/vfio";
    struct stat st {};
    if (::stat(dev_path(in, "vfio/vfio").c_str(), &st) != 0) {
        return fail(name, "missing: the VFIO core is not loaded", "modprobe vfio-pci (it loads vfio)");
    }
    if (!may_open(st, in.caller)) {
        return fail(name, "not readable and writable by uid " + std::to_string(in.caller.uid) + " (" + mode_text(st) + ")",
                    "chmod 0666 /dev/vfio/vfio (the kernel's default: the container grants nothing by itself)");
    }
    return ok(name, "present, usable by uid " + std::to_string(in.caller.uid));
}

CheckResult check_dma_entry_limit(const DoctorInputs& in) {
    const std::string name = "VFIO dma_entry_limit";
    constexpr std::uint64_t kDefault = 65535;  // vfio_iommu_type1.c, dma_entry_limit
    const std::string path = in.sysfs_root + "/module/vfio_iommu_type1/parameters/dma_entry_limit";
    auto text = read_trimmed(path);
    if (!text.ok()) {
        return fail(name, "vfio_iommu_type1 is not loaded (no " + path + "); VFIO containers have no IOMMU driver",
                    "modprobe vfio_iommu_type1");
    }
    auto limit = parse_integer<std::uint64_t>(*text);
    if (!limit) return warn(name, "unreadable: '" + *text + "' in " + path, "modprobe -r vfio_iommu_type1 && modprobe vfio_iommu_type1");
    const std::string raise = "modprobe vfio_iommu_type1 dma_entry_limit=" + std::to_string(kDefault) +
                              " (or more; options vfio_iommu_type1 dma_entry_limit=N in /etc/modprobe.d/ to keep it)";
    if (*limit < kDefault) {
        return warn(name, std::to_string(*limit) + " mappings per container, below the default " +
                              std::to_string(kDefault) + ": the strict IOMMU policy maps every buffer on its own",
                    raise);
    }
    return ok(name, std::to_string(*limit) + " mappings per container (one per pool region, or per buffer under "
                                             "the strict policy)");
}

CheckResult check_address_width(const DoctorInputs& in) {
    const std::string name = "IOMMU address width";
    std::optional<unsigned> narrowest;
    std::string units;
    for (const auto& unit : entries(in.sysfs_root + "/class/iommu")) {
        auto text = read_trimmed(in.sysfs_root + "/class/iommu/" + unit + "/intel-iommu/cap");
        if (!text.ok()) continue;
        auto cap = parse_integer<std::uint64_t>(*text, 16);
        auto width = cap ? vtd_address_width(*cap) : std::nullopt;
        if (!width) continue;
        units += (units.empty() ? "" : ", ") + unit + " " + std::to_string(*width);
        narrowest = std::min(narrowest.value_or(*width), *width);
    }
    if (!narrowest) {
        return warn(name, "unknown: no VT-d capability register at " + in.sysfs_root +
                              "/class/iommu/*/intel-iommu/cap (AMD-Vi and other IOMMUs do not show it); VFIO "
                              "reports the usable IOVA ranges when a program opens a device, and dmakit keeps to them",
                    "");
    }
    const std::string reach = format_byte_size(std::uint64_t{1} << *narrowest);
    const std::string detail = std::to_string(*narrowest) + " bits (" + units + "; VT-d capability register MGAW/SAGAW): "
                               "IOVAs below " + reach;
    if (*narrowest < 39) {
        return warn(name, detail + ", narrower than any current IOMMU; pools over " + reach + " cannot be mapped",
                    "keep the pool window (pool_dma_mask) below " + reach);
    }
    return ok(name, detail + (*narrowest < 48 ? "; enough for dmakit's pools (below 4 GiB by default, at most 1 TiB; "
                                                "QEMU widens it with intel-iommu,aw-bits=48)"
                                              : ""));
}

CheckResult check_memlock(const DoctorInputs& in) {
    const std::string name = "locked-memory limit";
    const std::string pins = format_byte_size(in.pool_bytes);
    auto state = vfio::read_memlock_state(in.proc_root);
    if (!state.ok()) {
        return warn(name, "cannot be determined: " + state.error().message(), "check it with: ulimit -l");
    }
    if (state->cap_ipc_lock) {
        return ok(name, "no limit applies: this process has CAP_IPC_LOCK (root); run doctor as the user who will "
                        "run the program to check theirs");
    }
    if (!state->soft_limit) return ok(name, "unlimited");
    auto verdict = vfio::check_memlock(*state, in.pool_bytes, "the DMA pool");
    const std::string found = format_byte_size(*state->soft_limit) +
                              (state->locked != 0 ? " (" + format_byte_size(state->locked) + " locked already)" : "");
    if (verdict.ok()) return ok(name, found + ", enough for the " + pins + " the DMA pool pins first");
    return fail(name, found + ", but the DMA pool pins " + pins + " when its first region is mapped (VFIO charges "
                          "every mapped page to RLIMIT_MEMLOCK)",
                vfio::memlock_remedy(*state, in.pool_bytes));
}

CheckResult check_hugepages(const DoctorInputs& in, const std::vector<int>& device_nodes) {
    const std::string name = "hugepages";
    auto pools = HugepageSysfs(in.sysfs_root, in.proc_root).read();
    const std::string reserve = "dmakit hugepages --reserve " + std::to_string(in.pool_bytes >> 21);
    if (!pools.ok() || pools->empty()) {
        return warn(name, "none: the DMA pool falls back to 4 KiB pages (slower: more TLB misses and IOMMU entries)",
                    reserve);
    }
    std::string detail;
    bool enough = false;
    std::vector<std::string> short_nodes;
    for (const auto& pool : *pools) {
        detail += (detail.empty() ? "" : "; ") + format_hugepage_size(pool.size_kb) + ": " +
                  std::to_string(pool.free) + " free of " + std::to_string(pool.total);
        for (const auto& node : pool.nodes) {
            detail += (&node == &pool.nodes.front() ? " (" : ", ") + std::string("node") +
                      std::to_string(node.node) + " " + std::to_string(node.free) + " of " + std::to_string(node.total);
            if (&node == &pool.nodes.back()) detail += ")";
        }
        if (pool.free * pool.size_kb * 1024 >= in.pool_bytes) enough = true;
        // A device's node should have the pool's memory: DMA across nodes is slower.
        if (pool.size_kb != 2048) continue;
        for (int wanted : device_nodes) {
            auto it = std::find_if(pool.nodes.begin(), pool.nodes.end(),
                                   [&](const NodeHugepages& n) { return n.node == wanted; });
            if (it != pool.nodes.end() && it->free * pool.size_kb * 1024 < in.pool_bytes) {
                short_nodes.push_back(std::to_string(wanted));
            }
        }
    }
    if (!enough) {
        return warn(name, detail + "; fewer than the " + format_byte_size(in.pool_bytes) +
                              " the DMA pool takes first: it falls back to 4 KiB pages (slower)",
                    reserve);
    }
    if (!short_nodes.empty()) {
        std::sort(short_nodes.begin(), short_nodes.end());
        short_nodes.erase(std::unique(short_nodes.begin(), short_nodes.end()), short_nodes.end());
        return warn(name, detail + "; the devices' NUMA node " + join(short_nodes) + " has fewer than " +
                              format_byte_size(in.pool_bytes) + " free",
                    reserve + " --node " + short_nodes.front());
    }
    return ok(name, detail);
}

// The driver, group viability and /dev/vfio/N of one device.
void check_device(const DoctorInputs& in, const pci::Sysfs& sysfs, const pci::PciAddress& address,
                  std::vector<CheckResult>& out) {
    const std::string bdf = address.to_string();
    if (auto present = sysfs.require_device(address); !present.ok()) {
        out.push_back(fail(bdf, present.error().message(), "name a device that dmakit list shows"));
        return;
    }
    auto driver = sysfs.driver(address);
    const std::string bound = driver.ok() && *driver ? **driver : "no driver";
    if (bound == pci::vfio_pci_driver) {
        out.push_back(ok(bdf + " driver", "vfio-pci"));
    } else {
        out.push_back(fail(bdf + " driver", "bound to " + bound + ", not vfio-pci", "dmakit bind " + bdf));
    }
    auto group = sysfs.iommu_group(address);
    if (!group.ok() || !*group) {
        out.push_back(fail(bdf + " IOMMU group", "none: the IOMMU does not cover this device, so VFIO cannot use it",
                           "turn the IOMMU on (see the IOMMU line)"));
        return;
    }
    const std::string number = std::to_string(**group);
    auto members = sysfs.group_members(**group);
    if (!members.ok()) {
        out.push_back(warn(bdf + " IOMMU group " + number, "cannot list it: " + members.error().message(), ""));
        return;
    }
    // VFIO's rule (pci/binding.hpp, driver_allowed_in_vfio_group): every
    // member on vfio-pci, pci-stub or no driver; bridges may keep theirs.
    std::string in_the_way;
    std::string bind_all = "dmakit bind " + bdf;
    for (const auto& member : *members) {
        if (member == address) continue;
        auto member_driver = sysfs.driver(member);
        auto class_code = sysfs.read_hex_attribute(member, "class");
        if (!member_driver.ok() || !class_code.ok()) continue;
        if (pci::driver_allowed_in_vfio_group(*member_driver, *class_code)) continue;
        in_the_way += (in_the_way.empty() ? "" : ", ") + member.to_string() + " on " + **member_driver;
        bind_all += " " + member.to_string();
    }
    const std::string size = std::to_string(members->size()) + (members->size() == 1 ? " member" : " members");
    if (!in_the_way.empty()) {
        out.push_back(fail(bdf + " IOMMU group " + number,
                           "not viable (" + size + "): " + in_the_way +
                               "; VFIO needs every member on vfio-pci, pci-stub or no driver (bridges may keep theirs)",
                           bind_all + " (or move the card to a slot with its own group)"));
        return;
    }
    out.push_back(ok(bdf + " IOMMU group " + number, "viable (" + size + ")"));
    const std::string node = "/dev/vfio/" + number;
    struct stat st {};
    if (::stat(dev_path(in, "vfio/" + number).c_str(), &st) != 0) {
        out.push_back(fail(node, "missing: no device of group " + number + " is bound to vfio-pci",
                           "dmakit bind " + bdf));
        return;
    }
    if (!may_open(st, in.caller)) {
        out.push_back(fail(node, "uid " + std::to_string(in.caller.uid) + " may not open it (" + mode_text(st) + ")",
                           "as root: dmakit bind --user " + std::to_string(in.caller.uid) + " " + bdf +
                               " (or run the program as root)"));
        return;
    }
    out.push_back(ok(node, "usable by uid " + std::to_string(in.caller.uid) + " (" + mode_text(st) + ")"));
}

}  // namespace

Caller current_caller() {
    Caller caller{::geteuid(), ::getegid(), {}};
    const int count = ::getgroups(0, nullptr);
    if (count > 0) {
        caller.groups.resize(static_cast<std::size_t>(count));
        const int got = ::getgroups(count, caller.groups.data());
        caller.groups.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
    }
    return caller;
}

std::optional<unsigned> vtd_address_width(std::uint64_t cap) {
    const unsigned mgaw = static_cast<unsigned>((cap >> 16) & 0x3f) + 1;
    const unsigned sagaw = static_cast<unsigned>((cap >> 8) & 0x1f);
    // SAGAW bit n: an n+2-level table, 30 + 9n bits (bit 1: 39, bit 2: 48, bit 3: 57).
    std::optional<unsigned> widest;
    for (unsigned bit = 0; bit < 5; ++bit) {
        if ((sagaw >> bit) & 1) widest = 30 + 9 * bit;
    }
    if (!widest) return std::nullopt;
    return std::min(*widest, mgaw);
}

std::vector<CheckResult> run_doctor(const DoctorInputs& in, std::span<const pci::PciAddress> named) {
    std::vector<CheckResult> out;
    out.push_back(check_iommu(in));
    out.push_back(check_interrupt_remapping(in));
    out.push_back(check_vfio_pci(in));
    out.push_back(check_container_node(in));
    out.push_back(check_dma_entry_limit(in));
    out.push_back(check_address_width(in));
    out.push_back(check_memlock(in));

    const pci::Sysfs sysfs(in.sysfs_root);
    std::vector<pci::PciAddress> devices(named.begin(), named.end());
    if (devices.empty()) {
        auto all = sysfs.list_devices();
        for (const auto& address : all.ok() ? *all : std::vector<pci::PciAddress>{}) {
            auto driver = sysfs.driver(address);
            if (driver.ok() && *driver && **driver == pci::vfio_pci_driver) devices.push_back(address);
        }
    }
    std::vector<int> nodes;
    for (const auto& address : devices) {
        auto node = sysfs.numa_node(address);
        if (node.ok() && *node) nodes.push_back(**node);
    }
    out.push_back(check_hugepages(in, nodes));

    if (devices.empty()) {
        out.push_back(warn("devices", "none bound to vfio-pci, and none named", "dmakit bind BDF (see: dmakit list)"));
    }
    for (const auto& address : devices) check_device(in, sysfs, address, out);
    return out;
}

}  // namespace dmakit::tool
