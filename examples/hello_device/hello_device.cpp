// hello_device: the smallest dmakit program; docs/writing-a-driver.md explains each line.
#include <dmakit/dmakit.hpp>

#include <cstdio>
#include <optional>
#include <string_view>
#include <vector>

using namespace dmakit;

static Status hello(const pci::PciAddress& address, const dma::PciDmaOptions& options) {
    DMAKIT_ASSIGN_OR_RETURN(auto domain, dma::PciDomain::open(address, options));
    dma::PciFunction& function = domain->function(0);
    DMAKIT_ASSIGN_OR_RETURN(std::uint16_t vendor, function.vfio().config_read16(0x00));
    DMAKIT_ASSIGN_OR_RETURN(std::uint16_t device, function.vfio().config_read16(0x02));
    std::printf("%s: vendor %04x device %04x\n", address.to_string().c_str(), vendor, device);

    DMAKIT_ASSIGN_OR_RETURN(vfio::Region bar0, function.vfio().map_bar(0));
    std::printf("BAR0: %llu bytes, first dwords", static_cast<unsigned long long>(bar0.size()));
    for (std::uint64_t offset = 0; offset < 16 && offset + 4 <= bar0.size(); offset += 4) {
        DMAKIT_ASSIGN_OR_RETURN(std::uint32_t value, bar0.read32(offset));
        std::printf(" %08x", value);
    }
    std::printf("\n");
    if (!function.has_dma()) return {};  // --registers-only: no DMA from here on

    DMAKIT_ASSIGN_OR_RETURN(dma::CoherentBuffer ring, function.dma().alloc_coherent(4096));
    std::printf("coherent buffer: %zu bytes at device address 0x%llx\n", ring.size(),
                static_cast<unsigned long long>(ring.dma().value()));

    std::vector<std::byte> data(8192);  // our own memory, lent to the device for one transfer
    DMAKIT_ASSIGN_OR_RETURN(dma::StreamingMapping lent,
                            function.dma().map(data.data(), data.size(), dma::DmaDirection::to_device));
    std::printf("map_single: %zu bytes at device address 0x%llx\n", lent.size(),
                static_cast<unsigned long long>(lent.dma().value()));
    DMAKIT_TRY(lent.unmap());  // or let `lent` go out of scope: its destructor unmaps
    std::printf("unmapped; done\n");
    return {};
}

int main(int argc, char** argv) {
    dma::PciDmaOptions options;
    std::optional<pci::PciAddress> address;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto parsed = pci::PciAddress::parse(arg);
        if (arg == "--help" || arg == "-h") {
            std::printf("usage: hello_device [--registers-only] BDF   (BDF bound to vfio-pci: dmakit bind BDF)\n");
            return 0;
        } else if (arg == "--registers-only") {
            options.registers_only = true;
        } else if (!parsed.ok()) {
            std::fprintf(stderr, "hello_device: unexpected '%s' (see hello_device --help)\n", argv[i]);
            return 2;
        } else if (address) {
            std::fprintf(stderr, "hello_device: one PCI address only, got %s and %s\n",
                         address->to_string().c_str(), parsed->to_string().c_str());
            return 2;
        } else {
            address = *parsed;
        }
    }
    if (!address) {
        std::fprintf(stderr, "hello_device: give one PCI address, such as 0000:00:04.0 (see dmakit list)\n");
        return 2;
    }
    if (auto status = hello(*address, options); !status.ok()) {
        std::fprintf(stderr, "hello_device: %s\n", dmakit::to_string(status.error()).c_str());
        return 1;
    }
    return 0;
}
