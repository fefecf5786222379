// kmalloc_c_pair: kmalloc + kfree through <dmakit/linux.h> (the C entry
// points, the current kernel looked up per call) against the same pair on the
// C++ Kmalloc underneath, in one binary and one run. Issue 12's bar: the C
// layer costs at most 1 ns more per pair.
#include "kmalloc_c_bench.hpp"

#include <dmakit/dma/context.hpp>
#include <dmakit/dma/device.hpp>
#include <dmakit/testing/test_backend.hpp>
#include <dmakit/linux/kernel.hpp>
#include <dmakit/mem/hugepage_source.hpp>

#include <benchmark/benchmark.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace {

using namespace dmakit;

// A kernel over a hugepage pool; the IOMMU is the recording test backend
// with recording off (no device is involved in kmalloc).
struct CKernel {
    std::unique_ptr<dma::DmaContext> context;
    std::unique_ptr<dmakit_kernel> kernel;
};

CKernel& c_kernel(const Logger& logger) {
    static CKernel state = [&] {
        CKernel k;
        iommu::TestBackendConfig backend;
        backend.record_operations = false;
        auto domain = iommu::IommuDomain::create(std::make_unique<iommu::TestIommuBackend>(backend), {});
        mem::HugepageSourceOptions pages;
        pages.logger = &logger;
        auto source = mem::HugepageSource::create(pages);
        if (!domain.ok() || !source.ok()) {
            std::fprintf(stderr, "kmalloc_c_bench: %s\n",
                         dmakit::to_string(!domain.ok() ? domain.error() : source.error()).c_str());
            std::exit(1);
        }
        dma::DmaContextConfig config;
        config.logger = &logger;
        auto context = dma::DmaContext::create(std::move(*domain),
                                               std::make_unique<mem::HugepageSource>(std::move(*source)), config);
        if (!context.ok()) {
            std::fprintf(stderr, "kmalloc_c_bench: %s\n", dmakit::to_string(context.error()).c_str());
            std::exit(1);
        }
        k.context = std::move(*context);
        auto kernel = dmakit_kernel::adopt(*k.context, std::span<dma::DmaDevice* const>{});
        if (!kernel.ok()) std::exit(1);
        k.kernel = std::move(*kernel);
        return k;
    }();
    return state;
}

void kmalloc_pair_cpp(benchmark::State& state, const Logger* logger, std::size_t size) {
    mem::Kmalloc& kmalloc = c_kernel(*logger).kernel->kmalloc();
    for (auto _ : state) {
        void* object = kmalloc.kmalloc(size);
        benchmark::DoNotOptimize(object);
        kmalloc.kfree(object);
    }
}

void kmalloc_pair_c(benchmark::State& state, const Logger* logger, std::size_t size) {
    dmakit_kernel_enter(c_kernel(*logger).kernel.get());
    for (auto _ : state) {
        void* object = dmakit_kmalloc(size, GFP_KERNEL, __FILE__, __LINE__);
        benchmark::DoNotOptimize(object);
        kfree(object);
    }
}

}  // namespace

void register_kmalloc_c_benchmarks(const dmakit::Logger& logger) {
    dmakit_kernel_enter(c_kernel(logger).kernel.get());
    kfree(dmakit_kmalloc(64, GFP_KERNEL, __FILE__, __LINE__));  // warm: the pool's first region
    for (std::size_t size : {std::size_t{64}, std::size_t{256}}) {
        const std::string label = std::to_string(size) + "B";
        benchmark::RegisterBenchmark(("kmalloc_c_pair/dmakit/" + label).c_str(), kmalloc_pair_c, &logger, size);
        benchmark::RegisterBenchmark(("kmalloc_c_pair/dmakit_cpp/" + label).c_str(), kmalloc_pair_cpp, &logger, size);
    }
}
