#include <dmakit/vfio/interrupts.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace dmakit::vfio {

namespace {

// struct vfio_irq_set ends in a flexible data[] array; build it in a buffer.
Status set_irqs(int fd, std::uint32_t flags, IrqKind kind, std::uint32_t start,
                std::uint32_t count, const std::vector<std::int32_t>& fds) {
    std::vector<std::byte> buffer(sizeof(vfio_irq_set) + fds.size() * sizeof(std::int32_t));
    vfio_irq_set head{};
    head.argsz = static_cast<std::uint32_t>(buffer.size());
    head.flags = flags;
    head.index = static_cast<std::uint32_t>(kind);
    head.start = start;
    head.count = count;
    std::memcpy(buffer.data(), &head, sizeof head);
    if (!fds.empty()) {
        std::memcpy(buffer.data() + sizeof head, fds.data(), fds.size() * sizeof(std::int32_t));
    }
    if (::ioctl(fd, VFIO_DEVICE_SET_IRQS, buffer.data()) != 0) {
        return system_error(errno, std::string("VFIO_DEVICE_SET_IRQS (") + to_string(kind) + ")");
    }
    return {};
}

// Reads an eventfd's counter; 0 when it is zero (EAGAIN on a non-blocking fd).
Result<std::uint64_t> drain(int fd) {
    for (;;) {
        std::uint64_t count = 0;
        ssize_t n = ::read(fd, &count, sizeof count);
        if (n == static_cast<ssize_t>(sizeof count)) return count;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::uint64_t{0};
        return system_error(n < 0 ? errno : EIO, "read interrupt eventfd");
    }
}

int poll_timeout(std::chrono::milliseconds timeout) {
    if (timeout.count() < 0) return -1;
    if (timeout.count() > INT32_MAX) return INT32_MAX;
    return static_cast<int>(timeout.count());
}

}  // namespace

const char* to_string(IrqKind kind) noexcept {
    switch (kind) {
        case IrqKind::intx: return "INTx";
        case IrqKind::msi: return "MSI";
        case IrqKind::msix: return "MSI-X";
    }
    return "unknown";
}

Result<Interrupts> Interrupts::enable(const Device& device, IrqKind kind, std::uint32_t vectors) {
    const std::string name = device.address().to_string();
    if (vectors == 0) return Error(EINVAL, std::string("enabling 0 ") + to_string(kind) + " vectors");
    DMAKIT_ASSIGN_OR_RETURN(IrqInfo info, device.irq_info(static_cast<std::uint32_t>(kind)));
    if (info.count < vectors) {
        return Error(EINVAL, name + " offers " + std::to_string(info.count) + " " +
                                 to_string(kind) + " vectors; " + std::to_string(vectors) +
                                 " were asked for");
    }
    if ((info.flags & VFIO_IRQ_INFO_EVENTFD) == 0) {
        return Error(ENOTSUP, name + ": " + to_string(kind) + " cannot signal an eventfd");
    }
    Interrupts irqs;
    irqs.kind_ = kind;
    int dup = ::fcntl(device.fd(), F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return system_error(errno, "dup the VFIO device fd of " + name);
    irqs.device_fd_ = UniqueFd(dup);
    std::vector<std::int32_t> fds;
    for (std::uint32_t i = 0; i < vectors; ++i) {
        int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd < 0) return system_error(errno, "eventfd for an interrupt vector");
        irqs.eventfds_.emplace_back(efd);
        fds.push_back(efd);
    }
    auto status = set_irqs(irqs.device_fd_.get(), VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                           kind, 0, vectors, fds);
    if (!status.ok()) {
        irqs.eventfds_.clear();  // nothing enabled: skip the disable in the destructor
        return std::move(status).error().with_context(name);
    }
    return irqs;
}

Interrupts& Interrupts::operator=(Interrupts&& other) noexcept {
    if (this != &other) {
        (void)disable();
        device_fd_ = std::move(other.device_fd_);
        kind_ = other.kind_;
        eventfds_ = std::move(other.eventfds_);
        detached_ = other.detached_;
    }
    return *this;
}

Interrupts::~Interrupts() { (void)disable(); }

Status Interrupts::disable() {
    if (eventfds_.empty() || !device_fd_.valid()) return {};
    // DATA_NONE | ACTION_TRIGGER with count 0 disables the index.
    auto status = set_irqs(device_fd_.get(), VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                           kind_, 0, 0, {});
    eventfds_.clear();
    return status;
}

int Interrupts::eventfd(std::uint32_t vector) const noexcept {
    return vector < eventfds_.size() ? eventfds_[vector].get() : -1;
}

Status Interrupts::check_vector(std::uint32_t vector) const {
    if (vector >= eventfds_.size()) {
        return Error(EINVAL, std::string(to_string(kind_)) + " vector " + std::to_string(vector) +
                                 " is not enabled (" + std::to_string(eventfds_.size()) +
                                 " are)");
    }
    return {};
}

Result<std::uint64_t> Interrupts::poll(std::uint32_t vector) const {
    DMAKIT_TRY(check_vector(vector));
    return drain(eventfds_[vector].get());
}

Result<std::uint64_t> Interrupts::wait(std::uint32_t vector,
                                       std::chrono::milliseconds timeout) const {
    DMAKIT_TRY(check_vector(vector));
    pollfd entry{eventfds_[vector].get(), POLLIN, 0};
    for (;;) {
        int n = ::poll(&entry, 1, poll_timeout(timeout));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return system_error(errno, "poll interrupt eventfd");
        if (n == 0) return std::uint64_t{0};
        // A closed eventfd reports POLLNVAL at once: an error, not a spin.
        if ((entry.revents & (POLLNVAL | POLLERR)) != 0) return Error(EBADF, "interrupt eventfd is not open");
        return drain(entry.fd);
    }
}

Result<std::optional<std::uint32_t>> Interrupts::wait_any(std::chrono::milliseconds timeout) const {
    if (eventfds_.empty()) return Error(EINVAL, "no interrupt vectors enabled");
    std::vector<pollfd> entries;
    for (const UniqueFd& fd : eventfds_) entries.push_back({fd.get(), POLLIN, 0});
    for (;;) {
        int n = ::poll(entries.data(), entries.size(), poll_timeout(timeout));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return system_error(errno, "poll interrupt eventfds");
        if (n == 0) return std::optional<std::uint32_t>{};
        for (const pollfd& e : entries) {
            // A closed eventfd reports POLLNVAL at once: an error, not a spin.
            if ((e.revents & (POLLNVAL | POLLERR)) != 0) return Error(EBADF, "interrupt eventfd is not open");
        }
        for (std::size_t i = 0; i < entries.size(); ++i) {
            if (entries[i].revents & POLLIN) {
                DMAKIT_ASSIGN_OR_RETURN(std::uint64_t count, drain(entries[i].fd));
                if (count > 0) return std::optional<std::uint32_t>(static_cast<std::uint32_t>(i));
            }
        }
    }
}

Status Interrupts::trigger(std::uint32_t vector) const {
    DMAKIT_TRY(check_vector(vector));
    if (detached_) return Error(ENODEV, "the interrupts' device was released");
    return set_irqs(device_fd_.get(), VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, kind_,
                    vector, 1, {});
}

Status Interrupts::unmask_intx() const {
    if (kind_ != IrqKind::intx || eventfds_.empty()) {
        return Error(EINVAL, "unmask_intx on interrupts that are not INTx");
    }
    if (detached_) return Error(ENODEV, "the interrupts' device was released");
    return set_irqs(device_fd_.get(), VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, kind_, 0,
                    1, {});
}

}  // namespace dmakit::vfio
