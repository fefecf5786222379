// A VFIO device: its regions (BARs, config space), reset, bus mastering.
//
// Region indexes for vfio-pci are fixed by include/uapi/linux/vfio.h:
// VFIO_PCI_BAR0_REGION_INDEX..BAR5 (0-5), ROM (6), CONFIG (7), VGA (8).
// Each region is a window of the device fd at RegionInfo::offset: pread/pwrite
// there reach the device through the kernel (one access of the requested
// width when aligned), and mmap maps it when the region allows it.
#pragma once

#include <dmakit/pci/address.hpp>
#include <dmakit/support/memory_mapping.hpp>
#include <dmakit/support/result.hpp>
#include <dmakit/support/unique_fd.hpp>
#include <dmakit/vfio/info.hpp>
#include <dmakit/vfio/removal_request.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dmakit::vfio {

// A region mapped into the process: the whole region's size is reserved as
// one range of address space, and each mmap-able area (all of it, or the
// sparse areas) is mapped at its offset inside. Parts that may not be mapped
// (an MSI-X table the kernel keeps for itself) stay inaccessible there; the
// read/write members reach them through pread/pwrite instead.
//
// Hot paths use base() with the accessors of dmakit/support/mmio.hpp:
//     mmio::write32(bar.base(), DOORBELL, tail);
// (compiled as written in tests/unit/header_examples/header_examples.cpp)
// Move-only; unmapped on destruction. It keeps its own duplicate of the
// device fd, so it stays usable if the Device object goes first.
class Region {
public:
    Region() = default;
    Region(Region&&) noexcept = default;
    Region& operator=(Region&&) noexcept = default;
    Region(const Region&) = delete;
    Region& operator=(const Region&) = delete;

    [[nodiscard]] const RegionInfo& info() const noexcept { return info_; }
    [[nodiscard]] std::uint64_t size() const noexcept { return info_.size; }
    // Start of the region in this process, or nullptr when nothing is mapped.
    [[nodiscard]] volatile std::byte* base() const noexcept {
        return static_cast<volatile std::byte*>(mapping_.data());
    }
    [[nodiscard]] const std::vector<MmapArea>& mapped_areas() const noexcept { return areas_; }
    // Whether [offset, offset + length) is inside one mapped area.
    [[nodiscard]] bool is_mapped(std::uint64_t offset, std::uint64_t length) const noexcept;

    // Register access that works anywhere in the region: MMIO when mapped
    // (ordered like readl/writel, see mmio.hpp), pread/pwrite otherwise.
    [[nodiscard]] Result<std::uint32_t> read32(std::uint64_t offset) const;
    [[nodiscard]] Result<std::uint64_t> read64(std::uint64_t offset) const;
    [[nodiscard]] Status write32(std::uint64_t offset, std::uint32_t value) const;
    [[nodiscard]] Status write64(std::uint64_t offset, std::uint64_t value) const;

    // Lets go of the device before it is removed: each mapped area is
    // replaced, at the same address, by private memory reading all ones (what
    // a PCIe read of a vanished device returns) and the fd is closed. Pointers
    // into base() stay safe to use (a late doorbell write lands nowhere, a
    // status read sees 0xffffffff); read/write members then fail with ENODEV.
    void retire() noexcept;
    [[nodiscard]] bool retired() const noexcept { return retired_; }

private:
    friend class Device;
    [[nodiscard]] Status check(std::uint64_t offset, std::uint64_t width) const;

    RegionInfo info_;
    UniqueFd fd_;             // dup of the device fd, for pread/pwrite
    MemoryMapping mapping_;   // reservation of info_.size bytes, areas mapped inside
    std::vector<MmapArea> areas_;
    bool retired_ = false;
};

// VFIO_DEVICE_GET_IRQ_INFO for one interrupt index.
struct IrqInfo {
    std::uint32_t index = 0;
    std::uint32_t flags = 0;  // VFIO_IRQ_INFO_*
    std::uint32_t count = 0;  // vectors this index offers (0: not supported)
};

class Device {
public:
    Device(Device&&) noexcept = default;
    Device& operator=(Device&&) noexcept = default;
    Device(const Device&) = delete;
    Device& operator=(const Device&) = delete;
    // Closing the last fd of a device makes vfio-pci reset it and disable
    // its interrupts and bus mastering (vfio_pci_core_close_device).
    ~Device() = default;

    [[nodiscard]] const pci::PciAddress& address() const noexcept { return address_; }
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] std::uint32_t flags() const noexcept { return flags_; }  // VFIO_DEVICE_FLAGS_*
    [[nodiscard]] std::uint32_t region_count() const noexcept { return num_regions_; }
    [[nodiscard]] std::uint32_t irq_count() const noexcept { return num_irqs_; }
    [[nodiscard]] bool supports_reset() const noexcept;

    // VFIO_DEVICE_GET_REGION_INFO, with the capability chain.
    [[nodiscard]] Result<RegionInfo> region_info(std::uint32_t index) const;
    // Maps a region (what of it may be mapped); see Region.
    [[nodiscard]] Result<Region> map_region(std::uint32_t index) const;
    [[nodiscard]] Result<Region> map_bar(unsigned bar) const;

    // pread/pwrite on a region, for regions (or parts) that cannot be mapped.
    [[nodiscard]] Status read_region(std::uint32_t index, std::uint64_t offset,
                                     std::span<std::byte> out) const;
    [[nodiscard]] Status write_region(std::uint32_t index, std::uint64_t offset,
                                      std::span<const std::byte> in) const;

    // PCI config space (through the kernel, which virtualises parts of it).
    [[nodiscard]] Result<std::uint8_t> config_read8(std::uint32_t offset) const;
    [[nodiscard]] Result<std::uint16_t> config_read16(std::uint32_t offset) const;
    [[nodiscard]] Result<std::uint32_t> config_read32(std::uint32_t offset) const;
    [[nodiscard]] Status config_write8(std::uint32_t offset, std::uint8_t value) const;
    [[nodiscard]] Status config_write16(std::uint32_t offset, std::uint16_t value) const;
    [[nodiscard]] Status config_write32(std::uint32_t offset, std::uint32_t value) const;

    // Sets / clears Bus Master Enable (command register, offset 0x04, bit 2):
    // without it the device's DMA is blocked.
    [[nodiscard]] Status enable_bus_master() const;
    [[nodiscard]] Status disable_bus_master() const;
    [[nodiscard]] Result<bool> bus_master_enabled() const;

    // VFIO_DEVICE_RESET (FLR, PM or bus reset, whatever the kernel found).
    // ENOTSUP when VFIO_DEVICE_FLAGS_RESET is not set.
    [[nodiscard]] Status reset() const;

    // VFIO_DEVICE_GET_IRQ_INFO; use vfio/interrupts.hpp to enable them.
    [[nodiscard]] Result<IrqInfo> irq_info(std::uint32_t index) const;

    // Removal (vfio/removal_request.hpp): adopt() registers for the kernel's
    // device request, so a hot unplug or unbind shows up here instead of
    // blocking the kernel forever. A driver checks now and then (one system
    // call; the answer latches), stops its queues, fails what is in flight,
    // retires its Regions, drops its Interrupts and calls release().
    [[nodiscard]] bool removal_requested() noexcept { return removal_.requested(); }
    // False when the kernel offers no request channel (then it waits for the
    // process to close the device, as before).
    [[nodiscard]] bool removal_watched() const noexcept { return removal_.armed(); }
    [[nodiscard]] int removal_eventfd() const noexcept { return removal_.eventfd(); }
    // Closes the device fd: with every Region retired and every Interrupts
    // gone, that is the last reference, and vfio-pci resets the device, turns
    // its DMA off and lets the removal finish. Every call after it fails with
    // ENODEV. Idempotent.
    void release() noexcept;
    [[nodiscard]] bool released() const noexcept { return !fd_.valid(); }

    // For Group::open_device: queries VFIO_DEVICE_GET_INFO.
    [[nodiscard]] static Result<Device> adopt(UniqueFd fd, const pci::PciAddress& address);

private:
    Device() = default;
    [[nodiscard]] Status config_io(bool write, std::uint32_t offset, void* data,
                                   std::size_t size) const;
    [[nodiscard]] Status check_open() const;

    UniqueFd fd_;
    pci::PciAddress address_;
    std::uint32_t flags_ = 0;
    std::uint32_t num_regions_ = 0;
    std::uint32_t num_irqs_ = 0;
    std::uint64_t config_offset_ = 0;  // of the config region in the device fd
    std::uint64_t config_size_ = 0;
    RemovalRequest removal_;
};

}  // namespace dmakit::vfio
