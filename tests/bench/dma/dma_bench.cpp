// Host benchmarks of the DMA layer (scripts/run-bench dma): the per-buffer
// costs a driver pays on its hot path, over the recording test IOMMU backend
// (so they measure dmakit, not the kernel), with DPDK's translation call as
// the peer. The kernel-side cost of a registration miss is measured in the
// guest by dma_vm_bench.
#include <dmakit/config.hpp>
#include <dmakit/dma/context.hpp>
#include <dmakit/dma/device.hpp>
#include <dmakit/testing/test_backend.hpp>
#include <dmakit/mem/anonymous_source.hpp>
#include <dmakit/mem/hugepage_source.hpp>

#include <benchmark/benchmark.h>

#if DMAKIT_HAVE_DPDK
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#endif

#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace {

using namespace dmakit;

// One context per policy and process run; hugepage-backed when hugepages
// are reserved. The test backend keeps no operation log here.
struct Fixture {
    Logger quiet{LogLevel::error};
    std::unique_ptr<dma::DmaContext> context;
    std::unique_ptr<dma::DmaDevice> device;

    explicit Fixture(dma::IommuPolicy policy) {
        iommu::TestBackendConfig backend_config;
        backend_config.record_operations = false;
        auto backend = std::make_unique<iommu::TestIommuBackend>(backend_config);
        auto domain = iommu::IommuDomain::create(std::move(backend));
        mem::HugepageSourceOptions hp;
        hp.logger = &quiet;
        auto source = mem::HugepageSource::create(hp);
        dma::DmaContextConfig config;
        config.policy = policy;
        config.logger = &quiet;
        config.pages.region_size = std::size_t{64} << 20;
        auto created = dma::DmaContext::create(
            std::move(domain).value(),
            std::make_unique<mem::HugepageSource>(std::move(source).value()), config);
        if (!created.ok()) {
            std::fprintf(stderr, "dma_bench: %s\n", dmakit::to_string(created.error()).c_str());
            std::abort();  // a benchmark without its subject cannot run
        }
        context = std::move(created).value();
        device = std::make_unique<dma::DmaDevice>(*context, "bench");
    }
};

Fixture& fixture() {
    static Fixture f(dma::IommuPolicy::pool);  // benchmark-process scope only; the library has no globals
    return f;
}

Fixture& strict_fixture() {
    static Fixture f(dma::IommuPolicy::strict);
    return f;
}

// map_single + unmap_single of pool memory. IommuPolicy::pool: an address
// computation plus the live-mapping bookkeeping. IommuPolicy::strict: every
// map is its own IOMMU mapping (IOVA allocation, backend map, tracking) and
// every unmap tears it down; over the test backend this is dmakit's own
// cost, the kernel's is in dma_vm_bench.
void map_pair(benchmark::State& state, Fixture& f, std::size_t size) {
    auto buffer = f.device->alloc_coherent(std::max<std::size_t>(size, 2 << 20));
    if (!buffer.ok()) return state.SkipWithError(dmakit::to_string(buffer.error()).c_str());
    auto* cpu = buffer->as<std::byte>();
    for (auto _ : state) {
        auto addr = f.device->map_single(cpu, size, dma::DmaDirection::to_device);
        benchmark::DoNotOptimize(addr);
        (void)f.device->unmap_single(*addr, size, dma::DmaDirection::to_device);
    }
}

void BM_map_pool_pair(benchmark::State& state, std::size_t size) { map_pair(state, fixture(), size); }

void BM_map_strict_pair(benchmark::State& state, std::size_t size) {
    map_pair(state, strict_fixture(), size);
}

void BM_map_foreign_hit_pair(benchmark::State& state, std::size_t size) {
    auto& f = fixture();
    std::vector<unsigned char> heap((4 << 20) + size);
    auto registration = f.context->registrations().register_memory(heap.data(), heap.size(),
                                                                   f.device->mask());
    if (!registration.ok()) return state.SkipWithError(dmakit::to_string(registration.error()).c_str());
    for (auto _ : state) {
        auto addr = f.device->map_single(heap.data() + 4096, size, dma::DmaDirection::to_device);
        benchmark::DoNotOptimize(addr);
        (void)f.device->unmap_single(*addr, size, dma::DmaDirection::to_device);
    }
}

void BM_coherent_pair(benchmark::State& state) {
    auto& f = fixture();
    for (auto _ : state) {
        auto buffer = f.device->alloc_coherent(4096);
        benchmark::DoNotOptimize(buffer);
    }
}

void BM_buddy_pair(benchmark::State& state) {
    auto& f = fixture();
    for (auto _ : state) {
        void* page = f.context->pages().alloc_pages(0);
        benchmark::DoNotOptimize(page);
        f.context->pages().free_pages(page);
    }
}

// What alloc_coherent adds to the page allocator: clearing the 4 KiB it
// hands out (dma_alloc_coherent returns zeroed memory).
void BM_zero_page(benchmark::State& state) {
    auto& f = fixture();
    void* page = f.context->pages().alloc_pages(0);
    for (auto _ : state) {
        std::memset(page, 0, 4096);
        benchmark::ClobberMemory();
    }
    f.context->pages().free_pages(page);
}

void BM_virt2iova(benchmark::State& state) {
    auto& f = fixture();
    auto buffer = f.device->alloc_coherent(2 << 20);
    if (!buffer.ok()) return state.SkipWithError(dmakit::to_string(buffer.error()).c_str());
    auto* cpu = buffer->as<std::byte>();
    std::size_t offset = 0;
    for (auto _ : state) {
        auto addr = f.context->pool_dma_address(cpu + offset);
        benchmark::DoNotOptimize(addr);
        offset = (offset + 4096) & ((2 << 20) - 1);
    }
}

#if DMAKIT_HAVE_DPDK
bool eal_started = false;

void BM_rte_mem_virt2iova(benchmark::State& state) {
    if (!eal_started) return state.SkipWithError("DPDK EAL did not start");
    auto* memory = static_cast<std::byte*>(rte_malloc("bench", 2 << 20, 4096));
    if (memory == nullptr) return state.SkipWithError("rte_malloc failed");
    std::size_t offset = 0;
    for (auto _ : state) {
        rte_iova_t iova = rte_mem_virt2iova(memory + offset);
        benchmark::DoNotOptimize(iova);
        offset = (offset + 4096) & ((2 << 20) - 1);
    }
    state.SetLabel(rte_eal_iova_mode() == RTE_IOVA_VA ? "iova-mode=va" : "iova-mode=pa");
    rte_free(memory);
}
#endif

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
#if DMAKIT_HAVE_DPDK
    // PA mode when hugepages are there (so the peer does a real lookup, as it
    // does for physically addressed DMA), otherwise --no-huge.
    std::vector<const char*> eal = {"dma_bench", "--no-pci", "--no-shconf", "--in-memory",
                                    "--log-level=*:error", "-l", "0", "-m", "64"};
    if (const char* huge = std::getenv("DMAKIT_BENCH_NO_HUGE"); huge != nullptr) eal.push_back("--no-huge");
    eal_started = rte_eal_init(static_cast<int>(eal.size()), const_cast<char**>(eal.data())) >= 0;
#endif
    (void)fixture();
    // Names are "<metric>/<implementation>/<size>" (scripts/bench_rows.py).
    benchmark::RegisterBenchmark("map_pool_pair/dmakit/4KiB", BM_map_pool_pair, std::size_t{4096});
    benchmark::RegisterBenchmark("map_pool_pair/dmakit/2MiB", BM_map_pool_pair, std::size_t{2} << 20);
    benchmark::RegisterBenchmark("map_strict_pair/dmakit/4KiB", BM_map_strict_pair, std::size_t{4096});
    benchmark::RegisterBenchmark("map_strict_pair/dmakit/64KiB", BM_map_strict_pair, std::size_t{64} << 10);
    benchmark::RegisterBenchmark("map_foreign_hit_pair/dmakit/4KiB", BM_map_foreign_hit_pair, std::size_t{4096});
    benchmark::RegisterBenchmark("map_foreign_hit_pair/dmakit/2MiB", BM_map_foreign_hit_pair, std::size_t{2} << 20);
    benchmark::RegisterBenchmark("coherent_pair/dmakit/4KiB", BM_coherent_pair);
    benchmark::RegisterBenchmark("coherent_pair/buddy_pair/4KiB", BM_buddy_pair);
    benchmark::RegisterBenchmark("coherent_zeroing/dmakit/4KiB", BM_zero_page);
    benchmark::RegisterBenchmark("virt2iova/dmakit/4KiB", BM_virt2iova);
#if DMAKIT_HAVE_DPDK
    benchmark::RegisterBenchmark("virt2iova/rte_mem_virt2iova/4KiB", BM_rte_mem_virt2iova);
#endif
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
#if DMAKIT_HAVE_DPDK
    if (eal_started) rte_eal_cleanup();
#endif
    return 0;
}
