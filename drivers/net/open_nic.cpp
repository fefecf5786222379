#include <dmakit/drivers/net/open_nic.hpp>

#include <dmakit/pci/sysfs.hpp>

#include <cerrno>

namespace dmakit::net {

Result<std::unique_ptr<Nic>> open_nic(const NicDriverRegistry& registry, NicOpenContext& context) {
    pci::Sysfs sysfs;
    const pci::PciAddress& address = context.function != nullptr ? context.function->address() : context.address;
    auto info = sysfs.device_info(address);
    if (!info.ok()) return std::move(info).error();  // "no PCI device at BDF; run: dmakit list"
    return registry.open(PciId{info->vendor_id, info->device_id}, context);
}

}  // namespace dmakit::net
