// The kernel side of a registration-cache miss, measured in the guest
// (scripts/run-bench dma): pinning memory and VFIO_IOMMU_MAP_DMA, then the
// unmap, through the real type1 IOMMU on the emulated intel-iommu. Needs the
// emulated NVMe controller on vfio-pci; skips otherwise.
#include <dmakit/dma/pci_device.hpp>
#include <dmakit/pci/sysfs.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <sys/mman.h>

namespace {

using namespace dmakit;

std::unique_ptr<dma::PciDmaDevice>& device() {
    static std::unique_ptr<dma::PciDmaDevice> opened;  // benchmark-process scope
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
            state.SkipWithError(mapped.error().message().c_str());
            break;
        }
        (void)domain.unmap(mapped->iova);
    }
    ::munmap(raw, size + (2 << 20));
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    pci::Sysfs sysfs;
    if (auto all = sysfs.list_devices(); all.ok()) {
        for (const auto& address : *all) {
            auto info = sysfs.device_info(address);
            if (info.ok() && info->vendor_id == 0x1b36 && info->device_id == 0x0010 &&
                info->driver == std::string("vfio-pci")) {
                auto opened = dma::PciDmaDevice::open(address);
                if (opened.ok()) {
                    device() = std::move(opened).value();
                } else {
                    std::fprintf(stderr, "dma_vm_bench: %s\n", opened.error().message().c_str());
                }
                break;
            }
        }
    }
    benchmark::RegisterBenchmark("map_foreign_miss/dmakit/4KiB", BM_map_foreign_miss, std::size_t{4096})
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("map_foreign_miss/dmakit/2MiB", BM_map_foreign_miss, std::size_t{2} << 20)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    device().reset();
    return 0;
}
