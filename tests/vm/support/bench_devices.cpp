#include "bench_devices.hpp"

#include <dmakit/pci/sysfs.hpp>

#include <cstdio>
#include <cstdlib>

namespace dmakit::vmtest {
namespace {

std::string id_text(const BenchDevice& model) {
    char id[16];
    std::snprintf(id, sizeof id, "%04x:%04x", model.vendor_id, model.device_id);
    return id;
}

}  // namespace

std::vector<pci::PciAddress> devices_bound_to(const BenchDevice& model, std::string_view driver) {
    std::vector<pci::PciAddress> found;
    pci::Sysfs sysfs;
    auto all = sysfs.list_devices();
    if (!all.ok()) return found;
    for (const auto& address : *all) {
        auto info = sysfs.device_info(address);
        if (info.ok() && info->vendor_id == model.vendor_id && info->device_id == model.device_id &&
            info->driver && *info->driver == driver) {
            found.push_back(address);
        }
    }
    return found;
}

std::uint32_t bench_virtio_queue_pairs() {
    const char* value = std::getenv("DMAKIT_VM_VIRTIO_QUEUES");
    if (value == nullptr) return 1;
    const unsigned long pairs = std::strtoul(value, nullptr, 10);
    return pairs >= 1 && pairs <= 64 ? static_cast<std::uint32_t>(pairs) : 1;
}

std::string bench_nvme_serial(std::size_t index) {
    const char* serial = std::getenv(index == 0 ? "DMAKIT_VM_NVME_SERIAL" : index == 1 ? "DMAKIT_VM_NVME1_SERIAL" : "");
    return serial != nullptr ? serial : "";
}

bool in_bench_guest() {
    const char* flag = std::getenv("DMAKIT_IN_VM");
    return flag != nullptr && std::string_view(flag) == "1";
}

std::string missing_devices(const BenchDevice& model, std::size_t needed, std::string_view driver) {
    std::size_t on_driver = 0;
    std::string elsewhere;
    pci::Sysfs sysfs;
    auto all = sysfs.list_devices();
    if (all.ok()) {
        for (const auto& address : *all) {
            auto info = sysfs.device_info(address);
            if (!info.ok() || info->vendor_id != model.vendor_id || info->device_id != model.device_id) continue;
            if (info->driver && *info->driver == driver) {
                ++on_driver;
                continue;
            }
            elsewhere += (elsewhere.empty() ? "" : ", ") + address.to_string() +
                         (info->driver ? " on " + *info->driver : std::string(" unbound"));
        }
    }
    std::string text = "needs " + std::to_string(needed) + " " + std::string(model.label) + " (" +
                       id_text(model) + ") bound to " + std::string(driver) + ", found " +
                       std::to_string(on_driver);
    if (!all.ok()) text += " (cannot list PCI devices: " + dmakit::to_string(all.error()) + ")";
    if (!elsewhere.empty()) text += "; not on " + std::string(driver) + ": " + elsewhere;
    text += ". tests/vm/guest-init binds every " + id_text(model) +
            " to vfio-pci (driver_override, then drivers_probe) unless scripts/vm ran with --no-bind; "
            "a failed bind says 'could not bind' on the guest console (scripts/vm --live)";
    return text;
}

std::string unmet_in_guest(std::string_view what) {
    return "missing in the bench guest (DMAKIT_IN_VM=1), so this is a failure, not a skip: " +
           std::string(what);
}

std::string unmet_outside_guest(std::string_view what) {
    return "skipped outside the bench guest (DMAKIT_IN_VM is not 1): " + std::string(what) +
           ". Run it under scripts/vm, or the whole suite with meson test --suite vm";
}

}  // namespace dmakit::vmtest
