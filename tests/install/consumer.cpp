// A program built only from the installed tree (pkg-config dmakit,
// dmakit-nvme, dmakit-net, dmakit-testing): the DMA API over the test IOMMU,
// a symbol from each driver library. check_installed_tree.py builds and runs
// it; it prints "ok" and exits 0 only if every step behaved.
#include <dmakit/dmakit.hpp>
#include <dmakit/drivers/net/driver_registry.hpp>
#include <dmakit/drivers/nvme/identify.hpp>
#include <dmakit/testing/test_backend.hpp>

#include <array>
#include <cstddef>
#include <cstdio>
#include <memory>

namespace {

int fail(const char* what, const dmakit::Error& error) {
    std::fprintf(stderr, "consumer: %s: %s\n", what, dmakit::to_string(error).c_str());
    return 1;
}

}  // namespace

int main() {
    using namespace dmakit;
    auto backend = std::make_unique<iommu::TestIommuBackend>();
    iommu::TestIommuBackend* device_side = backend.get();
    auto domain = iommu::IommuDomain::create(std::move(backend));
    if (!domain.ok()) return fail("domain", domain.error());
    dma::DmaContextConfig config;
    config.pages.region_size = std::size_t{4} << 20;
    auto context = dma::DmaContext::create(std::move(domain).value(),
                                           std::make_unique<mem::AnonymousSource>(), config);
    if (!context.ok()) return fail("context", context.error());
    dma::DmaDevice device(*context.value(), "0000:00:04.0");

    auto buffer = device.alloc_coherent(4096);
    if (!buffer.ok()) return fail("alloc_coherent", buffer.error());
    if (!device_side->translate(buffer->dma().value(), 4096, iommu::Access::read_write)) {
        std::fprintf(stderr, "consumer: the device cannot reach its coherent buffer\n");
        return 1;
    }

    alignas(4096) static std::array<std::byte, 4096> user{};
    auto mapped = device.map_single(user.data(), user.size(), dma::DmaDirection::to_device);
    if (!mapped.ok()) return fail("map_single", mapped.error());
    // to_device: the device may read and must not write.
    if (!device_side->translate(mapped->value(), user.size(), iommu::Access::read) ||
        device_side->translate(mapped->value(), user.size(), iommu::Access::write)) {
        std::fprintf(stderr, "consumer: map_single gave the wrong permission\n");
        return 1;
    }
    if (auto unmapped = device.unmap_single(*mapped, user.size(), dma::DmaDirection::to_device);
        !unmapped.ok()) {
        return fail("unmap_single", unmapped.error());
    }

    // One symbol from each driver library, so both link and load.
    if (net::builtin_nic_drivers().empty()) {
        std::fprintf(stderr, "consumer: libdmakit_net lists no NIC driver\n");
        return 1;
    }
    std::array<std::byte, 4> name{std::byte{'Q'}, std::byte{'E'}, std::byte{'M'}, std::byte{' '}};
    if (nvme::clean_ascii(name) != "QEM") {
        std::fprintf(stderr, "consumer: nvme::clean_ascii gave the wrong text\n");
        return 1;
    }
    std::puts("ok");
    return 0;
}
