#include <dmakit/drivers/net/virtio/pci_transport.hpp>

#include <dmakit/support/mmio.hpp>

#include <array>
#include <cerrno>

namespace dmakit::net::virtio {
namespace {

// Writes the queue index, 16 bits, at the queue's notify address (§4.1.5.2,
// without VIRTIO_F_NOTIFICATION_DATA).
class MmioNotifier final : public QueueNotifier {
public:
    MmioNotifier(volatile std::byte* address, std::uint16_t queue_index) : address_(address), index_(queue_index) {}
    void notify() override { mmio::write16(address_, 0, index_); }

private:
    volatile std::byte* address_;
    std::uint16_t index_;
};

}  // namespace

PciTransport::PciTransport(const ChosenStructures& chosen, const std::array<volatile std::byte*, 6>& bars,
                           std::string device)
    : common_(bars[chosen.common.bar] + chosen.common.offset),
      device_(bars[chosen.device.bar] + chosen.device.offset),
      notify_(bars[chosen.notify.where.bar] + chosen.notify.where.offset),
      chosen_(chosen),
      name_(std::move(device)) {}

std::uint8_t PciTransport::read8(std::uint32_t offset) { return mmio::read8(common_, offset); }
std::uint16_t PciTransport::read16(std::uint32_t offset) { return mmio::read16(common_, offset); }
std::uint32_t PciTransport::read32(std::uint32_t offset) { return mmio::read32(common_, offset); }
void PciTransport::write8(std::uint32_t offset, std::uint8_t value) { mmio::write8(common_, offset, value); }
void PciTransport::write16(std::uint32_t offset, std::uint16_t value) { mmio::write16(common_, offset, value); }
void PciTransport::write32(std::uint32_t offset, std::uint32_t value) { mmio::write32(common_, offset, value); }

Status PciTransport::check_device(std::uint32_t offset, std::uint32_t width) const {
    if (std::uint64_t{offset} + width > chosen_.device.length) {
        return Error(EPROTO, "virtio-net " + name_ + ": device configuration field at " + std::to_string(offset) +
                                 " lies past the " + std::to_string(chosen_.device.length) +
                                 "-byte structure the device described (virtio 1.2 §4.1.4.6)");
    }
    return {};
}

Result<std::uint8_t> PciTransport::device_read8(std::uint32_t offset) {
    DMAKIT_TRY(check_device(offset, 1));
    return mmio::read8(device_, offset);
}

Result<std::uint16_t> PciTransport::device_read16(std::uint32_t offset) {
    DMAKIT_TRY(check_device(offset, 2));
    if (offset % 2 != 0) return Error(EINVAL, "virtio-net: unaligned 16-bit device configuration read");
    return mmio::read16(device_, offset);
}

Result<std::unique_ptr<QueueNotifier>> PciTransport::notifier(std::uint16_t queue_index, std::uint16_t notify_off) {
    const std::uint64_t at = std::uint64_t{notify_off} * chosen_.notify.notify_off_multiplier;
    if (at + 2 > chosen_.notify.where.length || (chosen_.notify.where.offset + at) % 2 != 0) {
        return Error(EPROTO, "virtio-net " + name_ + ": queue " + std::to_string(queue_index) +
                                 "'s doorbell (queue_notify_off " + std::to_string(notify_off) + " x multiplier " +
                                 std::to_string(chosen_.notify.notify_off_multiplier) +
                                 ") lies outside the notification structure of " +
                                 std::to_string(chosen_.notify.where.length) + " bytes (virtio 1.2 §4.1.4.4)");
    }
    return std::unique_ptr<QueueNotifier>(std::make_unique<MmioNotifier>(notify_ + at, queue_index));
}

}  // namespace dmakit::net::virtio
