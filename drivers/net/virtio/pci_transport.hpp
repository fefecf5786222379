// Transport over the mapped BARs of a virtio PCI function: the structures
// chosen by choose_structures (pci_structures.hpp), each checked to lie in a
// mapped area before this object exists, accessed with dmakit's ordered MMIO
// accessors at the widths §4.1.3.1 requires.
#pragma once

#include <dmakit/drivers/net/virtio/pci_structures.hpp>
#include <dmakit/drivers/net/virtio/transport.hpp>

#include <array>
#include <cstddef>
#include <string>

namespace dmakit::net::virtio {

class PciTransport final : public Transport {
public:
    // `bars[i]` is the start of BAR i in this process (nullptr: not mapped).
    // The caller checked every chosen structure against the mapping.
    PciTransport(const ChosenStructures& chosen, const std::array<volatile std::byte*, 6>& bars,
                 std::string device);

    std::uint8_t read8(std::uint32_t offset) override;
    std::uint16_t read16(std::uint32_t offset) override;
    std::uint32_t read32(std::uint32_t offset) override;
    void write8(std::uint32_t offset, std::uint8_t value) override;
    void write16(std::uint32_t offset, std::uint16_t value) override;
    void write32(std::uint32_t offset, std::uint32_t value) override;
    Result<std::uint8_t> device_read8(std::uint32_t offset) override;
    Result<std::uint16_t> device_read16(std::uint32_t offset) override;
    Result<std::unique_ptr<QueueNotifier>> notifier(std::uint16_t queue_index, std::uint16_t notify_off) override;

private:
    [[nodiscard]] Status check_device(std::uint32_t offset, std::uint32_t width) const;

    volatile std::byte* common_;
    volatile std::byte* device_;
    volatile std::byte* notify_;
    ChosenStructures chosen_;
    std::string name_;
};

}  // namespace dmakit::net::virtio
