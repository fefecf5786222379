// Fuzzes the PCI text parsers: addresses (lib/dmakit/pci/address.*) and the
// /proc/iomem and sysfs `resource` parsers (lib/dmakit/pci/memory_windows.*).
// Their input comes from users and from files a container or an old kernel
// may fill oddly; they must refuse or skip, never misread or overrun.
#include "fuzz_check.hpp"

#include <dmakit/pci/address.hpp>
#include <dmakit/pci/memory_windows.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

using namespace dmakit::pci;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    const std::string address = in.ConsumeRandomLengthString(64);
    const std::string text = in.ConsumeRemainingBytesAsString();

    if (auto a = PciAddress::parse(address); a.ok()) {
        FUZZ_CHECK(a->device <= PciAddress::max_device && a->function <= PciAddress::max_function);
        // What we print must parse back to the same device.
        auto again = PciAddress::parse(a->to_string());
        FUZZ_CHECK(again.ok() && again->to_string() == a->to_string());
    }
    const IomemWindows iomem = parse_iomem(text);
    FUZZ_CHECK(iomem.windows.size() <= iomem.entries);
    for (const auto& w : iomem.windows) FUZZ_CHECK(w.start <= w.last);

    const ResourceWindows resources = parse_resource_file(text, address);
    for (const auto& w : resources.windows) FUZZ_CHECK(w.start <= w.last);
    return 0;
}
