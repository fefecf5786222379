#include <dmakit/vfio/device.hpp>

#include <dmakit/iommu/iova_allocator.hpp>
#include <dmakit/support/mmio.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace dmakit::vfio {

namespace {

using iommu::to_hex;

// Full pread/pwrite (the kernel may split large transfers).
Status transfer(int fd, bool write, void* data, std::size_t size, std::uint64_t offset,
                const std::string& what) {
    auto* bytes = static_cast<std::byte*>(data);
    std::size_t done = 0;
    while (done < size) {
        const auto at = static_cast<off_t>(offset + done);
        ssize_t n = write ? ::pwrite(fd, bytes + done, size - done, at)
                          : ::pread(fd, bytes + done, size - done, at);
        if (n < 0) {
            if (errno == EINTR) continue;
            return system_error(errno, std::string(write ? "write " : "read ") + what);
        }
        if (n == 0) return Error(EIO, "short " + std::string(write ? "write " : "read ") + what);
        done += static_cast<std::size_t>(n);
    }
    return {};
}

Result<RegionInfo> query_region(int fd, std::uint32_t index) {
    // Two passes: the first reply says in argsz how much room the
    // capabilities need (include/uapi/linux/vfio.h, VFIO_DEVICE_GET_REGION_INFO).
    std::vector<std::byte> buffer(sizeof(vfio_region_info));
    for (int attempt = 0; attempt < 2; ++attempt) {
        vfio_region_info head{};
        head.argsz = static_cast<std::uint32_t>(buffer.size());
        head.index = index;
        std::memcpy(buffer.data(), &head, sizeof head);
        if (::ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, buffer.data()) != 0) {
            return system_error(errno, "VFIO_DEVICE_GET_REGION_INFO for region " +
                                           std::to_string(index));
        }
        std::memcpy(&head, buffer.data(), sizeof head);
        if (head.argsz <= buffer.size()) break;
        buffer.assign(head.argsz, std::byte{0});
    }
    return parse_region_info(buffer);
}

}  // namespace

// ---------------------------------------------------------------- Region

bool Region::is_mapped(std::uint64_t offset, std::uint64_t length) const noexcept {
    if (!mapping_.valid()) return false;
    for (const MmapArea& area : areas_) {
        if (offset >= area.offset && offset - area.offset <= area.size &&
            area.size - (offset - area.offset) >= length) {
            return true;
        }
    }
    return false;
}

Status Region::check(std::uint64_t offset, std::uint64_t width) const {
    if (retired_) {
        return Error(ENODEV, "region " + std::to_string(info_.index) +
                                 " was retired: its device was released (removed); reopen the device");
    }
    if (offset > info_.size || info_.size - offset < width) {
        return Error(EINVAL, "access of " + std::to_string(width) + " bytes at " + to_hex(offset) +
                                 " is outside region " + std::to_string(info_.index) + " (" +
                                 std::to_string(info_.size) + " bytes)");
    }
    if (offset % width != 0) {
        return Error(EINVAL, "unaligned " + std::to_string(width * 8) + "-bit register access at " +
                                 to_hex(offset));
    }
    return {};
}

Result<std::uint32_t> Region::read32(std::uint64_t offset) const {
    DMAKIT_TRY(check(offset, 4));
    if (is_mapped(offset, 4)) return mmio::read32(base(), offset);
    std::uint32_t value = 0;
    DMAKIT_TRY(transfer(fd_.get(), false, &value, 4, info_.offset + offset,
                        "region " + std::to_string(info_.index) + " at " + to_hex(offset)));
    return value;
}

Result<std::uint64_t> Region::read64(std::uint64_t offset) const {
    DMAKIT_TRY(check(offset, 8));
    if (is_mapped(offset, 8)) return mmio::read64(base(), offset);
    std::uint64_t value = 0;
    DMAKIT_TRY(transfer(fd_.get(), false, &value, 8, info_.offset + offset,
                        "region " + std::to_string(info_.index) + " at " + to_hex(offset)));
    return value;
}

Status Region::write32(std::uint64_t offset, std::uint32_t value) const {
    DMAKIT_TRY(check(offset, 4));
    if (is_mapped(offset, 4)) {
        mmio::write32(base(), offset, value);
        return {};
    }
    return transfer(fd_.get(), true, &value, 4, info_.offset + offset,
                    "region " + std::to_string(info_.index) + " at " + to_hex(offset));
}

Status Region::write64(std::uint64_t offset, std::uint64_t value) const {
    DMAKIT_TRY(check(offset, 8));
    if (is_mapped(offset, 8)) {
        mmio::write64(base(), offset, value);
        return {};
    }
    return transfer(fd_.get(), true, &value, 8, info_.offset + offset,
                    "region " + std::to_string(info_.index) + " at " + to_hex(offset));
}

void Region::retire() noexcept {
    if (retired_) return;
    retired_ = true;
    for (const MmapArea& area : areas_) {
        // MAP_FIXED over the device mapping drops it (and its reference to
        // the device file) and leaves ordinary memory at the same address.
        void* at = mapping_.bytes() + area.offset;
        void* got = ::mmap(at, area.size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (got == at) std::memset(at, 0xff, area.size);
        // On failure the old mapping is still in place: the kernel's removal
        // then waits for the process, as without a request channel.
    }
    fd_.reset();
}

// ---------------------------------------------------------------- Device

Result<Device> Device::adopt(UniqueFd fd, const pci::PciAddress& address) {
    vfio_device_info info{};
    info.argsz = sizeof info;
    if (::ioctl(fd.get(), VFIO_DEVICE_GET_INFO, &info) != 0) {
        return system_error(errno, "VFIO_DEVICE_GET_INFO for " + address.to_string());
    }
    if ((info.flags & VFIO_DEVICE_FLAGS_PCI) == 0) {
        return Error(ENOTSUP, address.to_string() + " is not a vfio-pci device");
    }
    Device device;
    device.fd_ = std::move(fd);
    device.address_ = address;
    device.flags_ = info.flags;
    device.num_regions_ = info.num_regions;
    device.num_irqs_ = info.num_irqs;
    if (info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
        return Error(EIO, address.to_string() + " reports no config space region");
    }
    auto config = query_region(device.fd_.get(), VFIO_PCI_CONFIG_REGION_INDEX);
    if (!config.ok()) return std::move(config).error().with_context(address.to_string());
    device.config_offset_ = config->offset;
    device.config_size_ = config->size;
    // The device request channel (vfio-pci offers it on every device; an
    // older kernel or another bus may not): without it a hot unplug waits for
    // the process to exit, so its absence is not an error.
    if (device.num_irqs_ > VFIO_PCI_REQ_IRQ_INDEX) {
        vfio_irq_info req{};
        req.argsz = sizeof req;
        req.index = VFIO_PCI_REQ_IRQ_INDEX;
        if (::ioctl(device.fd_.get(), VFIO_DEVICE_GET_IRQ_INFO, &req) == 0 && req.count != 0 &&
            (req.flags & VFIO_IRQ_INFO_EVENTFD) != 0) {
            auto armed = RemovalRequest::arm(device.fd_.get(), address.to_string());
            if (armed.ok()) device.removal_ = std::move(armed).value();
        }
    }
    return device;
}

Status Device::check_open() const {
    if (fd_.valid()) return {};
    return Error(ENODEV, address_.to_string() +
                             " was released (removed, or handed back to the kernel); open it again once it is back");
}

void Device::release() noexcept {
    removal_.disarm();
    fd_.reset();
}

bool Device::supports_reset() const noexcept { return (flags_ & VFIO_DEVICE_FLAGS_RESET) != 0; }

Result<RegionInfo> Device::region_info(std::uint32_t index) const {
    if (index >= num_regions_) {
        return Error(EINVAL, address_.to_string() + " has " + std::to_string(num_regions_) +
                                 " regions; there is no region " + std::to_string(index));
    }
    DMAKIT_TRY(check_open());
    auto info = query_region(fd_.get(), index);
    if (!info.ok()) return std::move(info).error().with_context(address_.to_string());
    return info;
}

Result<Region> Device::map_bar(unsigned bar) const {
    if (bar > 5) return Error(EINVAL, "BAR " + std::to_string(bar) + " does not exist (0-5)");
    return map_region(VFIO_PCI_BAR0_REGION_INDEX + bar);
}

Result<Region> Device::map_region(std::uint32_t index) const {
    DMAKIT_ASSIGN_OR_RETURN(RegionInfo info, region_info(index));
    const std::string what = address_.to_string() + " region " + std::to_string(index);
    if (info.size == 0) {
        return Error(ENOENT, what + " is not implemented by the device (size 0)");
    }
    Region region;
    int dup = ::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return system_error(errno, "dup the VFIO device fd of " + address_.to_string());
    region.fd_ = UniqueFd(dup);

    std::vector<MmapArea> areas = info.mmap_areas();
    if (!areas.empty()) {
        // Reserve the whole region, then map each allowed area over it at
        // its offset, so base() + offset means the same as in the BAR.
        const long page = ::sysconf(_SC_PAGESIZE);
        const std::uint64_t page_size = page > 0 ? static_cast<std::uint64_t>(page) : 4096;
        const std::uint64_t reserve = (info.size + page_size - 1) & ~(page_size - 1);
        DMAKIT_ASSIGN_OR_RETURN(region.mapping_,
                                MemoryMapping::map(nullptr, reserve, PROT_NONE,
                                                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                                                   0, "address space for a BAR"));
        for (const MmapArea& area : areas) {
            if (area.offset % page_size != 0) {
                return Error(EINVAL, what + ": mmap area at " + to_hex(area.offset) +
                                         " is not page aligned");
            }
            void* want = region.mapping_.bytes() + area.offset;
            void* got = ::mmap(want, area.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                               fd_.get(), static_cast<off_t>(info.offset + area.offset));
            if (got == MAP_FAILED) {
                return system_error(errno, "mmap " + what + " at " + to_hex(area.offset) + " (" +
                                               std::to_string(area.size) + " bytes)");
            }
        }
        region.areas_ = std::move(areas);
    }
    region.info_ = std::move(info);
    return region;
}

Status Device::read_region(std::uint32_t index, std::uint64_t offset,
                           std::span<std::byte> out) const {
    DMAKIT_ASSIGN_OR_RETURN(RegionInfo info, region_info(index));
    if (offset > info.size || info.size - offset < out.size()) {
        return Error(EINVAL, "read beyond the end of region " + std::to_string(index));
    }
    return transfer(fd_.get(), false, out.data(), out.size(), info.offset + offset,
                    address_.to_string() + " region " + std::to_string(index));
}

Status Device::write_region(std::uint32_t index, std::uint64_t offset,
                            std::span<const std::byte> in) const {
    DMAKIT_ASSIGN_OR_RETURN(RegionInfo info, region_info(index));
    if (offset > info.size || info.size - offset < in.size()) {
        return Error(EINVAL, "write beyond the end of region " + std::to_string(index));
    }
    return transfer(fd_.get(), true, const_cast<std::byte*>(in.data()), in.size(),
                    info.offset + offset, address_.to_string() + " region " + std::to_string(index));
}

Status Device::config_io(bool write, std::uint32_t offset, void* data, std::size_t size) const {
    DMAKIT_TRY(check_open());
    if (offset > config_size_ || config_size_ - offset < size || offset % size != 0) {
        return Error(EINVAL, "config space access of " + std::to_string(size) + " bytes at " +
                                 to_hex(offset) + " is unaligned or beyond the " +
                                 std::to_string(config_size_) + "-byte config space");
    }
    return transfer(fd_.get(), write, data, size, config_offset_ + offset,
                    address_.to_string() + " config space at " + to_hex(offset));
}

Result<std::uint8_t> Device::config_read8(std::uint32_t offset) const {
    std::uint8_t v = 0;
    DMAKIT_TRY(config_io(false, offset, &v, sizeof v));
    return v;
}
Result<std::uint16_t> Device::config_read16(std::uint32_t offset) const {
    std::uint16_t v = 0;
    DMAKIT_TRY(config_io(false, offset, &v, sizeof v));
    return v;
}
Result<std::uint32_t> Device::config_read32(std::uint32_t offset) const {
    std::uint32_t v = 0;
    DMAKIT_TRY(config_io(false, offset, &v, sizeof v));
    return v;
}
Status Device::config_write8(std::uint32_t offset, std::uint8_t value) const {
    return config_io(true, offset, &value, sizeof value);
}
Status Device::config_write16(std::uint32_t offset, std::uint16_t value) const {
    return config_io(true, offset, &value, sizeof value);
}
Status Device::config_write32(std::uint32_t offset, std::uint32_t value) const {
    return config_io(true, offset, &value, sizeof value);
}

Status Device::enable_bus_master() const {
    DMAKIT_ASSIGN_OR_RETURN(std::uint16_t command, config_read16(PCI_COMMAND));
    if (command & PCI_COMMAND_MASTER) return {};
    return config_write16(PCI_COMMAND, static_cast<std::uint16_t>(command | PCI_COMMAND_MASTER));
}

Status Device::disable_bus_master() const {
    DMAKIT_ASSIGN_OR_RETURN(std::uint16_t command, config_read16(PCI_COMMAND));
    if (!(command & PCI_COMMAND_MASTER)) return {};
    return config_write16(PCI_COMMAND, static_cast<std::uint16_t>(command & ~PCI_COMMAND_MASTER));
}

Result<bool> Device::bus_master_enabled() const {
    DMAKIT_ASSIGN_OR_RETURN(std::uint16_t command, config_read16(PCI_COMMAND));
    return (command & PCI_COMMAND_MASTER) != 0;
}

Status Device::reset() const {
    if (!supports_reset()) {
        return Error(ENOTSUP, address_.to_string() + " cannot be reset by VFIO (no FLR, PM reset "
                                                     "or bus reset available to it)");
    }
    DMAKIT_TRY(check_open());
    if (::ioctl(fd_.get(), VFIO_DEVICE_RESET) != 0) {
        return system_error(errno, "VFIO_DEVICE_RESET of " + address_.to_string());
    }
    return {};
}

Result<IrqInfo> Device::irq_info(std::uint32_t index) const {
    if (index >= num_irqs_) {
        return Error(EINVAL, address_.to_string() + " has no interrupt index " +
                                 std::to_string(index));
    }
    DMAKIT_TRY(check_open());
    vfio_irq_info info{};
    info.argsz = sizeof info;
    info.index = index;
    if (::ioctl(fd_.get(), VFIO_DEVICE_GET_IRQ_INFO, &info) != 0) {
        return system_error(errno, "VFIO_DEVICE_GET_IRQ_INFO " + std::to_string(index) + " of " +
                                       address_.to_string());
    }
    return IrqInfo{info.index, info.flags, info.count};
}

}  // namespace dmakit::vfio
