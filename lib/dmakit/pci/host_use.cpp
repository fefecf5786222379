#include <dmakit/pci/host_use.hpp>

#include <dmakit/support/number_text.hpp>
#include <dmakit/support/text_file.hpp>

#include <algorithm>
#include <cstdio>
#include <cerrno>
#include <filesystem>
#include <map>
#include <sstream>

namespace dmakit::pci {
namespace fs = std::filesystem;
namespace {

struct BlockDevice {
    std::string name;    // "nvme0n1p1"
    std::string dev;     // "259:1"
    std::string folder;  // its sysfs folder
};

// Every device node below the function's folder: a folder holding a "dev"
// file ("MAJOR:MINOR"). Symlinks are not followed (they lead back up to the
// bus, the driver or the subsystem); controllers nest their disks a few levels
// down (ADDR/nvme/nvme0/nvme0n1/nvme0n1p1, ADDR/ata1/host0/.../block/sda).
std::vector<BlockDevice> device_nodes_below(const std::string& folder) {
    std::vector<BlockDevice> found;
    std::error_code ec;
    fs::recursive_directory_iterator it(folder, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it.depth() > 8) {
            it.disable_recursion_pending();
            continue;
        }
        if (it->is_symlink(ec) || !it->is_directory(ec)) continue;
        auto dev = read_trimmed(it->path().string() + "/dev");
        if (dev.ok()) found.push_back({it->path().filename().string(), *dev, it->path().string()});
    }
    return found;
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
void multipath_heads_of(const std::string& sysfs_root, const std::string& folder, std::vector<BlockDevice>& found) {
    std::error_code ec;
    for (fs::directory_iterator disk(sysfs_root + "/block", ec); !ec && disk != fs::directory_iterator();
         disk.increment(ec)) {
        std::error_code ec2;
        for (fs::directory_iterator path(disk->path() / "multipath", ec2); !ec2 && path != fs::directory_iterator();
             path.increment(ec2)) {
            std::error_code ec3;
            const std::string target = fs::canonical(path->path(), ec3).string();
            if (ec3 || !target.starts_with(folder + "/")) continue;
            const std::string head = fs::canonical(disk->path(), ec3).string();
            if (ec3) continue;
            if (auto dev = read_trimmed(head + "/dev"); dev.ok()) {
                found.push_back({fs::path(head).filename().string(), *dev, head});
            }
            for (auto& node : device_nodes_below(head)) found.push_back(std::move(node));  // partitions
            break;
        }
    }
}

// mountinfo (proc(5)): "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...". Mount
// points escape spaces as \040; they are shown as the kernel wrote them.
std::multimap<std::string, std::string> mounts_by_device(const std::string& proc_root) {
    std::multimap<std::string, std::string> mounts;
    for (const auto& row : proc_table(proc_root + "/self/mountinfo", false)) {
        if (row.size() >= 5) mounts.emplace(row[2], row[4]);
    }
    return mounts;
}

// PROC/swaps: a header line, then "FILENAME TYPE SIZE USED PRIORITY".
std::vector<std::string> swap_devices(const std::string& proc_root) {
    std::vector<std::string> names;
    for (const auto& row : proc_table(proc_root + "/swaps", true)) {
        names.push_back(fs::path(row[0]).filename().string());
    }
    return names;
}

void storage_use(const std::string& sysfs_root, const std::string& device_folder, const std::string& proc_root,
                 std::vector<HostUse>& uses) {
    auto nodes = device_nodes_below(device_folder);
    multipath_heads_of(sysfs_root, device_folder, nodes);
    if (nodes.empty()) return;
    const auto mounts = mounts_by_device(proc_root);
    const auto swaps = swap_devices(proc_root);
    for (const BlockDevice& node : nodes) {
        auto [first, last] = mounts.equal_range(node.dev);
        for (auto m = first; m != last; ++m) {
            if (m->second == "/") {
                uses.push_back({node.name + " (" + node.dev + ") holds the root filesystem",
                                "this machine runs from it; use another device"});
            } else {
                uses.push_back({node.name + " (" + node.dev + ") is mounted on " + m->second,
                                "unmount it: umount " + m->second});
            }
        }
        if (std::find(swaps.begin(), swaps.end(), node.name) != swaps.end()) {
            uses.push_back({node.name + " is in use as swap", "turn it off: swapoff /dev/" + node.name});
        }
        std::error_code ec;
        for (fs::directory_iterator h(node.folder + "/holders", ec); !ec && h != fs::directory_iterator();
             h.increment(ec)) {
            const std::string holder = h->path().filename().string();
            uses.push_back({node.name + " is held by " + holder + " (LVM, RAID or dm-crypt)",
                            "stop " + holder + " first (for example: dmsetup remove " + holder + ")"});
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

void network_use(const std::string& device_folder, const std::string& proc_root, std::vector<HostUse>& uses) {
    std::error_code ec;
    for (fs::directory_iterator it(device_folder + "/net", ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        const std::string iface = it->path().filename().string();
        if (!interface_up(it->path().string())) continue;
        const auto routes = ipv4_routes(proc_root, iface);
        const auto addresses = ipv6_addresses(proc_root, iface);
        if (routes.empty() && addresses.empty()) continue;
        std::string what = "interface " + iface + " is up with ";
        if (!routes.empty()) what += "IPv4 route" + std::string(routes.size() > 1 ? "s " : " ") + routes.front() +
                                     (routes.size() > 1 ? ", ..." : "");
        if (!routes.empty() && !addresses.empty()) what += " and ";
        if (!addresses.empty()) what += "IPv6 address " + addresses.front();
        uses.push_back({what, "take it down: ip link set dev " + iface + " down"});
    }
}

}  // namespace

Result<std::vector<HostUse>> host_use(const Sysfs& sysfs, const std::string& proc_root, const PciAddress& address,
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
    storage_use(sysfs.root(), folder, proc_root, uses);
    network_use(folder, proc_root, uses);
    return uses;
}

}  // namespace dmakit::pci
