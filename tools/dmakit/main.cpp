// dmakit: list PCI devices, move them to vfio-pci and back, manage hugepages,
// check a machine's setup.
//
// The library never prints; this program is where errors become one line on
// stderr ("dmakit: error: ...") and an exit code (1 runtime, 2 usage).
#include "cli.hpp"

#include <dmakit/config.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr std::string_view main_help =
    "usage: dmakit COMMAND [ARGS...]\n"
    "\n"
    "Prepare PCI devices for user-space drivers over VFIO.\n"
    "\n"
    "commands:\n"
    "  list [--json] [-v]            every PCI device: ids, names, driver, IOMMU group, NUMA node\n"
    "                                (-v: and its PCI capabilities)\n"
    "  bind [--force] BDF...         move devices to vfio-pci (checks their IOMMU groups and\n"
    "                                refuses devices the host is using)\n"
    "  unbind BDF...                 give devices back to their kernel drivers\n"
    "  hugepages [--reserve N] [--size 2M|1G] [--node N] [--json]\n"
    "                                show or reserve hugepages per size and NUMA node\n"
    "  doctor [--json] [BDF...]      check the IOMMU, VFIO, permissions, memlock limit and\n"
    "                                hugepages, each problem with its fix\n"
    "\n"
    "BDF is a PCI address such as 0000:00:04.0 or 00:04.0.\n"
    "Run 'dmakit COMMAND --help' for a command's options. bind, unbind and\n"
    "hugepages --reserve need root.\n";

}  // namespace

int main(int argc, char** argv) {
    using namespace dmakit::tool;
    const Io io{std::cout, std::cerr};
    std::vector<std::string> args(argv + 1, argv + argc);

    GlobalOptions options;
    if (auto error = extract_global_options(args, options)) return usage_error(io, *error, "");

    if (args.empty()) {
        std::cerr << main_help;
        return exit_usage;
    }
    const std::string command = args.front();
    args.erase(args.begin());
    if (command == "--help" || command == "-h" || command == "help") {
        std::cout << main_help;
        return exit_ok;
    }
    if (command == "--version") {
        std::cout << "dmakit " << DMAKIT_VERSION << '\n';
        return exit_ok;
    }

    ArgReader reader(std::move(args));
    if (command == "list") return run_list(options, std::move(reader), io);
    if (command == "bind") return run_bind(options, std::move(reader), io);
    if (command == "unbind") return run_unbind(options, std::move(reader), io);
    if (command == "hugepages") return run_hugepages(options, std::move(reader), io);
    if (command == "doctor") return run_doctor(options, std::move(reader), io);
    if (command.starts_with("-")) return usage_error(io, "unknown option '" + command + "'", "");
    return usage_error(io, "unknown command '" + command + "'", "");
}
