// FakeSysfs: a sysfs-shaped tree in a temp folder for the pci and tool tests.
//
// It lays out what dmakit reads (bus/pci/devices, bus/pci/drivers,
// kernel/iommu_groups, kernel/mm/hugepages, devices/system/node) with the
// kernel's conventions: hex ids with 0x, driver and iommu_group as symlinks.
// It cannot move drivers by itself; kernel_writer() returns an attribute
// writer that plays the kernel's part for binding tests.
#pragma once

#include <dmakit/pci/binding.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dmakit::testing {

struct FakeDevice {
    std::string address;                 // "0000:00:04.0"
    std::uint16_t vendor = 0;
    std::uint16_t device = 0;
    std::uint32_t class_code = 0;
    std::optional<std::string> driver;   // bound driver (also its "native" one)
    std::optional<unsigned> group;       // IOMMU group
    int numa_node = -1;
};

class FakeSysfs {
public:
    FakeSysfs();
    ~FakeSysfs();
    FakeSysfs(const FakeSysfs&) = delete;
    FakeSysfs& operator=(const FakeSysfs&) = delete;

    [[nodiscard]] const std::string& root() const noexcept { return root_; }
    // A fake /proc beside it: meminfo (16 GiB total, 8 GiB available),
    // self/mountinfo, swaps, net/route and net/if_inet6, empty of entries.
    [[nodiscard]] std::string proc_root() const { return root_ + "/proc"; }

    // Creates kernel/iommu_groups (empty until devices with groups are added).
    void enable_iommu();
    // Creates bus/pci/drivers/NAME with its bind/unbind files.
    void add_driver(const std::string& name);
    // Adds the device, its driver (created if needed) and its group membership.
    void add_device(const FakeDevice& device);
    // Points (or removes) the device's driver symlink.
    void set_driver(const std::string& address, const std::optional<std::string>& driver);

    // One hugepage pool; per-node counts for `nodes` (node i gets total/free from the pair).
    void add_hugepages(std::uint64_t size_kb, std::uint64_t total, std::uint64_t free,
                       std::uint64_t reserved, std::uint64_t surplus,
                       const std::vector<std::pair<std::uint64_t, std::uint64_t>>& nodes = {});

    // PROC/meminfo with these figures.
    void set_meminfo(std::uint64_t total_kb, std::uint64_t available_kb) const;
    // A device node (folder with a "dev" file) at DEVICE/relative, e.g.
    // "nvme/nvme0/nvme0n1/nvme0n1p1" with "259:1"; returns its folder.
    std::string add_block_device(const std::string& address, const std::string& relative,
                                 const std::string& dev) const;
    // A line of PROC/self/mountinfo mounting `dev` (MAJOR:MINOR) from
    // `source` on `mount_point`.
    void add_mount(const std::string& dev, const std::string& mount_point, const std::string& source = "/dev/x",
                   const std::string& fstype = "ext4") const;
    // A PROC/swaps line for /dev/NAME (or for `path` when it starts with '/').
    void add_swap(const std::string& device_name) const;
    // The reader's root as PROC/self/root sees it (ROOT/rootfs): a device
    // node /dev/NAME, and a symlink such as /dev/disk/by-id/X -> ../../NAME.
    void add_dev_node(const std::string& name) const;
    void add_dev_link(const std::string& path, const std::string& target) const;
    // PROC/PID with `comm` and fd/0, fd/1, ... linking to `open_files`.
    void add_process(unsigned pid, const std::string& comm, const std::vector<std::string>& open_files) const;
    // DEVICE/net/IFACE with flags 0x1003 (up) or 0x1002 (down).
    void add_interface(const std::string& address, const std::string& iface, bool up) const;
    // PROC/net/route line; destination as the kernel prints it (little-endian hex).
    void add_ipv4_route(const std::string& iface, const std::string& destination_hex) const;
    // PROC/net/if_inet6 line; scope "00" global, "20" link-local.
    void add_ipv6_address(const std::string& iface, const std::string& address_hex,
                          const std::string& scope) const;
    // An IPv4 address ("10.0.0.5/32") that host_view()'s lookup reports.
    void add_ipv4_address(const std::string& iface, const std::string& address);
    // What bind checks read: the fake /proc, and IPv4 addresses from
    // add_ipv4_address (the fake must outlive it).
    [[nodiscard]] pci::HostView host_view() const;

    // DEVICE/config holding `bytes` (the config space root would read).
    void set_config(const std::string& address, const std::vector<std::uint8_t>& bytes) const;

    // Content of ROOT/relative ("" when missing).
    [[nodiscard]] std::string read(const std::string& relative) const;
    void write(const std::string& relative, const std::string& content) const;

    // An attribute writer that records every (path below root, value) and acts
    // like the kernel: driver_override stores the name ("\n" clears it),
    // driver/unbind drops the driver link, drivers_probe binds the override or
    // else the device's native driver.
    using WriteLog = std::vector<std::pair<std::string, std::string>>;
    [[nodiscard]] pci::Binder::AttributeWriter kernel_writer(WriteLog& log);

private:
    [[nodiscard]] std::string device_dir(const std::string& address) const;
    void append(const std::string& relative, const std::string& line) const;
    std::string root_;
    std::map<std::string, std::optional<std::string>> native_driver_;
    std::map<std::string, std::vector<std::string>> ipv4_addresses_;
};

}  // namespace dmakit::testing
