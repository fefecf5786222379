#include <dmakit/vfio/container.hpp>

#include <dmakit/pci/binding.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/vfio/device.hpp>

#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <linux/vfio.h>
#include <string>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vector>

namespace dmakit::vfio {

namespace {

bool exists(const std::string& path) {
    std::error_code ec;
    return std::filesystem::exists(path, ec);
}

std::string no_iommu_groups(const std::string& detail) {
    return "no IOMMU groups: VFIO not loaded / IOMMU off (" + detail +
           "); boot with intel_iommu=on (or amd_iommu=on) and run: modprobe vfio-pci";
}

std::string join(const std::vector<std::string>& parts, const char* separator) {
    std::string out;
    for (const auto& part : parts) {
        if (!out.empty()) out += separator;
        out += part;
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------- diagnosis

Status check_bound_to_vfio(const pci::PciAddress& device, const VfioPaths& paths) {
    pci::Sysfs sysfs(paths.sysfs);
    DMAKIT_TRY(sysfs.require_device(device));
    DMAKIT_ASSIGN_OR_RETURN(auto driver, sysfs.driver(device));
    const std::string name = device.to_string();
    if (!driver) {
        return Error(ENODEV, name + " is not bound to any driver, so VFIO cannot use it; run: "
                                    "dmakit bind " + name);
    }
    if (*driver != pci::vfio_pci_driver) {
        return Error(EBUSY, name + " is bound to " + *driver + ", not vfio-pci; run: dmakit bind " +
                                name);
    }
    return {};
}

Error explain_group_not_viable(unsigned group, const VfioPaths& paths) {
    const std::string head = "IOMMU group " + std::to_string(group) +
                             " is not viable: VFIO needs every device in it bound to vfio-pci "
                             "(or to no driver)";
    pci::Sysfs sysfs(paths.sysfs);
    auto members = sysfs.group_members(group);
    if (!members.ok()) {
        return Error(EPERM, head + "; listing its devices failed: " + members.error().message());
    }
    std::vector<std::string> offenders;
    std::vector<std::string> names;
    for (const pci::PciAddress& member : *members) {
        auto driver = sysfs.driver(member);
        auto class_code = sysfs.read_hex_attribute(member, "class");
        if (!driver.ok() || !class_code.ok()) continue;
        if (pci::driver_allowed_in_vfio_group(*driver, *class_code)) continue;
        offenders.push_back(member.to_string() + " is bound to " + **driver);
        names.push_back(member.to_string());
    }
    if (offenders.empty()) {
        return Error(EPERM, head + "; sysfs shows no device bound to another driver (did one "
                                   "just change?)");
    }
    return Error(EPERM, head + ", but " + join(offenders, ", ") + "; run: dmakit bind " +
                            join(names, " "));
}

Error explain_group_open_failure(unsigned group, int err, const VfioPaths& paths) {
    const std::string number = std::to_string(group);
    const std::string path = paths.dev_vfio + "/" + number;
    if (err == EACCES || err == EPERM) {
        // The group node is root's, mode 0600, until someone gives it away.
        const std::string uid = std::to_string(::geteuid());
        return Error(err, "no permission for " + path + " (uid " + uid + "); give it to this user as root: "
                          "dmakit bind --user " + uid + " BDF (any device of group " + number +
                          "), or run as root");
    }
    if (err == EBUSY) {
        return Error(err, "IOMMU group " + number + " (" + path + ") is already open; a group can "
                          "be opened once, by one process: close the other user, or open its "
                          "devices through the Group this process already has");
    }
    if (err != ENOENT) return system_error(err, "open " + path);

    pci::Sysfs sysfs(paths.sysfs);
    if (!exists(paths.dev_vfio)) return Error(ENODEV, no_iommu_groups("no " + paths.dev_vfio));
    if (!sysfs.has_iommu_groups()) {
        return Error(ENODEV, no_iommu_groups("nothing in " + paths.sysfs + "/kernel/iommu_groups"));
    }
    const std::string group_dir = paths.sysfs + "/kernel/iommu_groups/" + number;
    if (!exists(group_dir)) {
        return Error(ENODEV, no_iommu_groups("no " + group_dir));
    }
    if (exists(paths.dev_vfio + "/noiommu-" + number)) {
        return Error(ENOTSUP, "IOMMU group " + number + " is a no-IOMMU group (" + paths.dev_vfio +
                                  "/noiommu-" + number +
                                  "); dmakit does not support VFIO no-IOMMU mode");
    }
    // The group exists but VFIO made no character device for it: none of its
    // devices is bound to a VFIO driver.
    std::string members_text;
    auto members = sysfs.group_members(group);
    if (members.ok()) {
        std::vector<std::string> names;
        for (const auto& member : *members) names.push_back(member.to_string());
        members_text = join(names, " ");
    }
    return Error(ENODEV, "no " + path + ": no device of IOMMU group " + number +
                             " is bound to vfio-pci; run: dmakit bind " +
                             (members_text.empty() ? std::string("BDF") : members_text));
}

// ---------------------------------------------------------------- Container

Container::Container(UniqueFd fd, VfioPaths paths)
    : fd_(std::move(fd)),
      paths_(std::move(paths)),
      attached_groups_(std::make_shared<std::atomic<int>>(0)) {}

Result<Container> Container::open(VfioPaths paths) {
    const std::string path = paths.dev_vfio + "/vfio";
    int raw = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (raw < 0) {
        const int err = errno;
        if (err == ENOENT) {
            return Error(ENODEV, no_iommu_groups("no " + path) );
        }
        if (err == EACCES || err == EPERM) {
            return Error(err, "no permission for " + path + "; run as root or chown it");
        }
        return system_error(err, "open " + path);
    }
    UniqueFd fd(raw);
    // VFIO_GET_API_VERSION / VFIO_CHECK_EXTENSION: include/uapi/linux/vfio.h.
    const int version = ::ioctl(fd.get(), VFIO_GET_API_VERSION);
    if (version != VFIO_API_VERSION) {
        return Error(ENOTSUP, "VFIO API version " + std::to_string(version) + " at " + path +
                                  ", dmakit speaks version " + std::to_string(VFIO_API_VERSION));
    }
    if (::ioctl(fd.get(), VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0) {
        return Error(ENOTSUP, "the kernel offers no VFIO type1v2 IOMMU; run: modprobe "
                              "vfio_iommu_type1");
    }
    return Container(std::move(fd), std::move(paths));
}

Result<Group> Container::attach_group_of(const pci::PciAddress& device) {
    pci::Sysfs sysfs(paths_.sysfs);
    DMAKIT_TRY(sysfs.require_device(device));
    DMAKIT_ASSIGN_OR_RETURN(auto group, sysfs.iommu_group(device));
    if (!group) {
        DMAKIT_TRY(sysfs.require_iommu_groups());
        return Error(ENODEV, device.to_string() + " is in no IOMMU group; the IOMMU does not "
                                                  "cover it, so VFIO cannot use it");
    }
    DMAKIT_TRY(check_bound_to_vfio(device, paths_));
    return attach_group(*group);
}

Result<Group> Container::attach_group(unsigned group) {
    if (!fd_.valid()) return Error(EBADF, "VFIO container was moved from");
    const std::string number = std::to_string(group);
    const std::string path = paths_.dev_vfio + "/" + number;
    int raw = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (raw < 0) return explain_group_open_failure(group, errno, paths_);
    UniqueFd fd(raw);

    vfio_group_status status{};
    status.argsz = sizeof status;
    if (::ioctl(fd.get(), VFIO_GROUP_GET_STATUS, &status) != 0) {
        return system_error(errno, "VFIO_GROUP_GET_STATUS on " + path);
    }
    if ((status.flags & VFIO_GROUP_FLAGS_VIABLE) == 0) {
        return explain_group_not_viable(group, paths_);
    }
    int container_fd = fd_.get();
    if (::ioctl(fd.get(), VFIO_GROUP_SET_CONTAINER, &container_fd) != 0) {
        const int err = errno;
        return system_error(err, "attach IOMMU group " + number + " to the VFIO container",
                            err == EPERM ? "the group stopped being viable" : "");
    }
    // The IOMMU model is chosen once the container holds a group; the kernel
    // drops it again when the last group leaves (vfio_group_detach_container).
    if (attached_groups_->load() == 0) {
        if (::ioctl(fd_.get(), VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) != 0) {
            return system_error(errno, "VFIO_SET_IOMMU(type1v2) after attaching IOMMU group " +
                                           number);
        }
    }
    attached_groups_->fetch_add(1);
    return Group(std::move(fd), group, paths_, attached_groups_);
}

// ---------------------------------------------------------------- Group

Group::Group(UniqueFd fd, unsigned number, VfioPaths paths,
             std::shared_ptr<std::atomic<int>> container_groups)
    : fd_(std::move(fd)),
      number_(number),
      paths_(std::move(paths)),
      container_groups_(std::move(container_groups)) {}

Group::Group(Group&& other) noexcept
    : fd_(std::move(other.fd_)),
      number_(other.number_),
      paths_(std::move(other.paths_)),
      container_groups_(std::move(other.container_groups_)) {}

Group& Group::operator=(Group&& other) noexcept {
    if (this != &other) {
        release();
        fd_ = std::move(other.fd_);
        number_ = other.number_;
        paths_ = std::move(other.paths_);
        container_groups_ = std::move(other.container_groups_);
    }
    return *this;
}

Group::~Group() { release(); }

void Group::release() noexcept {
    if (fd_.valid()) {
        fd_.reset();
        if (container_groups_) container_groups_->fetch_sub(1);
    }
    container_groups_.reset();
}

Result<Device> Group::open_device(const pci::PciAddress& address) const {
    if (!fd_.valid()) return Error(EBADF, "VFIO group was moved from");
    const std::string name = address.to_string();
    // VFIO_GROUP_GET_DEVICE_FD takes the device's name as a string.
    int raw = ::ioctl(fd_.get(), VFIO_GROUP_GET_DEVICE_FD, name.c_str());
    if (raw < 0) {
        const int err = errno;
        auto bound = check_bound_to_vfio(address, paths_);
        if (!bound.ok()) return std::move(bound).error();
        return system_error(err, "VFIO_GROUP_GET_DEVICE_FD for " + name + " in IOMMU group " +
                                     std::to_string(number_),
                            err == EBUSY ? "is it already open?" : "is it in this group?");
    }
    return Device::adopt(UniqueFd(raw), address);
}

}  // namespace dmakit::vfio
