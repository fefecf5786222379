// The kernel side of DMA mapping, measured in the guest (scripts/run-bench
// dma) through the real type1 IOMMU on the emulated intel-iommu:
//   map_foreign_miss     pinning memory + VFIO_IOMMU_MAP_DMA, then the unmap
//                        (an IOMMU domain call, no DMA-layer bookkeeping);
//   map_strict_vm_pair   map_single + unmap_single of a pool buffer under
//                        IommuPolicy::strict: what every streaming map costs
//                        in strict mode, end to end through the DMA API.
// Needs the emulated NVMe controller on vfio-pci; skips otherwise.
#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/pci/sysfs.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <optional>
#include <memory>
#include <sys/mman.h>

namespace {

using namespace dmakit;

std::unique_ptr<dma::PciDomain>& device() {
    static std::unique_ptr<dma::PciDomain> opened;  // benchmark-process scope
    return opened;
}

std::optional<pci::PciAddress>& nvme_address() {
    static std::optional<pci::PciAddress> address;
    return address;
}

// The same controller reopened under IommuPolicy::strict. A VFIO device has
// one user at a time, so the pool-mode handle is closed first; the strict
// rows run after the miss rows (registration order).
std::unique_ptr<dma::PciDomain>& strict_device() {
    static std::unique_ptr<dma::PciDomain> opened;
    if (!opened && nvme_address()) {
        device().reset();
        dma::PciDmaOptions options;
        options.context.policy = dma::IommuPolicy::strict;
        auto reopened = dma::PciDomain::open(*nvme_address(), options);
        if (reopened.ok()) {
            opened = std::move(reopened).value();
        } else {
            std::fprintf(stderr, "dma_vm_bench: %s\n", dmakit::to_string(reopened.error()).c_str());
            nvme_address().reset();
        }
    }
    return opened;
}

void BM_map_foreign_miss(benchmark::State& state, std::size_t size) {
    if (!device()) return state.SkipWithError("no NVMe controller on vfio-pci (run inside scripts/vm)");
    // Fresh anonymous memory, 2 MiB aligned, touched once so the measured
    // cost is the pin and the IOMMU update, not first-touch page faults.
    void* raw = ::mmap(nullptr, size + (2 << 20), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (raw == MAP_FAILED) return state.SkipWithError("mmap failed");
    auto aligned = (reinterpret_cast<std::uintptr_t>(raw) + (2 << 20) - 1) & ~std::uintptr_t((2 << 20) - 1);
    auto* cpu = reinterpret_cast<void*>(aligned);
    auto& domain = device()->context().domain();
    for (auto _ : state) {
        auto mapped = domain.map(cpu, size, iommu::Access::read_write);
        if (!mapped.ok()) {
            state.SkipWithError(dmakit::to_string(mapped.error()).c_str());
            break;
        }
        (void)domain.unmap(mapped->iova);
    }
    ::munmap(raw, size + (2 << 20));
}

void BM_map_strict_vm_pair(benchmark::State& state, std::size_t size) {
    if (!strict_device()) return state.SkipWithError("no NVMe controller on vfio-pci (run inside scripts/vm)");
    auto& dev = strict_device()->function(0).dma();
    auto buffer = dev.alloc_coherent(size);
    if (!buffer.ok()) return state.SkipWithError(dmakit::to_string(buffer.error()).c_str());
    for (auto _ : state) {
        auto addr = dev.map_single(buffer->cpu(), size, dma::DmaDirection::to_device);
        if (!addr.ok()) {
            state.SkipWithError(dmakit::to_string(addr.error()).c_str());
            break;
        }
        (void)dev.unmap_single(*addr, size, dma::DmaDirection::to_device);
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    pci::Sysfs sysfs;
    std::optional<pci::PciAddress>& nvme = nvme_address();
    if (auto all = sysfs.list_devices(); all.ok()) {
        for (const auto& address : *all) {
            auto info = sysfs.device_info(address);
            if (info.ok() && info->vendor_id == 0x1b36 && info->device_id == 0x0010 &&
                info->driver == std::string("vfio-pci")) {
                nvme = address;
                break;
            }
        }
    }
    if (nvme) {
        auto opened = dma::PciDomain::open(*nvme);
        if (opened.ok()) {
            device() = std::move(opened).value();
        } else {
            std::fprintf(stderr, "dma_vm_bench: %s\n", dmakit::to_string(opened.error()).c_str());
        }
    }
    benchmark::RegisterBenchmark("map_foreign_miss/dmakit/4KiB", BM_map_foreign_miss, std::size_t{4096})
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("map_foreign_miss/dmakit/2MiB", BM_map_foreign_miss, std::size_t{2} << 20)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("map_strict_vm_pair/dmakit/4KiB", BM_map_strict_vm_pair, std::size_t{4096})
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("map_strict_vm_pair/dmakit/64KiB", BM_map_strict_vm_pair, std::size_t{64} << 10)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    strict_device().reset();
    device().reset();
    return 0;
}
