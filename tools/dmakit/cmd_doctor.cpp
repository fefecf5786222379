// dmakit doctor: is this machine ready for user-space drivers, and if not, what to do.
#include "cli.hpp"
#include "doctor.hpp"
#include <dmakit/support/json_writer.hpp>

#include <dmakit/mem/buddy.hpp>

#include <algorithm>

namespace dmakit::tool {
namespace {

constexpr std::string_view doctor_help =
    "usage: dmakit doctor [--json] [BDF...]\n"
    "\n"
    "Check what a user-space driver needs, one line per check (ok, warn or\n"
    "FAIL), each problem with its fix: the IOMMU (DMAR/AMD-Vi, intel_iommu=on),\n"
    "interrupt remapping, the vfio-pci driver, /dev/vfio/vfio, VFIO's\n"
    "dma_entry_limit, the IOMMU's address width, the locked-memory limit\n"
    "(RLIMIT_MEMLOCK) against what the DMA pool pins, free hugepages per NUMA\n"
    "node; and for each device (every device on vfio-pci when none is named):\n"
    "its driver, its IOMMU group's viability and /dev/vfio/N's permissions for\n"
    "the user running doctor. Run it as the user who will run the program.\n"
    "Exits 1 when a check fails, 0 otherwise.\n"
    "\n"
    "  --json   print a JSON array, one object per check: check, status (ok,\n"
    "           warn, fail), detail, fix (null when nothing is to be done)\n"
    "\n"
    "BDF is a PCI address such as 0000:00:04.0 or 00:04.0; see: dmakit list\n";

std::string_view status_word(CheckStatus status) {
    switch (status) {
        case CheckStatus::ok: return "ok";
        case CheckStatus::warn: return "warn";
        case CheckStatus::fail: return "FAIL";
    }
    return "?";
}

void print_lines(const std::vector<CheckResult>& checks, std::ostream& out) {
    for (const auto& check : checks) {
        std::string line = std::string(status_word(check.status));
        line.resize(5, ' ');
        line += check.name + ": " + check.detail;
        if (!check.fix.empty()) line += "; fix: " + check.fix;
        // One line per check, always: scripts grep for it.
        std::replace(line.begin(), line.end(), '\n', ' ');
        out << line << '\n';
    }
}

void print_json(const std::vector<CheckResult>& checks, std::ostream& out) {
    JsonWriter json(out);
    json.begin_array();
    for (const auto& check : checks) {
        json.begin_object();
        json.key("check").value(check.name);
        json.key("status").value(check.status == CheckStatus::fail ? "fail" : status_word(check.status));
        json.key("detail").value(check.detail);
        json.key("fix");
        if (check.fix.empty()) {
            json.null();
        } else {
            json.value(check.fix);
        }
        json.end_object();
    }
    json.end_array();
}

}  // namespace

int run_doctor(const GlobalOptions& options, ArgReader args, const Io& io) {
    constexpr std::string_view command = "doctor";
    bool json = false;
    std::vector<pci::PciAddress> addresses;
    while (!args.done()) {
        if (args.help()) {
            io.out << doctor_help;
            return exit_ok;
        }
        if (args.flag("--json")) {
            json = true;
            continue;
        }
        std::string arg = args.take();
        if (arg.starts_with("-")) return usage_error(io, "unknown option '" + arg + "' for doctor", command);
        auto address = pci::PciAddress::parse(arg);
        if (!address.ok()) return usage_error(io, address.error().message(), command);
        if (std::find(addresses.begin(), addresses.end(), *address) != addresses.end()) {
            return usage_error(io, address->to_string() + " is named twice", command);
        }
        addresses.push_back(*address);
    }

    DoctorInputs inputs;
    inputs.sysfs_root = options.sysfs_root;
    inputs.proc_root = options.proc_root;
    inputs.caller = current_caller();
    inputs.pool_bytes = mem::BuddyOptions{}.region_size;  // what PciDomain::open's pool maps first
    const auto checks = dmakit::tool::run_doctor(inputs, addresses);
    const bool passed = std::none_of(checks.begin(), checks.end(),
                                     [](const CheckResult& c) { return c.status == CheckStatus::fail; });
    if (json) {
        print_json(checks, io.out);
    } else {
        print_lines(checks, io.out);
    }
    return passed ? exit_ok : exit_failure;
}

}  // namespace dmakit::tool
