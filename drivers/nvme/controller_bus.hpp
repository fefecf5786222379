// What a Controller needs from the PCI function under it: BAR0 registers
// (NVMe 1.4 §3.1), doorbells, the DMA API, a function-level reset and, for
// MSI-X, the VFIO device. PciControllerBus (pci_bus.hpp) is the VFIO
// implementation; unit tests plug in a software model of a controller, so the
// bring-up, queue deletion and recovery paths run without hardware.
#pragma once

#include <dmakit/drivers/nvme/queue.hpp>
#include <dmakit/drivers/nvme/registers.hpp>

#include <dmakit/dma/device.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/support/result.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace dmakit::vfio {
class Device;
}

namespace dmakit::nvme {

class ControllerBus {
public:
    virtual ~ControllerBus() = default;

    // For messages: the PCI address.
    [[nodiscard]] virtual std::string name() const = 0;
    [[nodiscard]] virtual dma::DmaDevice& dma() noexcept = 0;
    [[nodiscard]] virtual const Logger& logger() const noexcept = 0;

    // 32-bit register access to mapped BAR0 offsets (the controller only
    // touches offsets below min_bar0_size and doorbells it checked).
    [[nodiscard]] virtual std::uint32_t read32(std::uint32_t offset) const noexcept = 0;
    virtual void write32(std::uint32_t offset, std::uint32_t value) noexcept = 0;
    [[nodiscard]] virtual std::uint64_t bar_size() const noexcept = 0;
    // Whether [offset, offset + length) of BAR0 is mmapped.
    [[nodiscard]] virtual bool is_mapped(std::uint64_t offset, std::uint64_t length) const noexcept = 0;
    // Doorbells at offsets the caller checked with mapped_doorbells().
    [[nodiscard]] virtual std::unique_ptr<Doorbells> doorbells(DoorbellOffsets offsets) = 0;

    // Function-level reset (VFIO_DEVICE_RESET), bus mastering on again after it.
    [[nodiscard]] virtual Status function_reset() = 0;
    // The VFIO device for MSI-X; null when there is none (interrupts refused).
    [[nodiscard]] virtual vfio::Device* vfio() noexcept { return nullptr; }

    // Whether the kernel asked for the device back (hot unplug, unbind; see
    // vfio/removal_request.hpp). A system call: the controller asks rarely.
    [[nodiscard]] virtual bool removal_requested() noexcept { return false; }
    // Lets go of the device for its removal: register reads then return all
    // ones and writes go nowhere (doorbells included), and the function is
    // handed back to the kernel, which resets it. Called once.
    virtual void release() noexcept {}
};

}  // namespace dmakit::nvme
