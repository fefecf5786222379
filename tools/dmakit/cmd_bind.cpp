// dmakit bind / unbind: move devices to vfio-pci and back.
#include "cli.hpp"

#include <dmakit/pci/binding.hpp>
#include <dmakit/support/number_text.hpp>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dmakit::tool {
namespace {

constexpr std::string_view bind_help =
    "usage: dmakit bind [--force] [--user USER] BDF...\n"
    "\n"
    "Move each device to vfio-pci: set its driver_override, unbind it from its\n"
    "current driver and probe it again, then check that vfio-pci took it.\n"
    "Refuses when another member of a device's IOMMU group is bound to a kernel\n"
    "driver (VFIO needs the whole group): bind those members too, in the same\n"
    "command. Needs root, the IOMMU on and the vfio-pci module loaded.\n"
    "\n"
    "Refuses, too, a device the host is using, saying what to do: a disk\n"
    "controller with a filesystem mounted from it (umount; by any device name,\n"
    "btrfs included), swap (swapoff), LVM/RAID/dm-crypt on it, a process\n"
    "holding its /dev node open (stop the process named), or the root\n"
    "filesystem; a NIC whose interface is up with an IPv4 or IPv6 address or a\n"
    "route (ip link set dev IFACE down); a PCI bridge; or a device whose IOMMU\n"
    "group holds such a member. Binding several devices is all or nothing: if\n"
    "one fails, those already moved go back to their drivers.\n"
    "\n"
    "  --force       bind even a device the host is using (it loses the device)\n"
    "  --user USER   then give each device's /dev/vfio/N to USER (a name or a\n"
    "                numeric uid): owner USER, mode 0600, so USER can run the\n"
    "                driver without root (it also needs a memlock limit: see\n"
    "                dmakit doctor). Lasts until the device is unbound or the\n"
    "                machine reboots\n"
    "\n"
    "BDF is a PCI address such as 0000:00:04.0 or 00:04.0; see: dmakit list\n";

constexpr std::string_view unbind_help =
    "usage: dmakit unbind BDF...\n"
    "\n"
    "Give each device back to the kernel: clear its driver_override, unbind it\n"
    "from vfio-pci and probe it again so its own driver (if any) takes it.\n"
    "Needs root.\n"
    "\n"
    "BDF is a PCI address such as 0000:00:04.0 or 00:04.0; see: dmakit list\n";

// The user `--user` names: a numeric uid (which needs no passwd entry: a
// container or chroot may have none) or a name from the password database.
struct Owner {
    uid_t uid = 0;
    std::string label;  // "uid 1000 (alice)" or "uid 1000"
};

Result<Owner> resolve_user(const std::string& text) {
    if (auto uid = parse_integer<std::uint32_t>(text); uid && *uid != static_cast<std::uint32_t>(-1)) {
        const passwd* entry = ::getpwuid(*uid);
        return Owner{*uid, "uid " + text + (entry != nullptr ? " (" + std::string(entry->pw_name) + ")" : "")};
    }
    errno = 0;
    const passwd* entry = text.empty() ? nullptr : ::getpwnam(text.c_str());
    if (entry == nullptr) {
        return Error(EINVAL, "--user: no user '" + text +
                                 "' in the password database; give an existing user name or a numeric uid "
                                 "(0 to 4294967294)");
    }
    return Owner{entry->pw_uid, "uid " + std::to_string(entry->pw_uid) + " (" + text + ")"};
}

// Gives the group's /dev/vfio/N to `owner`, mode 0600: VFIO asks nothing
// more of a user than opening that node (Documentation/driver-api/vfio.rst).
Result<std::string> give_group_node(const GlobalOptions& options, const pci::Sysfs& sysfs,
                                    const pci::PciAddress& address, const Owner& owner) {
    DMAKIT_ASSIGN_OR_RETURN(auto group, sysfs.iommu_group(address));
    if (!group) return Error(ENODEV, address.to_string() + " is in no IOMMU group, so it has no /dev/vfio node");
    const std::string node = "/dev/vfio/" + std::to_string(*group);
    // Read through PROC/self/root like the other device-node lookups, so a
    // fake --proc-root brings its own /dev.
    const std::string path = options.proc_root + "/self/root" + node;
    if (::chown(path.c_str(), owner.uid, static_cast<gid_t>(-1)) != 0 || ::chmod(path.c_str(), 0600) != 0) {
        return system_error(errno, "giving " + node + " to " + owner.label,
                            ::geteuid() != 0 ? "run as root" : "is the device bound to vfio-pci?");
    }
    return node;
}

int run_move(const GlobalOptions& options, ArgReader args, const Io& io, bool bind) {
    const std::string_view command = bind ? "bind" : "unbind";
    std::vector<pci::PciAddress> addresses;
    pci::BindOptions bind_options;
    std::optional<Owner> owner;
    bind_options.host.proc_root = options.proc_root;
    // The kernel's IPv4 addresses are this machine's; a fake --proc-root (a
    // test tree) describes another one, which has none to offer.
    std::error_code ec;
    if (!std::filesystem::equivalent(options.proc_root, "/proc", ec)) {
        bind_options.host.ipv4_addresses = [](const std::string&) -> Result<std::vector<std::string>> {
            return std::vector<std::string>{};
        };
    }
    while (!args.done()) {
        if (args.help()) {
            io.out << (bind ? bind_help : unbind_help);
            return exit_ok;
        }
        if (bind && args.flag("--force")) {
            bind_options.force = true;
            continue;
        }
        std::string value;
        std::string error;
        if (bind && args.option("--user", value, error)) {
            if (!error.empty()) return usage_error(io, error, command);
            auto resolved = resolve_user(value);
            if (!resolved.ok()) return usage_error(io, resolved.error().message(), command);
            owner = *resolved;
            continue;
        }
        std::string arg = args.take();
        if (arg.starts_with("-")) {
            return usage_error(io, "unknown option '" + arg + "' for " + std::string(command), command);
        }
        auto address = pci::PciAddress::parse(arg);
        if (!address.ok()) return usage_error(io, address.error().message(), command);
        if (std::find(addresses.begin(), addresses.end(), *address) != addresses.end()) {
            return usage_error(io, address->to_string() + " is named twice", command);
        }
        addresses.push_back(*address);
    }
    if (addresses.empty()) {
        return usage_error(io, std::string(command) + " needs at least one PCI address", command);
    }

    pci::Binder binder{pci::Sysfs(options.sysfs_root)};
    std::vector<std::optional<std::string>> before;
    for (const auto& address : addresses) {
        auto driver = binder.sysfs().driver(address);
        before.push_back(driver.ok() ? *driver : std::nullopt);
    }

    auto status = bind ? binder.bind_to_vfio(addresses, bind_options) : binder.unbind_from_vfio(addresses);
    if (!status.ok()) return fail(io, status.error());

    for (std::size_t i = 0; i < addresses.size(); ++i) {
        auto now = binder.sysfs().driver(addresses[i]);
        const std::string was = before[i] ? *before[i] : "none";
        const std::string is = now.ok() && *now ? **now : "none";
        io.out << addresses[i].to_string() << ": " << (was == is ? "already on " : "") << is;
        if (was != is) io.out << " (was " << was << ")";
        if (owner) {
            auto node = give_group_node(options, binder.sysfs(), addresses[i], *owner);
            if (!node.ok()) {
                io.out << '\n';
                return fail(io, node.error());
            }
            io.out << "; " << *node << " given to " << owner->label << ", mode 0600";
        }
        io.out << '\n';
    }
    return exit_ok;
}

}  // namespace

int run_bind(const GlobalOptions& options, ArgReader args, const Io& io) {
    return run_move(options, std::move(args), io, true);
}

int run_unbind(const GlobalOptions& options, ArgReader args, const Io& io) {
    return run_move(options, std::move(args), io, false);
}

}  // namespace dmakit::tool
