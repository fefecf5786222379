// Memory-core benchmarks: dmakit's slab caches and buddy allocator side by
// side with glibc malloc, DPDK rte_mempool/rte_malloc and mimalloc, in one
// binary and one run so the ratios compare like with like.
//
// Benchmark names are "<metric>/<implementation>/<size>"; scripts/bench_rows.py
// turns Google Benchmark's JSON into the rows of docs/performance.md.
#include <dmakit/config.hpp>
#include <dmakit/mem/anonymous_source.hpp>
#include <dmakit/mem/buddy.hpp>
#include <dmakit/mem/hugepage_source.hpp>
#include <dmakit/mem/kmalloc.hpp>
#include <dmakit/mem/slab.hpp>
#include <dmakit/support/log.hpp>

#include "kmalloc_c_bench.hpp"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <sched.h>
#include <string>
#include <vector>

#if DMAKIT_HAVE_DPDK
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#endif
#ifdef DMAKIT_BENCH_HAVE_MIMALLOC
#include <mimalloc.h>
#endif

namespace {

using namespace dmakit::mem;

const dmakit::Logger& bench_logger() {
    static const dmakit::Logger logger(dmakit::LogLevel::warning);
    return logger;
}

// The allocator under test: 64 MiB regions of 2 MiB hugepages (4 KiB pages,
// with one warning, when none are reserved). Leak tracking is off unless
// asked for, whatever DMAKIT_LEAK_CHECK says.
std::unique_ptr<BuddyAllocator> make_buddy(std::size_t max_managed = 0, bool leak_check = false) {
    HugepageSourceOptions source_options;
    source_options.logger = &bench_logger();
    auto source = HugepageSource::create(source_options);
    if (!source.ok()) {
        std::fprintf(stderr, "%s\n", dmakit::to_string(source.error()).c_str());
        std::exit(1);
    }
    BuddyOptions options;
    options.logger = &bench_logger();
    options.max_managed = max_managed;
    options.leak_check = leak_check;
    auto buddy = BuddyAllocator::create(std::make_unique<HugepageSource>(std::move(source).value()),
                                        options);
    if (!buddy.ok()) {
        std::fprintf(stderr, "%s\n", dmakit::to_string(buddy.error()).c_str());
        std::exit(1);
    }
    return std::move(buddy).value();
}

struct Shared {
    std::unique_ptr<BuddyAllocator> buddy = make_buddy();
    std::unique_ptr<SlabCache> caches[3];
    std::unique_ptr<Kmalloc> kmalloc = Kmalloc::create(*buddy).value();
    // The same allocators with leak tracking on (*_tracked rows).
    std::unique_ptr<BuddyAllocator> tracked_buddy = make_buddy(0, true);
    std::unique_ptr<SlabCache> tracked_cache =
        SlabCache::create(*tracked_buddy, "bench-tracked-64", 64).value();
    std::unique_ptr<Kmalloc> tracked_kmalloc = Kmalloc::create(*tracked_buddy).value();
};

Shared& shared() {
    static Shared state;
    return state;
}

constexpr std::size_t kSlabSizes[] = {64, 256, 2048};

std::string size_label(std::size_t bytes) {
    if (bytes >= (1u << 20)) return std::to_string(bytes >> 20) + "MiB";
    if (bytes >= 1024) return std::to_string(bytes >> 10) + "KiB";
    return std::to_string(bytes) + "B";
}

SlabCache& slab_cache(int index) {
    auto& slot = shared().caches[index];
    if (!slot) {
        const std::size_t size = kSlabSizes[index];
        slot = SlabCache::create(*shared().buddy, "bench-" + std::to_string(size), size).value();
    }
    return *slot;
}

// ---- slab_pair --------------------------------------------------------------

void slab_pair_dmakit(benchmark::State& state, int index) {
    SlabCache& cache = slab_cache(index);
    for (auto _ : state) {
        void* object = cache.alloc();
        benchmark::DoNotOptimize(object);
        cache.free(object);
    }
}

void slab_pair_glibc(benchmark::State& state, std::size_t size) {
    for (auto _ : state) {
        void* object = std::malloc(size);
        benchmark::DoNotOptimize(object);
        std::free(object);
    }
}

#ifdef DMAKIT_BENCH_HAVE_MIMALLOC
void slab_pair_mimalloc(benchmark::State& state, std::size_t size) {
    for (auto _ : state) {
        void* object = mi_malloc(size);
        benchmark::DoNotOptimize(object);
        mi_free(object);
    }
}
#endif

#if DMAKIT_HAVE_DPDK
rte_mempool* mempool_for(std::size_t size) {
    static rte_mempool* pools[3] = {};
    for (int i = 0; i < 3; ++i) {
        if (kSlabSizes[i] != size) continue;
        if (pools[i] == nullptr) {
            const std::string name = "bench" + std::to_string(size);
            // 256-object per-lcore cache, as rte_mempool users configure it.
            pools[i] = rte_mempool_create(name.c_str(), 16383, static_cast<unsigned>(size), 256, 0,
                                          nullptr, nullptr, nullptr, nullptr, SOCKET_ID_ANY, 0);
        }
        return pools[i];
    }
    return nullptr;
}

void slab_pair_rte_mempool(benchmark::State& state, std::size_t size) {
    rte_mempool* pool = mempool_for(size);
    if (pool == nullptr) {
        state.SkipWithError("rte_mempool_create failed");
        return;
    }
    for (auto _ : state) {
        void* object = nullptr;
        if (rte_mempool_get(pool, &object) != 0) {
            state.SkipWithError("rte_mempool_get failed");
            break;
        }
        benchmark::DoNotOptimize(object);
        rte_mempool_put(pool, object);
    }
}

void buddy_pair_rte_malloc(benchmark::State& state, std::size_t size) {
    for (auto _ : state) {
        void* block = rte_malloc(nullptr, size, 0);
        if (block == nullptr) {
            state.SkipWithError("rte_malloc failed (EAL memory too small?)");
            break;
        }
        benchmark::DoNotOptimize(block);
        rte_free(block);
    }
}
#endif

// ---- kmalloc_pair: kmalloc + kfree (size class lookup, owner from the page) ---

void kmalloc_pair_dmakit(benchmark::State& state, Kmalloc* kmalloc, std::size_t size) {
    for (auto _ : state) {
        void* object = kmalloc->kmalloc(size);
        benchmark::DoNotOptimize(object);
        kmalloc->kfree(object);
    }
}

// ---- leak tracking on: the pairs again, every call recorded and forgotten ---

void slab_pair_tracked(benchmark::State& state) {
    SlabCache& cache = *shared().tracked_cache;
    for (auto _ : state) {
        void* object = cache.alloc();
        benchmark::DoNotOptimize(object);
        cache.free(object);
    }
}

void buddy_pair_on(benchmark::State& state, BuddyAllocator& buddy, unsigned order);

void buddy_pair_tracked(benchmark::State& state, unsigned order) {
    buddy_pair_on(state, *shared().tracked_buddy, order);
}

// ---- slab_scaling: the same pair on 1 and 2 threads --------------------------

void slab_scaling_dmakit(benchmark::State& state) {
    SlabCache& cache = slab_cache(0);
    for (auto _ : state) {
        void* object = cache.alloc();
        benchmark::DoNotOptimize(object);
        cache.free(object);
    }
    state.SetItemsProcessed(state.iterations());
}

// ---- buddy_pair --------------------------------------------------------------

void buddy_pair_dmakit(benchmark::State& state, unsigned order) {
    buddy_pair_on(state, *shared().buddy, order);
}

void buddy_pair_on(benchmark::State& state, BuddyAllocator& buddy, unsigned order) {
    for (auto _ : state) {
        void* block = buddy.alloc_pages(order);
        benchmark::DoNotOptimize(block);
        buddy.free_pages(block);
    }
}

// ---- metadata_overhead: a mixed workload filling 256 MiB ----------------------

void metadata_overhead_dmakit(benchmark::State& state) {
    for (auto _ : state) {
        auto buddy = make_buddy();
        auto kmalloc = Kmalloc::create(*buddy).value();
        std::mt19937_64 rng(1);
        std::vector<void*> objects;
        std::vector<void*> pages;
        const std::size_t target = std::size_t{256} << 20;
        std::size_t used = 0;
        while (used < target) {
            const unsigned pick = static_cast<unsigned>(rng() % 4);
            if (pick == 3) {
                const unsigned order = static_cast<unsigned>(rng() % 4);
                pages.push_back(buddy->alloc_pages(order));
                used += order_bytes(order);
            } else {
                const std::size_t size = kSlabSizes[pick];
                objects.push_back(kmalloc->kmalloc(size));
                used += size;
            }
        }
        std::size_t slab_metadata = 0;
        for (const SlabInfo& info : kmalloc->slabinfo()) slab_metadata += info.metadata_bytes;
        const BuddyStats stats = buddy->stats();
        state.counters["percent"] =
            100.0 * static_cast<double>(stats.metadata_bytes + slab_metadata) /
            static_cast<double>(stats.managed_bytes);
        state.counters["managed_mib"] = static_cast<double>(stats.managed_bytes >> 20);
        for (void* object : objects) kmalloc->kfree(object);
        for (void* page : pages) buddy->free_pages(page);
    }
}

// ---- fragmentation: long random workload at ~60% occupancy --------------------

void fragmentation_dmakit(benchmark::State& state) {
    for (auto _ : state) {
        auto buddy = make_buddy(std::size_t{256} << 20);
        std::mt19937_64 rng(7);
        std::vector<std::pair<void*, unsigned>> live;
        std::size_t live_bytes = 0;
        const std::size_t high_water = std::size_t{160} << 20;
        for (int step = 0; step < 400000; ++step) {
            const bool allocate = live.empty() || (live_bytes < high_water && rng() % 2 == 0);
            if (allocate) {
                // Mostly small blocks, as slabs and I/O buffers ask for them.
                const unsigned r = static_cast<unsigned>(rng() % 100);
                const unsigned order = r < 60 ? 0 : r < 80 ? 1 : r < 90 ? 2 : r < 97 ? 3 : r < 99 ? 6 : 9;
                void* block = buddy->alloc_pages(order);
                if (block == nullptr) continue;
                live.emplace_back(block, order);
                live_bytes += order_bytes(order);
            } else {
                const std::size_t i = rng() % live.size();
                buddy->free_pages(live[i].first);
                live_bytes -= order_bytes(live[i].second);
                live[i] = live.back();
                live.pop_back();
            }
        }
        buddy->drain_thread_cache();
        std::size_t free_total = 0;
        std::size_t free_high = 0;
        unsigned largest = 0;
        for (const RegionBuddyInfo& info : buddy->buddyinfo()) {
            for (unsigned order = 0; order < kOrderCount; ++order) {
                const std::size_t bytes = info.free_blocks[order] * order_bytes(order);
                free_total += bytes;
                if (order >= 9) free_high += bytes;
                if (info.free_blocks[order] != 0) largest = std::max(largest, order);
            }
        }
        state.counters["order9_free_pct"] =
            free_total == 0 ? 0.0 : 100.0 * static_cast<double>(free_high) / static_cast<double>(free_total);
        state.counters["largest_free_order"] = largest;
        state.counters["free_mib"] = static_cast<double>(free_total >> 20);
        for (auto [block, order] : live) buddy->free_pages(block);
    }
}

// Maps the shared region, creates the caches and pools and touches each
// path once, so no timed loop pays for set-up.
void warm_up() {
    for (int i = 0; i < 3; ++i) {
        SlabCache& cache = slab_cache(i);
        cache.free(cache.alloc());
#if DMAKIT_HAVE_DPDK
        (void)mempool_for(kSlabSizes[i]);
#endif
    }
    for (unsigned order : {0u, 9u}) shared().buddy->free_pages(shared().buddy->alloc_pages(order));
    shared().kmalloc->kfree(shared().kmalloc->kmalloc(64));
    shared().tracked_cache->free(shared().tracked_cache->alloc());
    shared().tracked_kmalloc->kfree(shared().tracked_kmalloc->kmalloc(64));
    shared().tracked_buddy->free_pages(shared().tracked_buddy->alloc_pages(0));
}

void register_benchmarks() {
    for (int i = 0; i < 3; ++i) {
        const std::size_t size = kSlabSizes[i];
        const std::string label = size_label(size);
        benchmark::RegisterBenchmark(("slab_pair/dmakit/" + label).c_str(), slab_pair_dmakit, i);
        benchmark::RegisterBenchmark(("slab_pair/glibc/" + label).c_str(), slab_pair_glibc, size);
#if DMAKIT_HAVE_DPDK
        benchmark::RegisterBenchmark(("slab_pair/rte_mempool/" + label).c_str(),
                                     slab_pair_rte_mempool, size);
#endif
#ifdef DMAKIT_BENCH_HAVE_MIMALLOC
        benchmark::RegisterBenchmark(("slab_pair/mimalloc/" + label).c_str(), slab_pair_mimalloc,
                                     size);
#endif
    }
    benchmark::RegisterBenchmark("slab_pair/dmakit_tracked/64B", slab_pair_tracked);
    benchmark::RegisterBenchmark("kmalloc_pair/dmakit/64B", kmalloc_pair_dmakit,
                                 shared().kmalloc.get(), std::size_t{64});
    benchmark::RegisterBenchmark("kmalloc_pair/dmakit_tracked/64B", kmalloc_pair_dmakit,
                                 shared().tracked_kmalloc.get(), std::size_t{64});
    benchmark::RegisterBenchmark("kmalloc_pair/glibc/64B", slab_pair_glibc, std::size_t{64});
    benchmark::RegisterBenchmark("buddy_pair/dmakit_tracked/4KiB", buddy_pair_tracked, 0u);
    benchmark::RegisterBenchmark("slab_scaling/dmakit/64B", slab_scaling_dmakit)
        ->Threads(1)
        ->Threads(2)
        ->UseRealTime();
    for (unsigned order : {0u, 9u}) {
        const std::string label = size_label(order_bytes(order));
        benchmark::RegisterBenchmark(("buddy_pair/dmakit/" + label).c_str(), buddy_pair_dmakit, order);
#if DMAKIT_HAVE_DPDK
        benchmark::RegisterBenchmark(("buddy_pair/rte_malloc/" + label).c_str(),
                                     buddy_pair_rte_malloc, order_bytes(order));
#endif
    }
    benchmark::RegisterBenchmark("metadata_overhead/dmakit/mixed", metadata_overhead_dmakit)
        ->Iterations(1);
    benchmark::RegisterBenchmark("fragmentation/dmakit/order9", fragmentation_dmakit)->Iterations(1);
}

#if DMAKIT_HAVE_DPDK
// Starts the EAL quietly; hugepages when enough are free, else --no-huge.
// EAL pins this thread to lcore 0; the pin is undone so the two-thread
// scaling benchmark is not squeezed onto one CPU.
bool start_eal() {
    cpu_set_t original;
    CPU_ZERO(&original);
    sched_getaffinity(0, sizeof original, &original);
    auto pool = read_hugepage_pool(kHugePage2M);
    const bool hugepages = pool.ok() && pool->free >= 256 + 64;
    std::vector<std::string> args = {"mem_bench", "-l", "0", "--no-pci", "--in-memory",
                                     "--log-level=error", "-m", hugepages ? "256" : "512"};
    if (!hugepages) args.emplace_back("--no-huge");
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    const int rc = rte_eal_init(static_cast<int>(argv.size()), argv.data());
    sched_setaffinity(0, sizeof original, &original);
    if (rc < 0) {
        std::fprintf(stderr, "mem_bench: rte_eal_init failed; DPDK peers are skipped\n");
        return false;
    }
    std::fprintf(stderr, "mem_bench: EAL started with %s\n", hugepages ? "hugepages" : "--no-huge");
    return true;
}
#endif

}  // namespace

int main(int argc, char** argv) {
#if DMAKIT_HAVE_DPDK
    const bool eal = start_eal();
    if (!eal) return 1;
#endif
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    warm_up();
    register_benchmarks();
    register_kmalloc_c_benchmarks(bench_logger());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
#if DMAKIT_HAVE_DPDK
    rte_eal_cleanup();
#endif
    return 0;
}
