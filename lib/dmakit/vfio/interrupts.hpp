// Device interrupts through VFIO: one eventfd per vector.
//
// VFIO_DEVICE_SET_IRQS with DATA_EVENTFD | ACTION_TRIGGER (include/uapi/linux/
// vfio.h) makes vfio-pci enable MSI-X, MSI or INTx on the device and signal
// the eventfd of a vector each time it fires; the eventfd's counter says how
// many times since the last read. A driver can block on it (wait/wait_any),
// check without blocking in a polling loop (poll), or hand the fds to its own
// epoll loop (eventfd()).
//
// INTx is level-triggered and shared, so vfio-pci masks it when it fires
// (VFIO_IRQ_INFO_AUTOMASKED); after handling, call unmask_intx().
//
// Move-only; destruction disables the interrupts (SET_IRQS with count 0)
// and closes the eventfds. Holds its own duplicate of the device fd.
#pragma once

#include <dmakit/support/result.hpp>
#include <dmakit/support/unique_fd.hpp>
#include <dmakit/vfio/device.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace dmakit::vfio {

// The vfio-pci interrupt indexes (VFIO_PCI_INTX/MSI/MSIX_IRQ_INDEX).
enum class IrqKind : std::uint32_t { intx = 0, msi = 1, msix = 2 };

[[nodiscard]] const char* to_string(IrqKind kind) noexcept;

class Interrupts {
public:
    // Enables `vectors` vectors of `kind` (1 for INTx), each with an eventfd.
    // Fails (EINVAL) when the device offers fewer, naming how many it has.
    [[nodiscard]] static Result<Interrupts> enable(const Device& device, IrqKind kind,
                                                   std::uint32_t vectors);

    Interrupts() = default;
    Interrupts(Interrupts&& other) noexcept = default;
    Interrupts& operator=(Interrupts&& other) noexcept;
    Interrupts(const Interrupts&) = delete;
    Interrupts& operator=(const Interrupts&) = delete;
    ~Interrupts();

    [[nodiscard]] IrqKind kind() const noexcept { return kind_; }
    [[nodiscard]] std::uint32_t vector_count() const noexcept {
        return static_cast<std::uint32_t>(eventfds_.size());
    }
    // The eventfd of a vector (non-blocking), for epoll; -1 if out of range.
    [[nodiscard]] int eventfd(std::uint32_t vector) const noexcept;

    // Non-blocking: how many times `vector` fired since the last check (0: none).
    [[nodiscard]] Result<std::uint64_t> poll(std::uint32_t vector) const;
    // Blocks up to `timeout` for `vector`; returns the count, 0 on timeout.
    [[nodiscard]] Result<std::uint64_t> wait(std::uint32_t vector,
                                             std::chrono::milliseconds timeout) const;
    // Blocks up to `timeout` for any vector; returns the first one that fired
    // (its count consumed), nullopt on timeout.
    [[nodiscard]] Result<std::optional<std::uint32_t>> wait_any(
        std::chrono::milliseconds timeout) const;

    // Signals `vector`'s eventfd from software (DATA_NONE | ACTION_TRIGGER),
    // which tests the whole path from the kernel to the waiter.
    [[nodiscard]] Status trigger(std::uint32_t vector) const;
    // Re-enables INTx after it fired (ACTION_UNMASK); EINVAL for MSI/MSI-X.
    [[nodiscard]] Status unmask_intx() const;
    // Turns the interrupts off now (also done on destruction).
    [[nodiscard]] Status disable();
    // Drops this object's reference to the device (its fd duplicate) so the
    // device can be released for a removal; closing the device turns its
    // interrupts off. The eventfds stay: a waiter just times out. trigger()
    // and unmask_intx() fail from then on.
    void detach() noexcept {
        device_fd_.reset();
        detached_ = true;
    }
    [[nodiscard]] bool detached() const noexcept { return detached_; }

private:
    [[nodiscard]] Status check_vector(std::uint32_t vector) const;

    UniqueFd device_fd_;  // dup of the device fd
    IrqKind kind_ = IrqKind::msix;
    std::vector<UniqueFd> eventfds_;
    bool detached_ = false;
};

}  // namespace dmakit::vfio
