// ControllerBus over a PCI function opened through VFIO (a dma::PciFunction):
// BAR0 mmapped with map_bar, registers and doorbells as MMIO.
#pragma once

#include <dmakit/drivers/nvme/controller_bus.hpp>

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/vfio/device.hpp>

#include <memory>

namespace dmakit::nvme {

class PciControllerBus final : public ControllerBus {
public:
    // Maps BAR0; ENODEV when it is too small or its register page is not
    // mmapped. `device` must outlive the bus.
    [[nodiscard]] static Result<std::unique_ptr<PciControllerBus>> open(dma::PciFunction& device);

    [[nodiscard]] std::string name() const override { return device_.address().to_string(); }
    [[nodiscard]] dma::DmaDevice& dma() noexcept override { return device_.dma(); }
    [[nodiscard]] const Logger& logger() const noexcept override { return device_.context().logger(); }
    [[nodiscard]] std::uint32_t read32(std::uint32_t offset) const noexcept override;
    void write32(std::uint32_t offset, std::uint32_t value) noexcept override;
    [[nodiscard]] std::uint64_t bar_size() const noexcept override { return bar0_.size(); }
    [[nodiscard]] bool is_mapped(std::uint64_t offset, std::uint64_t length) const noexcept override {
        return bar0_.is_mapped(offset, length);
    }
    [[nodiscard]] std::unique_ptr<Doorbells> doorbells(DoorbellOffsets offsets) override;
    [[nodiscard]] Status function_reset() override;
    [[nodiscard]] vfio::Device* vfio() noexcept override { return &device_.vfio(); }
    [[nodiscard]] bool removal_requested() noexcept override { return device_.vfio().removal_requested(); }
    // BAR0 retired (same address, reads all ones), then the device fd closed.
    void release() noexcept override {
        bar0_.retire();
        device_.vfio().release();
    }

private:
    PciControllerBus(dma::PciFunction& device, vfio::Region bar0) : device_(device), bar0_(std::move(bar0)) {}

    dma::PciFunction& device_;
    vfio::Region bar0_;
};

}  // namespace dmakit::nvme
