#include "fake_sysfs.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace dmakit::testing {
namespace fs = std::filesystem;
namespace {

std::string hex(unsigned value, int digits) {
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "0x%0*x", digits, value);
    return buffer;
}

void put(const fs::path& path, const std::string& content) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::trunc) << content;
}

}  // namespace

FakeSysfs::FakeSysfs() {
    std::string pattern = (fs::temp_directory_path() / "dmakit-fakesysfs-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = pattern;
    fs::create_directories(root_ + "/bus/pci/devices");
    fs::create_directories(root_ + "/bus/pci/drivers");
    put(root_ + "/bus/pci/drivers_probe", "");
    set_meminfo(16ull << 20, 8ull << 20);
    put(proc_root() + "/self/mountinfo", "");
    put(proc_root() + "/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    put(proc_root() + "/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n");
    put(proc_root() + "/net/if_inet6", "");
}

void FakeSysfs::append(const std::string& relative, const std::string& line) const {
    std::ofstream(root_ + "/" + relative, std::ios::app) << line << "\n";
}

void FakeSysfs::set_meminfo(std::uint64_t total_kb, std::uint64_t available_kb) const {
    put(proc_root() + "/meminfo", "MemTotal:       " + std::to_string(total_kb) +
                                      " kB\nMemFree:         1000 kB\nMemAvailable:   " +
                                      std::to_string(available_kb) + " kB\nBuffers:           0 kB\n");
}

std::string FakeSysfs::add_block_device(const std::string& address, const std::string& relative,
                                        const std::string& dev) const {
    const std::string folder = root_ + "/devices/pci0000:00/" + address + "/" + relative;
    put(folder + "/dev", dev + "\n");
    return folder;
}

void FakeSysfs::add_mount(const std::string& dev, const std::string& mount_point, const std::string& source,
                          const std::string& fstype) const {
    static int id = 30;
    ++id;
    append("proc/self/mountinfo", std::to_string(id) + " 1 " + dev + " / " + mount_point +
                                      " rw,relatime shared:1 - " + fstype + " " + source + " rw");
}

void FakeSysfs::add_swap(const std::string& device_name) const {
    const std::string path = device_name.starts_with("/") ? device_name : "/dev/" + device_name;
    append("proc/swaps", path + "  partition\t1048572\t\t0\t\t-2");
}

void FakeSysfs::add_dev_node(const std::string& name) const {
    put(root_ + "/rootfs/dev/" + name, "");
    std::error_code ec;
    fs::create_directory_symlink(root_ + "/rootfs", proc_root() + "/self/root", ec);  // once
}

void FakeSysfs::add_dev_link(const std::string& path, const std::string& target) const {
    const fs::path link = root_ + "/rootfs" + path;
    fs::create_directories(link.parent_path());
    fs::create_symlink(target, link);
    std::error_code ec;
    fs::create_directory_symlink(root_ + "/rootfs", proc_root() + "/self/root", ec);
}

void FakeSysfs::add_process(unsigned pid, const std::string& comm, const std::vector<std::string>& open_files) const {
    const std::string dir = proc_root() + "/" + std::to_string(pid);
    put(dir + "/comm", comm + "\n");
    fs::create_directories(dir + "/fd");
    for (std::size_t fd = 0; fd < open_files.size(); ++fd) {
        fs::create_symlink(open_files[fd], dir + "/fd/" + std::to_string(fd));
    }
}

void FakeSysfs::add_ipv4_address(const std::string& iface, const std::string& address) {
    ipv4_addresses_[iface].push_back(address);
}

pci::HostView FakeSysfs::host_view() const {
    return {proc_root(), [this](const std::string& iface) -> Result<std::vector<std::string>> {
                auto it = ipv4_addresses_.find(iface);
                return it == ipv4_addresses_.end() ? std::vector<std::string>{} : it->second;
            }};
}

void FakeSysfs::add_interface(const std::string& address, const std::string& iface, bool up) const {
    const std::string folder = root_ + "/devices/pci0000:00/" + address + "/net/" + iface;
    put(folder + "/flags", up ? "0x1003\n" : "0x1002\n");
    put(folder + "/operstate", up ? "up\n" : "down\n");
}

void FakeSysfs::add_ipv4_route(const std::string& iface, const std::string& destination_hex) const {
    append("proc/net/route", iface + "\t" + destination_hex + "\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0");
}

void FakeSysfs::add_ipv6_address(const std::string& iface, const std::string& address_hex,
                                 const std::string& scope) const {
    append("proc/net/if_inet6", address_hex + " 02 40 " + scope + " 80 " + iface);
}

void FakeSysfs::set_config(const std::string& address, const std::vector<std::uint8_t>& bytes) const {
    put(root_ + "/devices/pci0000:00/" + address + "/config", std::string(bytes.begin(), bytes.end()));
}

FakeSysfs::~FakeSysfs() {
    std::error_code ec;
    fs::remove_all(root_, ec);
}

std::string FakeSysfs::device_dir(const std::string& address) const {
    return root_ + "/bus/pci/devices/" + address;
}

void FakeSysfs::enable_iommu() { fs::create_directories(root_ + "/kernel/iommu_groups"); }

void FakeSysfs::add_driver(const std::string& name) {
    const std::string dir = root_ + "/bus/pci/drivers/" + name;
    if (fs::exists(dir)) return;
    put(dir + "/bind", "");
    put(dir + "/unbind", "");
}

void FakeSysfs::add_device(const FakeDevice& d) {
    // Real sysfs holds the device under devices/pci0000:00 and links it from
    // bus/pci/devices; the fake does the same so symlinked entries are covered.
    const std::string real = root_ + "/devices/pci0000:00/" + d.address;
    put(real + "/vendor", hex(d.vendor, 4) + "\n");
    put(real + "/device", hex(d.device, 4) + "\n");
    put(real + "/class", hex(d.class_code, 6) + "\n");
    put(real + "/subsystem_vendor", hex(d.vendor, 4) + "\n");
    put(real + "/subsystem_device", "0x1100\n");
    put(real + "/numa_node", std::to_string(d.numa_node) + "\n");
    put(real + "/driver_override", "");
    fs::create_directory_symlink(real, device_dir(d.address));
    native_driver_[d.address] = d.driver;
    set_driver(d.address, d.driver);
    if (d.group) {
        const std::string group = root_ + "/kernel/iommu_groups/" + std::to_string(*d.group);
        fs::create_directories(group + "/devices");
        fs::create_directory_symlink(real, group + "/devices/" + d.address);
        fs::create_directory_symlink(group, real + "/iommu_group");
    }
}

void FakeSysfs::set_driver(const std::string& address, const std::optional<std::string>& driver) {
    const std::string link = device_dir(address) + "/driver";
    std::error_code ec;
    fs::remove(link, ec);
    if (!driver) return;
    add_driver(*driver);
    fs::create_directory_symlink(root_ + "/bus/pci/drivers/" + *driver, link);
}

void FakeSysfs::add_hugepages(std::uint64_t size_kb, std::uint64_t total, std::uint64_t free,
                              std::uint64_t reserved, std::uint64_t surplus,
                              const std::vector<std::pair<std::uint64_t, std::uint64_t>>& nodes) {
    const std::string leaf = "hugepages-" + std::to_string(size_kb) + "kB";
    const std::string dir = root_ + "/kernel/mm/hugepages/" + leaf;
    put(dir + "/nr_hugepages", std::to_string(total) + "\n");
    put(dir + "/free_hugepages", std::to_string(free) + "\n");
    put(dir + "/resv_hugepages", std::to_string(reserved) + "\n");
    put(dir + "/surplus_hugepages", std::to_string(surplus) + "\n");
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const std::string node_dir =
            root_ + "/devices/system/node/node" + std::to_string(i) + "/hugepages/" + leaf;
        put(node_dir + "/nr_hugepages", std::to_string(nodes[i].first) + "\n");
        put(node_dir + "/free_hugepages", std::to_string(nodes[i].second) + "\n");
        put(node_dir + "/surplus_hugepages", "0\n");
    }
}

std::string FakeSysfs::read(const std::string& relative) const {
    std::ifstream in(root_ + "/" + relative);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
}

void FakeSysfs::write(const std::string& relative, const std::string& content) const {
    put(root_ + "/" + relative, content);
}

pci::Binder::AttributeWriter FakeSysfs::kernel_writer(WriteLog& log) {
    return [this, &log](const std::string& path, std::string_view value) -> Status {
        std::string relative = path.substr(root_.size() + 1);
        log.emplace_back(relative, std::string(value));
        const std::string devices = "bus/pci/devices/";
        if (relative.ends_with("/driver_override")) {
            put(path, value == "\n" ? "" : std::string(value));
        } else if (relative.ends_with("/driver/unbind")) {
            std::string address = relative.substr(devices.size());
            address = address.substr(0, address.find('/'));
            if (address != value) return Error(ENODEV, "unbind: wrong address");
            set_driver(address, std::nullopt);
        } else if (relative == "bus/pci/drivers_probe") {
            const std::string address(value);
            if (!fs::exists(device_dir(address))) return Error(ENODEV, "drivers_probe: no device");
            if (fs::exists(device_dir(address) + "/driver")) return {};  // already bound
            std::string override_name = read(devices + address + "/driver_override");
            if (!override_name.empty()) {
                if (fs::exists(root_ + "/bus/pci/drivers/" + override_name)) {
                    set_driver(address, override_name);
                }
            } else {
                set_driver(address, native_driver_[address]);
            }
        }
        return {};
    };
}

}  // namespace dmakit::testing
