#include <dmakit/vfio/removal_request.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace dmakit::vfio {

Result<RemovalRequest> RemovalRequest::arm(int device_fd, const std::string& name) {
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) return system_error(errno, "eventfd for the device request of " + name);
    RemovalRequest request;
    request.eventfd_ = UniqueFd(efd);
    // struct vfio_irq_set with one eventfd in its data[] (DATA_EVENTFD | ACTION_TRIGGER).
    alignas(vfio_irq_set) std::byte buffer[sizeof(vfio_irq_set) + sizeof(std::int32_t)]{};
    vfio_irq_set head{};
    head.argsz = sizeof buffer;
    head.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    head.index = VFIO_PCI_REQ_IRQ_INDEX;
    head.start = 0;
    head.count = 1;
    const std::int32_t fd32 = efd;
    std::memcpy(buffer, &head, sizeof head);
    std::memcpy(buffer + sizeof head, &fd32, sizeof fd32);
    if (::ioctl(device_fd, VFIO_DEVICE_SET_IRQS, buffer) != 0) {
        return system_error(errno, "VFIO_DEVICE_SET_IRQS (device request) of " + name);
    }
    return request;
}

bool RemovalRequest::requested() noexcept {
    if (requested_ || !eventfd_.valid()) return requested_;
    std::uint64_t count = 0;
    ssize_t n;
    do {
        n = ::read(eventfd_.get(), &count, sizeof count);
    } while (n < 0 && errno == EINTR);
    // EAGAIN: not asked. Any count means the kernel wants the device back.
    if (n == static_cast<ssize_t>(sizeof count) && count != 0) requested_ = true;
    return requested_;
}

}  // namespace dmakit::vfio
