// The kernel asking for a VFIO device back.
//
// When a device bound to vfio-pci is to be removed (hot unplug, a sysfs
// `remove`, an unbind), the kernel cannot finish while a process holds the
// device open: vfio_unregister_group_dev waits, and every 10 s it calls
// vfio-pci's request callback, which signals the eventfd registered at
// VFIO_PCI_REQ_IRQ_INDEX (include/uapi/linux/vfio.h). Without one the kernel
// just logs that it is blocked until the user lets go.
//
// RemovalRequest registers that eventfd and answers "has the kernel asked?"
// without blocking. The answer latches: once asked, always asked. Closing the
// device fd drops the kernel's side of the registration
// (vfio_pci_core_close_device), so there is nothing to undo on destruction
// but closing the eventfd. Move-only.
#pragma once

#include <dmakit/support/result.hpp>
#include <dmakit/support/unique_fd.hpp>

#include <string>

namespace dmakit::vfio {

class RemovalRequest {
public:
    // Registers a fresh eventfd for VFIO_PCI_REQ_IRQ_INDEX on `device_fd`.
    // `name` (the PCI address) is for messages.
    [[nodiscard]] static Result<RemovalRequest> arm(int device_fd, const std::string& name);

    RemovalRequest() = default;
    RemovalRequest(RemovalRequest&&) noexcept = default;
    RemovalRequest& operator=(RemovalRequest&&) noexcept = default;
    RemovalRequest(const RemovalRequest&) = delete;
    RemovalRequest& operator=(const RemovalRequest&) = delete;

    // Whether an eventfd is registered at all.
    [[nodiscard]] bool armed() const noexcept { return eventfd_.valid(); }
    // One non-blocking read of the eventfd (a system call); true once the
    // kernel has asked, and from then on without another read.
    [[nodiscard]] bool requested() noexcept;
    // For an epoll loop: readable when the kernel asks. -1 when not armed.
    [[nodiscard]] int eventfd() const noexcept { return eventfd_.get(); }
    // Closes the eventfd (the device fd is being closed too).
    void disarm() noexcept { eventfd_.reset(); }

private:
    UniqueFd eventfd_;
    bool requested_ = false;
};

}  // namespace dmakit::vfio
