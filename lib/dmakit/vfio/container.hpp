// VFIO container and group: the objects that give a process an IOMMU domain
// and the right to use the devices of an IOMMU group.
//
// Documentation/driver-api/vfio.rst ("VFIO Usage Example") fixes the order:
//   1. open /dev/vfio/vfio (the container), check VFIO_GET_API_VERSION and
//      that VFIO_TYPE1v2_IOMMU is supported;
//   2. open /dev/vfio/N for each IOMMU group, check VFIO_GROUP_GET_STATUS says
//      it is viable (every device in the group is bound to vfio-pci, to no
//      driver or to a driver that is safe for user DMA), and attach it to the
//      container with VFIO_GROUP_SET_CONTAINER;
//   3. after the first group, choose the IOMMU model: VFIO_SET_IOMMU(TYPE1v2);
//   4. get device fds from the group (vfio/device.hpp) and map memory through
//      the container (vfio/type1_backend.hpp).
//
// Lifetimes: the kernel keeps the container alive while a group is attached
// and the group alive while one of its devices is open, so these objects may
// be destroyed in any order. Mappings live in the container's IOMMU, which the
// kernel drops when the last group leaves the container: keep at least one
// Group open for as long as the IommuDomain is used.
//
// Several groups in one container share one IOMMU domain (one set of
// mappings); for independent domains use several containers.
//
// Attach groups from one thread (Container keeps a little state); Devices,
// Regions and Interrupts are thin wrappers over system calls and may be used
// from any thread.
#pragma once

#include <dmakit/pci/address.hpp>
#include <dmakit/support/result.hpp>
#include <dmakit/support/unique_fd.hpp>

#include <atomic>
#include <memory>
#include <string>

namespace dmakit::vfio {

class Device;

// Where the kernel's files are; tests point these into a fake tree.
struct VfioPaths {
    std::string dev_vfio = "/dev/vfio";
    std::string sysfs = "/sys";
};

class Group {
public:
    Group(Group&& other) noexcept;
    Group& operator=(Group&& other) noexcept;
    Group(const Group&) = delete;
    Group& operator=(const Group&) = delete;
    // Closing the group fd detaches it from its container (the kernel does
    // VFIO_GROUP_UNSET_CONTAINER on release).
    ~Group();

    [[nodiscard]] unsigned number() const noexcept { return number_; }
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

    // VFIO_GROUP_GET_DEVICE_FD for a device of this group (bound to vfio-pci).
    [[nodiscard]] Result<Device> open_device(const pci::PciAddress& address) const;

private:
    friend class Container;
    Group(UniqueFd fd, unsigned number, VfioPaths paths,
          std::shared_ptr<std::atomic<int>> container_groups);
    void release() noexcept;

    UniqueFd fd_;
    unsigned number_ = 0;
    VfioPaths paths_;
    // Shared with the container: how many groups are attached to it, so that
    // the container knows when the IOMMU model must be set again.
    std::shared_ptr<std::atomic<int>> container_groups_;
};

class Container {
public:
    // Opens /dev/vfio/vfio and checks the API version and type1v2 support.
    [[nodiscard]] static Result<Container> open(VfioPaths paths = {});

    Container(Container&&) noexcept = default;
    Container& operator=(Container&&) noexcept = default;
    Container(const Container&) = delete;
    Container& operator=(const Container&) = delete;
    ~Container() = default;

    // Finds the IOMMU group of `device`, checks the device is bound to
    // vfio-pci (else: "... run: dmakit bind BDF"), then attach_group().
    [[nodiscard]] Result<Group> attach_group_of(const pci::PciAddress& device);

    // Opens /dev/vfio/N, checks viability (naming the devices that spoil it),
    // attaches it, and sets the type1v2 IOMMU if it is the first group.
    [[nodiscard]] Result<Group> attach_group(unsigned group);

    // True once a group is attached and the IOMMU model set: only then can
    // memory be mapped (Type1Backend::create checks it).
    [[nodiscard]] bool iommu_ready() const noexcept {
        return attached_groups_ && attached_groups_->load() > 0;
    }
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] const VfioPaths& paths() const noexcept { return paths_; }

private:
    Container(UniqueFd fd, VfioPaths paths);

    UniqueFd fd_;
    VfioPaths paths_;
    std::shared_ptr<std::atomic<int>> attached_groups_;
};

// The diagnosis behind a failed open of /dev/vfio/N or a group that is not
// viable, from sysfs: which devices are bound to which driver and what to run.
// Exposed for the unit tests, which build a fake sysfs tree.
[[nodiscard]] Error explain_group_open_failure(unsigned group, int err, const VfioPaths& paths);
[[nodiscard]] Error explain_group_not_viable(unsigned group, const VfioPaths& paths);
// EBUSY/ENODEV "BDF is bound to DRIVER / to no driver; run: dmakit bind BDF"
// when `device` is not on vfio-pci; ok otherwise.
[[nodiscard]] Status check_bound_to_vfio(const pci::PciAddress& device, const VfioPaths& paths);

}  // namespace dmakit::vfio
