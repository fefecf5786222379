#include <dmakit/pci/host_use.hpp>

#include <dmakit/support/number_text.hpp>
#include <dmakit/support/text_file.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <ifaddrs.h>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <set>
#include <sstream>

namespace dmakit::pci {
namespace fs = std::filesystem;
namespace {

struct DeviceNode {
    std::string name;    // "nvme0n1p1", as in /dev
    std::string dev;     // "259:1"
    std::string folder;  // its sysfs folder
};

// The entries of a folder; none when it cannot be read (absent, or another
// user's /proc/PID/fd without root).
std::vector<fs::path> entries_of(const fs::path& folder) {
    std::vector<fs::path> entries;
    std::error_code ec;
    for (fs::directory_iterator it(folder, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        entries.push_back(it->path());
    }
    return entries;
}

// Every folder below `folder`, down to 8 levels. Symlinks are not followed
// (they lead back up to the bus, the driver or the subsystem); functions nest
// what they serve a few levels down (ADDR/nvme/nvme0/nvme0n1/nvme0n1p1,
// ADDR/ata1/host0/.../block/sda, ADDR/virtio1/net/eth0).
std::vector<fs::path> folders_below(const std::string& folder) {
    std::vector<fs::path> found;
    std::error_code ec;
    fs::recursive_directory_iterator it(folder, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it.depth() > 8) {
            it.disable_recursion_pending();
            continue;
        }
        if (it->is_symlink(ec) || !it->is_directory(ec)) continue;
        found.push_back(it->path());
    }
    return found;
}

// The device nodes among `folders`: those holding a "dev" file ("MAJOR:MINOR").
std::vector<DeviceNode> device_nodes_in(const std::vector<fs::path>& folders) {
    std::vector<DeviceNode> found;
    for (const fs::path& f : folders) {
        auto dev = read_trimmed((f / "dev").string());
        if (dev.ok()) found.push_back({f.filename().string(), *dev, f.string()});
    }
    return found;
}

std::vector<DeviceNode> device_nodes_below(const std::string& folder) {
    return device_nodes_in(folders_below(folder));
}

// The whitespace-separated fields of each line of a /proc table; none when
// the file cannot be read (a kernel without it has nothing of that kind).
std::vector<std::vector<std::string>> proc_table(const std::string& path, bool has_header) {
    std::vector<std::vector<std::string>> rows;
    auto text = read_text_file(path);
    if (!text.ok()) return rows;
    std::istringstream lines(*text);
    std::string line;
    if (has_header) std::getline(lines, line);
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::vector<std::string> fields;
        for (std::string word; words >> word;) fields.push_back(std::move(word));
        if (!fields.empty()) rows.push_back(std::move(fields));
    }
    return rows;
}

// NVMe native multipath (CONFIG_NVME_MULTIPATH, on in Debian's kernels)
// puts the namespace's disk under a virtual subsystem, not below the
// controller: SYSFS/block/nvme0n1/multipath/nvme0c0n1 links back to the
// controller's hidden path device. Those head disks and their partitions count.
void multipath_heads_of(const std::string& sysfs_root, const std::string& folder, std::vector<DeviceNode>& found) {
    for (const fs::path& disk : entries_of(sysfs_root + "/block")) {
        for (const fs::path& path : entries_of(disk / "multipath")) {
            std::error_code ec;
            const std::string target = fs::canonical(path, ec).string();
            if (ec || !target.starts_with(folder + "/")) continue;
            const std::string head = fs::canonical(disk, ec).string();
            if (ec) continue;
            if (auto dev = read_trimmed(head + "/dev"); dev.ok()) {
                found.push_back({fs::path(head).filename().string(), *dev, head});
            }
            for (auto& node : device_nodes_below(head)) found.push_back(std::move(node));  // partitions
            break;
        }
    }
}

// The name of the device node a /dev path leads to ("/dev/disk/by-id/
// nvme-...-part2" -> "nvme0n1p2"), or "" for a path outside /dev. Links are
// followed below PROC/self/root, the reader's own root (a fake tree in
// tests); a path that does not resolve is taken by its last component.
std::string device_name_of(const std::string& proc_root, const std::string& path) {
    if (!path.starts_with("/dev/")) return "";
    std::error_code ec;
    const fs::path resolved = fs::canonical(proc_root + "/self/root" + path, ec);
    return (ec ? fs::path(path) : resolved).filename().string();
}

struct Mount {
    std::string dev;          // MAJOR:MINOR of the filesystem (0:N for btrfs and the like)
    std::string mount_point;  // as the kernel wrote it (spaces escaped as \040)
    std::string fstype;
    std::string source_name;  // device_name_of() its source, "" when none
};

// mountinfo (proc(5)): "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS
// [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS".
std::vector<Mount> mounts(const std::string& proc_root) {
    std::vector<Mount> found;
    for (const auto& row : proc_table(proc_root + "/self/mountinfo", false)) {
        if (row.size() < 5) continue;
        Mount m{row[2], row[4], "", ""};
        auto dash = std::find(row.begin() + 5, row.end(), std::string("-"));
        if (row.end() - dash >= 3) {
            m.fstype = dash[1];
            m.source_name = device_name_of(proc_root, dash[2]);
        }
        found.push_back(std::move(m));
    }
    return found;
}

// PROC/swaps: a header line, then "FILENAME TYPE SIZE USED PRIORITY"; the
// names of the device nodes in use as swap (swap files are on a mount).
std::vector<std::string> swap_devices(const std::string& proc_root) {
    std::vector<std::string> names;
    for (const auto& row : proc_table(proc_root + "/swaps", true)) {
        if (auto name = device_name_of(proc_root, row[0]); !name.empty()) names.push_back(std::move(name));
    }
    return names;
}

// SYSFS/.../NODE/holders/HOLDER: a device built on top of NODE.
HostUse held_by(const std::string& node, const fs::path& holder_folder) {
    const std::string holder = holder_folder.filename().string();
    if (holder.starts_with("md")) {
        return {node + " is a member of RAID array " + holder, "stop the array: mdadm --stop /dev/" + holder};
    }
    if (holder.starts_with("dm-")) {
        // SYSFS/block/dm-N/dm/name: the name dmsetup and LVM know it by.
        auto name = read_trimmed((holder_folder / "dm" / "name").string());
        const std::string dm = name.ok() && !name->empty() ? *name : holder;
        return {node + " is held by " + holder + (dm != holder ? " (" + dm + ")" : "") +
                    " (LVM, RAID or dm-crypt)",
                "stop " + holder + " first (for example: dmsetup remove " + dm + ", lvchange -an, or cryptsetup close " +
                    dm + ")"};
    }
    return {node + " is held by " + holder, "stop " + holder + " first"};
}

// SYSFS/fs/btrfs/UUID/devices/NAME links to every member device of a
// mounted btrfs filesystem; only one of them shows in mountinfo.
std::multimap<std::string, std::string> btrfs_members(const std::string& sysfs_root) {
    std::multimap<std::string, std::string> members;  // device folder -> filesystem UUID
    for (const fs::path& fsid : entries_of(sysfs_root + "/fs/btrfs")) {
        for (const fs::path& dev : entries_of(fsid / "devices")) {
            std::error_code ec;
            const fs::path target = fs::canonical(dev, ec);
            if (!ec) members.emplace(target.string(), fsid.filename().string());
        }
    }
    return members;
}

void storage_use(const std::string& sysfs_root, const std::vector<DeviceNode>& nodes, const std::string& proc_root,
                 std::vector<HostUse>& uses) {
    const auto mounted = mounts(proc_root);
    const auto swaps = swap_devices(proc_root);
    const auto btrfs = btrfs_members(sysfs_root);
    for (const DeviceNode& node : nodes) {
        bool is_mounted = false;
        for (const Mount& m : mounted) {
            const bool by_number = m.dev == node.dev;
            if (!by_number && m.source_name != node.name) continue;
            is_mounted = true;
            // Named by its source only: the filesystem has its own device number.
            const std::string who = node.name + (by_number ? " (" + node.dev + ")" : "");
            const std::string how = by_number ? "" : " (" + m.fstype + " on device " + m.dev + ")";
            if (m.mount_point == "/") {
                uses.push_back({who + " holds the root filesystem" + how, "this machine runs from it; use another device"});
            } else {
                uses.push_back({who + " is mounted on " + m.mount_point + how, "unmount it: umount " + m.mount_point});
            }
        }
        if (std::find(swaps.begin(), swaps.end(), node.name) != swaps.end()) {
            uses.push_back({node.name + " is in use as swap", "turn it off: swapoff /dev/" + node.name});
        }
        for (const fs::path& holder : entries_of(node.folder + "/holders")) uses.push_back(held_by(node.name, holder));
        if (is_mounted) continue;  // its btrfs filesystem is already named above
        auto [first, last] = btrfs.equal_range(node.folder);
        for (auto b = first; b != last; ++b) {
            uses.push_back({node.name + " belongs to the mounted btrfs filesystem " + b->second,
                            "unmount it (find where: findmnt --source UUID=" + b->second + ")"});
        }
    }
}

// Processes holding a node open: PROC/PID/fd/N links to "/dev/NAME" (the
// path the kernel prints for the open file). Processes whose fds cannot be
// read (another user's, without root) are skipped.
void open_by_processes(const std::string& proc_root, const std::vector<DeviceNode>& nodes,
                       std::vector<HostUse>& uses) {
    std::set<std::string> names;
    for (const auto& node : nodes) names.insert(node.name);
    std::map<unsigned long, std::set<std::string>> opened;  // pid -> node names
    for (const fs::path& process : entries_of(proc_root)) {
        // Only processes have a numeric name ("self", "net", "meminfo" do not).
        const auto pid = parse_integer<unsigned long>(process.filename().string());
        if (!pid) continue;
        for (const fs::path& fd : entries_of(process / "fd")) {
            std::error_code ec;
            std::string target = fs::read_symlink(fd, ec).string();
            if (ec || !target.starts_with("/dev/")) continue;
            if (target.ends_with(" (deleted)")) target.resize(target.size() - 10);
            const std::string name = fs::path(target).filename().string();
            if (names.count(name)) opened[*pid].insert(name);
        }
    }
    for (const auto& [pid, opened_names] : opened) {
        auto comm = read_trimmed(proc_root + "/" + std::to_string(pid) + "/comm");
        const std::string process = "process " + std::to_string(pid) + " (" + (comm.ok() ? *comm : "?") + ")";
        for (const auto& name : opened_names) {
            uses.push_back({name + " is open in " + process, "close it: stop " + process + ", e.g. kill " +
                                                                 std::to_string(pid)});
        }
    }
}

// include/uapi/linux/if.h: IFF_UP.
constexpr unsigned iff_up = 0x1;

bool interface_up(const std::string& net_folder) {
    auto flags = read_trimmed(net_folder + "/flags");
    if (!flags.ok()) return false;
    std::string_view digits = *flags;
    if (digits.starts_with("0x")) digits.remove_prefix(2);
    auto value = parse_integer<unsigned>(digits, 16);
    return value && (*value & iff_up) != 0;
}

// PROC/net/route: a header, then "Iface Destination Gateway ..." in hex.
std::vector<std::string> ipv4_routes(const std::string& proc_root, const std::string& iface) {
    std::vector<std::string> routes;
    for (const auto& row : proc_table(proc_root + "/net/route", true)) {
        if (row.size() < 2 || row[0] != iface) continue;
        // Little-endian hex as the kernel prints it.
        auto raw = parse_integer<std::uint32_t>(row[1], 16);
        if (!raw) continue;
        routes.push_back(raw == 0u ? std::string("default")
                                   : std::to_string(*raw & 0xff) + "." + std::to_string((*raw >> 8) & 0xff) +
                                         "." + std::to_string((*raw >> 16) & 0xff) + "." +
                                         std::to_string(*raw >> 24));
    }
    return routes;
}

// PROC/net/if_inet6: "ADDRESS32HEX IFINDEX PREFIXLEN SCOPE FLAGS IFACE";
// scope 0x20 is link-local, which every up interface has by itself.
std::vector<std::string> ipv6_addresses(const std::string& proc_root, const std::string& iface) {
    std::vector<std::string> addresses;
    for (const auto& row : proc_table(proc_root + "/net/if_inet6", false)) {
        if (row.size() < 6 || row[5] != iface || row[3] == "20") continue;
        const std::string& address = row[0];
        std::string shown;
        for (std::size_t i = 0; i < address.size(); i += 4) {
            if (i) shown += ':';
            shown += address.substr(i, 4);
        }
        addresses.push_back(shown + "/" + std::to_string(parse_integer<unsigned>(row[2], 16).value_or(0)));
    }
    return addresses;
}

// "a, b and c"
std::string joined(const std::vector<std::string>& parts) {
    std::string text;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i) text += i + 1 == parts.size() ? " and " : ", ";
        text += parts[i];
    }
    return text;
}

// "IPv4 route 10.0.0.0", "IPv4 routes default, ..." for a list of one kind.
std::string first_of(const std::string& kind, const std::vector<std::string>& items) {
    return kind + (items.size() > 1 ? "s " : " ") + items.front() + (items.size() > 1 ? ", ..." : "");
}

// The network interfaces among `folders`: net/IFACE, directly below the
// function for most NICs, below the virtio device for virtio-net.
void network_use(const std::vector<fs::path>& folders, const HostView& view, std::vector<HostUse>& uses) {
    for (const fs::path& folder : folders) {
        if (folder.parent_path().filename() != "net") continue;
        const std::string iface = folder.filename().string();
        if (!interface_up(folder.string())) continue;
        const std::string down = "take it down: ip link set dev " + iface + " down";
        auto ipv4 = view.ipv4_addresses(iface);
        if (!ipv4.ok()) {
            // Not knowing is not "unused": refuse, and say how to look.
            uses.push_back({"interface " + iface + " is up and its IPv4 addresses could not be read (" +
                                ipv4.error().message() + ")",
                            "check with: ip -4 addr show dev " + iface + ", then " + down});
            continue;
        }
        const auto routes = ipv4_routes(view.proc_root, iface);
        const auto ipv6 = ipv6_addresses(view.proc_root, iface);
        std::vector<std::string> parts;
        if (!ipv4->empty()) parts.push_back(first_of("IPv4 address", *ipv4));
        if (!routes.empty()) parts.push_back(first_of("IPv4 route", routes));
        if (!ipv6.empty()) parts.push_back(first_of("IPv6 address", ipv6));
        if (parts.empty()) continue;
        uses.push_back({"interface " + iface + " is up with " + joined(parts), down});
    }
}

}  // namespace

Result<std::vector<std::string>> kernel_ipv4_addresses(const std::string& iface) {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return system_error(errno, "getifaddrs");
    const std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> owner(list, ::freeifaddrs);
    std::vector<std::string> addresses;
    for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
        if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET || iface != a->ifa_name) continue;
        sockaddr_in address{};
        std::memcpy(&address, a->ifa_addr, sizeof address);
        char text[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, &address.sin_addr, text, sizeof text);
        unsigned prefix = 32;
        if (a->ifa_netmask != nullptr) {
            sockaddr_in mask{};
            std::memcpy(&mask, a->ifa_netmask, sizeof mask);
            prefix = static_cast<unsigned>(std::popcount(mask.sin_addr.s_addr));
        }
        addresses.push_back(std::string(text) + "/" + std::to_string(prefix));
    }
    return addresses;
}

Result<std::vector<HostUse>> host_use(const Sysfs& sysfs, const HostView& view, const PciAddress& address,
                                      bool count_bridge) {
    DMAKIT_TRY(sysfs.require_device(address));
    std::vector<HostUse> uses;
    if (count_bridge) {
        DMAKIT_ASSIGN_OR_RETURN(std::uint32_t class_code, sysfs.read_hex_attribute(address, "class"));
        if (is_bridge_class(class_code)) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "%04x", class_code >> 8);
            uses.push_back({"it is a PCI bridge (class " + std::string(hex) +
                                "); every device behind it would lose its bridge",
                            "bind the devices behind it instead"});
        }
    }
    // The folder itself is a symlink into devices/; iterate its target.
    std::error_code ec;
    const std::string folder = fs::canonical(sysfs.device_path(address), ec).string();
    if (ec) return system_error(ec.value(), "resolve " + sysfs.device_path(address));
    const auto folders = folders_below(folder);
    auto nodes = device_nodes_in(folders);
    multipath_heads_of(sysfs.root(), folder, nodes);
    if (!nodes.empty()) {
        storage_use(sysfs.root(), nodes, view.proc_root, uses);
        open_by_processes(view.proc_root, nodes, uses);
    }
    network_use(folders, view, uses);
    return uses;
}

}  // namespace dmakit::pci
