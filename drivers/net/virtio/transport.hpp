// Transport: how the virtio-net code reaches a device's configuration
// (virtio 1.2 §4.1.4.3 common, §4.1.4.6 device-specific) and doorbells
// (§4.1.4.4). Bring-up, the control queue and the Nic are written against it,
// so they run unchanged over the PCI BARs (pci_transport.hpp) and over the
// unit tests' fake device.
//
// Ordering contract, as Linux's writel/readl (and dmakit's mmio.hpp): every
// access is ordered after earlier stores to ring memory, so a doorbell
// written after filling a ring is seen after the ring.
#pragma once

#include <dmakit/support/result.hpp>

#include <cstdint>
#include <memory>

namespace dmakit::net::virtio {

// One queue's doorbell: tells the device the queue has new available
// buffers (§2.7.13.4, §4.1.5.2: write the queue index as 16 bits).
class QueueNotifier {
public:
    virtual ~QueueNotifier() = default;
    virtual void notify() = 0;
};

class Transport {
public:
    virtual ~Transport() = default;

    // Common configuration, `offset` from spec.hpp's `common` names. 64-bit
    // fields are written as two 32-bit halves (§4.1.3.1 allows it).
    [[nodiscard]] virtual std::uint8_t read8(std::uint32_t offset) = 0;
    [[nodiscard]] virtual std::uint16_t read16(std::uint32_t offset) = 0;
    [[nodiscard]] virtual std::uint32_t read32(std::uint32_t offset) = 0;
    virtual void write8(std::uint32_t offset, std::uint8_t value) = 0;
    virtual void write16(std::uint32_t offset, std::uint16_t value) = 0;
    virtual void write32(std::uint32_t offset, std::uint32_t value) = 0;
    void write64(std::uint32_t offset, std::uint64_t value) {
        write32(offset, static_cast<std::uint32_t>(value));
        write32(offset + 4, static_cast<std::uint32_t>(value >> 32));
    }

    // Device-specific configuration bytes: EPROTO when [offset, offset +
    // width) is outside the structure the device described.
    [[nodiscard]] virtual Result<std::uint8_t> device_read8(std::uint32_t offset) = 0;
    [[nodiscard]] virtual Result<std::uint16_t> device_read16(std::uint32_t offset) = 0;

    // The doorbell of queue `queue_index`, whose queue_notify_off (read
    // from the common configuration with the queue selected) is
    // `notify_off`. EPROTO when the address falls outside the notification
    // structure (§4.1.4.4: cap.length >= queue_notify_off *
    // notify_off_multiplier + 2).
    [[nodiscard]] virtual Result<std::unique_ptr<QueueNotifier>> notifier(std::uint16_t queue_index,
                                                                          std::uint16_t notify_off) = 0;
};

}  // namespace dmakit::net::virtio
