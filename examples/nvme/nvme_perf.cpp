// nvme_perf: I/O load generator in the manner of spdk_nvme_perf, on dmakit's
// NVMe driver. One thread and one I/O queue pair per -c, each thread pinned
// to its own CPU (round robin over the allowed ones); a line per second,
// then IOPS, MiB/s and latency percentiles per queue and in total, and CPU
// time per I/O (getrusage). --sweep runs the DMA-throughput table instead
// (--plot FILE.svg draws it).
#include "common.hpp"
#include "../svg_line_chart.hpp"

#include <dmakit/dma/large_buffer.hpp>

#include <pthread.h>
#include <sched.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

using namespace dmakit;
using Clock = std::chrono::steady_clock;

namespace {

const char* const prog = "nvme_perf";

void help() {
    std::printf(
        "usage: nvme_perf [-d BDF] [-q DEPTH] [-o SIZE] [-w PATTERN] [-M READ%%] [-t SECONDS]\n"
        "                 [-c QUEUES] [-n NSID] [-m MEMORY] [--interrupts] [--no-dbbuf] [--iommu MODE]\n"
        "                 [--transfer MODE] [--json]\n"
        "       nvme_perf [-d BDF] --sweep [-q DEPTH] [-t SECONDS_PER_CELL] [--iommu MODE] [--json]\n"
        "                 [--plot FILE.svg]\n"
        "Drives an NVMe namespace through dmakit's user-space driver and reports IOPS,\n"
        "MiB/s and latency (avg, p50, p99, p99.9) per queue and in total.\n"
        "  -d BDF          controller (default: the first NVMe controller on vfio-pci)\n"
        "  -q DEPTH        commands in flight per queue (default 32)\n"
        "  -o SIZE         bytes per I/O, a multiple of the block size (default 4k); the\n"
        "                  driver splits I/Os above the controller's MDTS into several commands\n"
        "  -w PATTERN      read | write | randread | randwrite | rw | randrw (default randread)\n"
        "  -M PERCENT      reads in rw/randrw (default 50)\n"
        "  -t SECONDS      run time (default 5)\n"
        "  -c, --queues N  I/O queue pairs, one thread each, pinned to CPUs in turn (default 1)\n"
        "  -n NSID         namespace (default: the first)\n"
        "  -m MEMORY       data buffers: hugepage (default; alloc_coherent, mapped once),\n"
        "                  4k_pages (alloc_large) or map_single (caller memory, mapped and\n"
        "                  unmapped around every command: the per-I/O cost strict mode adds)\n"
        "  --interrupts    wait on MSI-X eventfds instead of busy polling (a vector per queue)\n"
        "  --no-dbbuf      no shadow doorbells (Doorbell Buffer Config): every doorbell\n"
        "                  is a register write, to compare\n"
        "  --iommu MODE    IOMMU policy: pool (default; pool memory mapped once) or strict\n"
        "                  (every buffer mapped on its own, with its direction's permission)\n"
        "  --transfer MODE data pointers: auto (default), prp or sgl (NVMe 1.4 §4.3, §4.4)\n"
        "  --sweep         sequential read and write, 4 KiB..4 MiB per I/O, into hugepage\n"
        "                  memory (alloc_coherent), 4 KiB-page memory (alloc_large) and\n"
        "                  caller memory (map_single per command), each with PRPs and (where\n"
        "                  the controller has them) SGLs; a MiB/s table\n"
        "                  (-t is per cell, default 1; -q default 8)\n"
        "  --plot FILE.svg with --sweep: also draw the sweep as an SVG chart, MiB/s against\n"
        "                  transfer size, a line per memory kind and data path, reads and\n"
        "                  writes side by side\n"
        "  --json          results as one JSON object\n"
        "  -h, --help      this text\n");
}

enum class Mem { hugepage, pages4k, caller };
const char* mem_name(Mem m) {
    switch (m) {
        case Mem::hugepage: return "hugepage";
        case Mem::pages4k: return "4k_pages";
        case Mem::caller: return "map_single";
    }
    return "?";
}

struct JobConfig {
    std::uint32_t nsid = 1;
    std::uint32_t block_size = 512;
    std::uint64_t ns_blocks = 0;
    std::uint32_t depth = 32;
    std::uint64_t io_size = 4096;
    bool random = true;
    int read_percent = 100;
    Mem mem = Mem::hugepage;
    std::uint64_t max_command = 0;  // bytes per command; the driver splits larger I/Os
    bool interrupts = false;
    nvme::DataTransfer transfer = nvme::DataTransfer::automatic;
};

struct JobResult {
    std::uint64_t ios = 0, reads = 0, writes = 0, errors = 0, bytes = 0;
    examples::Histogram latency;
    double cpu_seconds = 0;
    std::string error;
};

double thread_cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_THREAD, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

class Worker {
public:
    Worker(nvme::IoQueue& q, dma::DmaDevice& dma, JobConfig cfg, const std::atomic<bool>& stop)
        : q_(q), dma_(dma), cfg_(cfg), stop_(stop), rng_(0x9e3779b97f4a7c15ull ^ (std::uint64_t{q.qid()} << 32)) {}

    std::atomic<std::uint64_t> done{0};  // for the per-second line, written by this worker only
    std::atomic<bool> finished{false};   // run() returned (time up, or an error such as a removed device)

    JobResult run() {
        JobResult res;
        if (auto s = allocate(); !s.ok()) {
            res.error = s.error().message();
            finished.store(true, std::memory_order_release);
            return res;
        }
        res_ = &res;
        slots_.resize(cfg_.depth);
        const double cpu0 = thread_cpu_seconds();
        for (std::uint32_t i = 0; i < cfg_.depth; ++i) {
            slots_[i].w = this;
            slots_[i].index = i;
            if (!start(slots_[i])) break;
        }
        while (!stop_.load(std::memory_order_relaxed) && res.error.empty()) {
            if (cfg_.interrupts) {
                (void)q_.wait(std::chrono::milliseconds(10));
            } else {
                q_.poll();
            }
        }
        // Drain what is in flight; nothing new is started once stop is set.
        const auto give_up = Clock::now() + std::chrono::seconds(10);
        while (q_.outstanding() > 0 && Clock::now() < give_up) q_.poll();
        res.cpu_seconds = thread_cpu_seconds() - cpu0;
        finished.store(true, std::memory_order_release);
        return res;
    }

private:
    struct Slot {
        Worker* w = nullptr;
        std::uint32_t index = 0;
        bool failed = false;
        bool read = true;
        Clock::time_point started;
    };

    Status allocate() {
        const std::size_t bytes = std::size_t{cfg_.depth} * cfg_.io_size;
        switch (cfg_.mem) {
            case Mem::hugepage: {
                DMAKIT_ASSIGN_OR_RETURN(coherent_, dma_.alloc_coherent(bytes));
                base_cpu_ = static_cast<std::byte*>(coherent_.cpu());
                base_dma_ = coherent_.dma().value();
                break;
            }
            case Mem::pages4k: {
                DMAKIT_ASSIGN_OR_RETURN(large_, dma_.alloc_large(bytes));
                base_cpu_ = static_cast<std::byte*>(large_.cpu());
                base_dma_ = large_.dma().value();
                break;
            }
            case Mem::caller: {
                host_.reset(static_cast<std::byte*>(std::aligned_alloc(4096, bytes)));
                if (!host_) return Error(ENOMEM, "out of memory for the caller buffer");
                std::memset(host_.get(), 0x5a, bytes);
                base_cpu_ = host_.get();
                break;
            }
        }
        return {};
    }

    static void on_done(void* user, const nvme::IoCompletion& c) noexcept {
        auto* s = static_cast<Slot*>(user);
        s->failed = !c.ok();
        s->w->complete(*s);
    }

    void complete(Slot& s) {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - s.started).count();
        if (s.failed) {
            ++res_->errors;
        } else {
            res_->latency.add(static_cast<std::uint64_t>(ns));
            ++res_->ios;
            res_->bytes += cfg_.io_size;
            ++(s.read ? res_->reads : res_->writes);
        }
        done.store(done.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        if (!stop_.load(std::memory_order_relaxed)) start(s);
    }

    std::uint64_t next_rand() noexcept {  // xorshift64*
        rng_ ^= rng_ >> 12;
        rng_ ^= rng_ << 25;
        rng_ ^= rng_ >> 27;
        return rng_ * 0x2545f4914f6cdd1dull;
    }

    bool start(Slot& s) {
        const std::uint64_t blocks_per_io = cfg_.io_size / cfg_.block_size;
        const std::uint64_t slots_in_ns = cfg_.ns_blocks / blocks_per_io;
        std::uint64_t unit;
        if (cfg_.random) {
            unit = next_rand() % slots_in_ns;
        } else {
            unit = seq_next_++ % slots_in_ns;
        }
        s.read = cfg_.read_percent >= 100 || (cfg_.read_percent > 0 && int(next_rand() % 100) < cfg_.read_percent);
        s.failed = false;
        s.started = Clock::now();
        // One request per I/O; above MDTS the driver sends it as several commands.
        const std::uint64_t buf_off = std::uint64_t{s.index} * cfg_.io_size;
        const std::uint64_t slba = unit * blocks_per_io;
        const auto blocks = static_cast<std::uint32_t>(blocks_per_io);
        Result<std::uint16_t> r = std::uint16_t{0};
        if (cfg_.mem == Mem::caller) {
            r = s.read ? q_.read_host(cfg_.nsid, slba, blocks, base_cpu_ + buf_off, &on_done, &s)
                       : q_.write_host(cfg_.nsid, slba, blocks, base_cpu_ + buf_off, &on_done, &s);
        } else {
            const nvme::DmaSegment seg{base_dma_ + buf_off, cfg_.io_size};
            r = s.read ? q_.read(cfg_.nsid, slba, blocks, {&seg, 1}, &on_done, &s)
                       : q_.write(cfg_.nsid, slba, blocks, {&seg, 1}, &on_done, &s);
        }
        if (!r.ok()) {
            res_->error = r.error().message();
            return false;
        }
        return true;
    }

    struct FreeDeleter {
        void operator()(std::byte* p) const noexcept { std::free(p); }
    };

    nvme::IoQueue& q_;
    dma::DmaDevice& dma_;
    JobConfig cfg_;
    const std::atomic<bool>& stop_;
    std::uint64_t rng_;
    std::uint64_t seq_next_ = 0;
    std::vector<Slot> slots_;
    JobResult* res_ = nullptr;
    dma::CoherentBuffer coherent_;
    dma::LargeBuffer large_;
    std::unique_ptr<std::byte, FreeDeleter> host_;
    std::byte* base_cpu_ = nullptr;
    std::uint64_t base_dma_ = 0;
};

// Pins the calling thread to the `index`-th CPU this process may run on
// (modulo their count), so -c N spreads N queues over N cores. Returns the CPU.
int pin_to_cpu(unsigned index) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) == 0) return -1;
    const unsigned want = index % static_cast<unsigned>(CPU_COUNT(&allowed));
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        if (static_cast<unsigned>(seen++) != want) continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0 ? cpu : -1;
    }
    return -1;
}

struct RunOutput {
    std::vector<JobResult> per_queue;
    std::vector<std::uint16_t> qids;
    std::vector<int> cpus;                       // where each queue's thread ran (-1: not pinned)
    std::vector<nvme::DoorbellCounts> doorbells;  // register writes made and skipped, per queue
    std::vector<std::uint64_t> per_second;  // total I/Os completed in each second
    double seconds = 0;
};

// Runs `queues` workers for `seconds`, one thread and one queue each.
Result<RunOutput> run(nvme::Controller& c, const JobConfig& cfg, unsigned queues, double seconds, bool print_lines) {
    // Commands per I/O as the driver splits it (MDTS, and NLB's 65536 blocks).
    const std::uint64_t per_command = std::min<std::uint64_t>(cfg.max_command, 65536ull * cfg.block_size);
    const std::uint64_t pieces = cfg.io_size <= per_command ? 1 : (cfg.io_size + per_command - 1) / per_command;
    const std::uint64_t depth = std::max<std::uint64_t>(cfg.depth * pieces + 1, 2);
    if (depth > c.max_io_queue_depth()) {
        return Error(EINVAL, "queue depth " + std::to_string(cfg.depth) + " x " + std::to_string(pieces) +
                                 " commands per I/O exceeds the controller's " + std::to_string(c.max_io_queue_depth()) +
                                 " entries per queue");
    }
    std::vector<nvme::IoQueue*> qs;
    for (unsigned i = 0; i < queues; ++i) {
        DMAKIT_ASSIGN_OR_RETURN(nvme::IoQueue * q, c.create_io_queue(static_cast<std::uint32_t>(depth)));
        q->set_data_transfer(cfg.transfer);
        qs.push_back(q);
    }
    std::atomic<bool> stop{false};
    std::vector<std::unique_ptr<Worker>> workers;
    for (auto* q : qs) workers.push_back(std::make_unique<Worker>(*q, c.dma(), cfg, stop));
    RunOutput out;
    out.per_queue.resize(queues);
    out.cpus.assign(queues, -1);
    std::vector<std::thread> threads;
    const auto t0 = Clock::now();
    for (unsigned i = 0; i < queues; ++i) {
        threads.emplace_back([&, i] {
            out.cpus[i] = pin_to_cpu(i);
            out.per_queue[i] = workers[i]->run();
        });
    }
    std::uint64_t last = 0;
    const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    auto all_finished = [&] {
        return std::all_of(workers.begin(), workers.end(),
                           [](const auto& w) { return w->finished.load(std::memory_order_acquire); });
    };
    // Workers stop early only on an error (a removed controller, say): then
    // so does the run, instead of idling to the end of -t.
    for (int sec = 1; Clock::now() < end && !all_finished(); ++sec) {
        const auto tick = std::min(end, t0 + std::chrono::seconds(sec));
        std::this_thread::sleep_until(tick);
        std::uint64_t total = 0;
        for (auto& w : workers) total += w->done.load(std::memory_order_relaxed);
        out.per_second.push_back(total - last);
        const double span = std::chrono::duration<double>(tick - (t0 + std::chrono::seconds(sec - 1))).count();
        if (print_lines) {
            std::fprintf(stderr, "  %3ds %12.0f IOPS %10.2f MiB/s\n", sec, double(total - last) / span,
                         double(total - last) * double(cfg.io_size) / span / (1 << 20));
        }
        last = total;
    }
    stop.store(true);
    for (auto& t : threads) t.join();
    out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    // Wall time ends when the drain did; use the nominal window for rates.
    out.seconds = seconds;
    for (auto* q : qs) {
        out.qids.push_back(q->qid());
        out.doorbells.push_back(q->doorbell_counts());
        if (auto s = c.delete_io_queue(q); !s.ok()) {
            std::fprintf(stderr, "%s: deleting queue: %s\n", prog, dmakit::to_string(s.error()).c_str());
        }
    }
    for (const auto& r : out.per_queue) {
        if (!r.error.empty()) return Error(EIO, r.error);
    }
    return out;
}

// Why `path` cannot take the chart, checked before any device is touched:
// empty when it can.
std::string plot_path_problem(const std::string& path) {
    const auto slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    struct stat st {};
    if (slash + 1 == path.size()) return "--plot wants a file name, got the folder '" + path + "'";
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return "--plot " + path + " is a folder; give a file name";
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return "--plot " + path + ": folder " + dir + " does not exist";
    // Opening it is the only true test (read-only mounts, /proc, root's
    // bypass of permission bits); a file made here is removed again.
    const bool existed = access(path.c_str(), F_OK) == 0;
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return "--plot " + path + ": cannot write there (" + std::strerror(errno) + ")";
    close(fd);
    if (!existed) unlink(path.c_str());
    return {};
}

struct SweepCell {
    bool write;
    std::uint64_t size;
    Mem memory;
    nvme::DataTransfer path;
    double mibps;
};

// The sweep as a chart: a panel per direction, a line per memory kind
// (colour) and data path (solid PRP, dashed SGL).
examples::LineChart sweep_chart(const std::vector<SweepCell>& cells, std::vector<std::string> footnote) {
    examples::LineChart chart;
    chart.title = "DMA throughput against transfer size (nvme_perf --sweep)";
    chart.x_label = "transfer size per I/O (log2 scale)";
    chart.y_label = "throughput (MiB/s)";
    chart.x_tick_text = examples::byte_size_text;
    chart.footnote = std::move(footnote);
    for (bool write : {false, true}) {
        examples::ChartPanel panel{write ? "sequential write" : "sequential read", {}};
        for (const SweepCell& cell : cells) {
            if (cell.write != write) continue;
            std::string name = std::string(mem_name(cell.memory)) + " " + (cell.path == nvme::DataTransfer::sgl ? "SGL" : "PRP");
            auto it = std::find_if(panel.series.begin(), panel.series.end(), [&](const auto& s) { return s.name == name; });
            if (it == panel.series.end()) {
                panel.series.push_back({name, {}, static_cast<int>(cell.memory), cell.path == nvme::DataTransfer::sgl});
                it = panel.series.end() - 1;
            }
            it->points.emplace_back(double(cell.size), cell.mibps);
        }
        chart.panels.push_back(std::move(panel));
    }
    return chart;
}

}  // namespace

int main(int argc, char** argv) {
    std::optional<pci::PciAddress> device;
    std::string_view pattern = "randread";
    std::uint64_t depth = 0, io_size = 4096, seconds = 0, queues = 1, read_pct = 50, nsid = 0;
    bool json = false, sweep = false, interrupts = false, dbbuf = true;
    std::string plot;
    dma::IommuPolicy iommu = dma::IommuPolicy::pool;
    Mem mem = Mem::hugepage;
    nvme::DataTransfer transfer = nvme::DataTransfer::automatic;
    examples::Args args(argc, argv);
    while (args.next()) {
        const auto a = args.current();
        if (a == "-h" || a == "--help") { help(); return 0; }
        else if (a == "-d") args.device(prog, device);
        else if (a == "-q") depth = args.number(prog, 1, 4096);
        else if (a == "-o") io_size = args.number(prog, 512, 64ull << 20);
        else if (a == "-w") pattern = args.value(prog);
        else if (a == "-M") read_pct = args.number(prog, 0, 100);
        else if (a == "-t") seconds = args.number(prog, 1, 86400);
        else if (a == "-c" || a == "--queues") queues = args.number(prog, 1, 64);
        else if (a == "-n") nsid = args.number(prog, 1, 0xfffffffe);
        else if (a == "-m") {
            const auto m = args.value(prog);
            if (m == "hugepage") mem = Mem::hugepage;
            else if (m == "4k_pages") mem = Mem::pages4k;
            else if (m == "map_single") mem = Mem::caller;
            else examples::usage_error(prog, "-m wants hugepage, 4k_pages or map_single, got '" + std::string(m) + "'");
        }
        else if (a == "--interrupts") interrupts = true;
        else if (a == "--no-dbbuf") dbbuf = false;
        else if (a == "--sweep") sweep = true;
        else if (a == "--iommu") iommu = args.iommu_policy(prog);
        else if (a == "--transfer") transfer = args.data_transfer(prog);
        else if (a == "--json") json = true;
        else if (a == "--plot") plot = args.value(prog);
        else examples::usage_error(prog, "unknown option '" + std::string(a) + "'");
    }
    if (!plot.empty()) {
        if (!sweep) examples::usage_error(prog, "--plot draws the DMA sweep: give --sweep too");
        if (auto problem = plot_path_problem(plot); !problem.empty()) examples::usage_error(prog, problem);
    }
    JobConfig cfg;
    if (pattern == "read" || pattern == "randread") cfg.read_percent = 100;
    else if (pattern == "write" || pattern == "randwrite") cfg.read_percent = 0;
    else if (pattern == "rw" || pattern == "randrw") cfg.read_percent = static_cast<int>(read_pct);
    else examples::usage_error(prog, "-w wants read, write, randread, randwrite, rw or randrw, got '" + std::string(pattern) + "'");
    cfg.random = pattern.starts_with("rand");
    cfg.interrupts = interrupts;
    cfg.transfer = transfer;

    const auto address = examples::device_or_default(prog, device);
    nvme::ControllerOptions options;
    options.interrupts = interrupts;
    options.shadow_doorbells = dbbuf;
    options.max_io_queues = static_cast<std::uint32_t>(std::max<std::uint64_t>(queues, 1));
    auto opened = examples::open_controller(address, options, iommu);
    if (!opened.ok()) {
        std::fprintf(stderr, "%s: %s\n", prog, dmakit::to_string(opened.error()).c_str());
        return 1;
    }
    nvme::Controller& c = *opened->controller;
    if (c.namespaces().empty()) {
        std::fprintf(stderr, "%s: controller %s has no usable namespace\n", prog, address.to_string().c_str());
        return 1;
    }
    const nvme::NamespaceInfo* ns = nsid ? c.find_namespace(static_cast<std::uint32_t>(nsid)) : &c.namespaces()[0];
    if (ns == nullptr) examples::usage_error(prog, "namespace " + std::to_string(nsid) + " is not active");
    if (ns->separate_metadata()) {
        examples::usage_error(prog, "namespace " + std::to_string(ns->nsid) + " has " +
                                        std::to_string(ns->metadata_size()) +
                                        " bytes of separate metadata per block, which nvme_perf does not drive; "
                                        "nvme_verify -n " + std::to_string(ns->nsid) + " does");
    }
    if (queues > c.io_queues_granted()) {
        examples::usage_error(prog, "-c " + std::to_string(queues) + ": the controller granted only " +
                                        std::to_string(c.io_queues_granted()) + " I/O queues");
    }
    cfg.nsid = ns->nsid;
    cfg.block_size = ns->block_size();
    cfg.ns_blocks = ns->nsze;
    cfg.max_command = c.max_transfer();

    if (sweep) {
        cfg.depth = static_cast<std::uint32_t>(depth ? depth : 8);
        const double cell = double(seconds ? seconds : 1);
        cfg.random = false;
        const std::uint64_t sizes[] = {4096, 16384, 65536, 262144, 1 << 20, 4 << 20};
        const Mem mems[] = {Mem::hugepage, Mem::pages4k, Mem::caller};
        std::vector<nvme::DataTransfer> paths{nvme::DataTransfer::prp};
        if (c.sgl_support().supported) paths.push_back(nvme::DataTransfer::sgl);
        std::string rows;
        std::vector<SweepCell> cells;
        if (!json) {
            std::printf("DMA throughput sweep, %s nsid %u, sequential, queue depth %u, %.0f s per cell, "
                        "IOMMU %s, MiB/s\n",
                        address.to_string().c_str(), cfg.nsid, cfg.depth, cell, to_string(iommu).data());
            if (cfg.max_command != UINT64_MAX) {
                std::printf("  (the driver splits I/Os above the %llu KiB MDTS into commands of that size)\n",
                            static_cast<unsigned long long>(cfg.max_command / 1024));
            }
            if (paths.size() == 1) std::printf("  (the controller has no SGLs: PRP only)\n");
            std::printf("%-8s %-11s %-5s %10s %10s\n", "size", "memory", "path", "read", "write");
        }
        for (std::uint64_t size : sizes) {
            if (size % cfg.block_size != 0 || size / cfg.block_size > cfg.ns_blocks) continue;
            for (Mem m : mems) {
              for (nvme::DataTransfer path : paths) {
                double mibps[2] = {0, 0};
                for (int w = 0; w < 2; ++w) {
                    JobConfig j = cfg;
                    j.io_size = size;
                    j.mem = m;
                    j.transfer = path;
                    j.read_percent = w ? 0 : 100;
                    auto r = run(c, j, 1, cell, false);
                    if (!r.ok()) {
                        std::fprintf(stderr, "%s: sweep %llu %s %s: %s\n", prog, static_cast<unsigned long long>(size),
                                     mem_name(m), to_string(path), dmakit::to_string(r.error()).c_str());
                        return 1;
                    }
                    mibps[w] = double(r->per_queue[0].bytes) / r->seconds / (1 << 20);
                    cells.push_back({w == 1, size, m, path, mibps[w]});
                    if (json) {
                        rows += std::string(rows.empty() ? "" : ", ") + "{\"op\": \"" + (w ? "write" : "read") +
                                "\", \"size\": " + std::to_string(size) + ", \"memory\": \"" + mem_name(m) +
                                "\", \"transfer\": \"" + to_string(path) +
                                "\", \"mibps\": " + examples::json_number(mibps[w]) + "}";
                    }
                }
                if (!json) {
                    std::printf("%-8s %-11s %-5s %10.1f %10.1f\n",
                                (size >= (1 << 20) ? std::to_string(size >> 20) + "M" : std::to_string(size >> 10) + "K").c_str(),
                                mem_name(m), to_string(path), mibps[0], mibps[1]);
                    std::fflush(stdout);
                }
              }
            }
        }
        if (json) {
            std::printf("{\"address\": \"%s\", \"depth\": %u, \"iommu\": \"%s\", \"sweep\": [%s]}\n",
                        address.to_string().c_str(), cfg.depth, to_string(iommu).data(), rows.c_str());
        }
        if (!plot.empty()) {
            std::string command = "nvme_perf";
            for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
            utsname un{};
            uname(&un);
            // Appended, not snprintf into a fixed buffer: the model and uname
            // strings are unbounded, and GCC 12 -O3 refused the release build
            // (-Werror=format-truncation).
            char numbers[96];
            std::snprintf(numbers, sizeof numbers, "nsid %u, queue depth %u, %.0f s per cell", cfg.nsid, cfg.depth,
                          cell);
            std::string setup = "controller ";
            setup.append(address.to_string()).append(" (").append(c.info().model).append("), ").append(numbers);
            setup.append(", IOMMU ").append(to_string(iommu)).append("; ").append(un.sysname).append(" ");
            setup.append(un.release).append(" ").append(un.machine);
            const std::string svg = examples::to_svg(sweep_chart(cells, {command, setup}));
            std::FILE* f = std::fopen(plot.c_str(), "w");
            const bool written = f && std::fwrite(svg.data(), 1, svg.size(), f) == svg.size();
            if (f && std::fclose(f) != 0) f = nullptr;
            if (!written || !f) {
                std::fprintf(stderr, "%s: cannot write the chart to %s: %s\n", prog, plot.c_str(), std::strerror(errno));
                return 1;
            }
            std::fprintf(stderr, "%s: chart written to %s\n", prog, plot.c_str());
        }
        return 0;
    }

    cfg.depth = static_cast<std::uint32_t>(depth ? depth : 32);
    cfg.io_size = io_size;
    cfg.mem = mem;
    if (io_size % cfg.block_size != 0) {
        examples::usage_error(prog, "-o " + std::to_string(io_size) + " is not a multiple of the " +
                                        std::to_string(cfg.block_size) + "-byte block size");
    }
    const double secs = double(seconds ? seconds : 5);
    if (!json) {
        std::fprintf(stderr, "nvme_perf %s nsid %u: %s, %llu bytes, depth %u, %llu queue(s), %.0f s%s, %s memory, IOMMU %s, shadow doorbells %s\n",
                     address.to_string().c_str(), cfg.nsid, std::string(pattern).c_str(),
                     static_cast<unsigned long long>(io_size), cfg.depth, static_cast<unsigned long long>(queues), secs,
                     interrupts ? ", MSI-X interrupts" : ", polling", mem_name(mem), to_string(iommu).data(),
                     c.shadow_doorbells_active() ? "on" : (dbbuf ? "off (not offered or refused)" : "off (--no-dbbuf)"));
    }
    rusage ru0{}, ru1{};
    getrusage(RUSAGE_SELF, &ru0);
    auto r = run(c, cfg, static_cast<unsigned>(queues), secs, !json);
    getrusage(RUSAGE_SELF, &ru1);
    if (!r.ok()) {
        std::fprintf(stderr, "%s: %s\n", prog, dmakit::to_string(r.error()).c_str());
        return 1;
    }
    auto tv = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
    const double process_cpu = tv(ru1.ru_utime) - tv(ru0.ru_utime) + tv(ru1.ru_stime) - tv(ru0.ru_stime);

    examples::Histogram all;
    JobResult total;
    std::string qjson;
    if (!json) {
        std::printf("%-6s %12s %10s %10s %10s %10s %10s %10s\n", "queue", "IOPS", "MiB/s", "avg us", "p50 us",
                    "p99 us", "p99.9 us", "errors");
    }
    auto line = [&](const std::string& name, const JobResult& j, const examples::Histogram& h, int cpu) {
        const double iops = double(j.ios) / r->seconds;
        const double mibps = double(j.bytes) / r->seconds / (1 << 20);
        if (json) {
            return "{\"queue\": " + examples::json_string(name) + ", \"ios\": " + std::to_string(j.ios) +
                   ", \"iops\": " + examples::json_number(iops) + ", \"mibps\": " + examples::json_number(mibps) +
                   ", \"lat_avg_us\": " + examples::json_number(h.mean_us()) + ", \"lat_p50_us\": " +
                   examples::json_number(h.percentile_us(50)) + ", \"lat_p99_us\": " +
                   examples::json_number(h.percentile_us(99)) + ", \"lat_p999_us\": " +
                   examples::json_number(h.percentile_us(99.9)) + ", \"errors\": " + std::to_string(j.errors) +
                   ", \"cpu_seconds\": " + examples::json_number(j.cpu_seconds) +
                   (cpu >= 0 ? ", \"cpu\": " + std::to_string(cpu) : std::string()) + "}";
        }
        std::printf("%-6s %12.0f %10.2f %10.1f %10.1f %10.1f %10.1f %10llu\n", name.c_str(), iops, mibps, h.mean_us(),
                    h.percentile_us(50), h.percentile_us(99), h.percentile_us(99.9),
                    static_cast<unsigned long long>(j.errors));
        return std::string();
    };
    for (std::size_t i = 0; i < r->per_queue.size(); ++i) {
        const JobResult& j = r->per_queue[i];
        qjson += (i ? ", " : "") + line(std::to_string(r->qids[i]), j, j.latency, r->cpus[i]);
        all.merge(j.latency);
        total.ios += j.ios;
        total.bytes += j.bytes;
        total.errors += j.errors;
        total.cpu_seconds += j.cpu_seconds;
    }
    const std::string tjson = line("total", total, all, -1);
    std::uint64_t mmio_writes = 0, mmio_skipped = 0;
    for (const nvme::DoorbellCounts& d : r->doorbells) {
        mmio_writes += d.mmio_writes;
        mmio_skipped += d.mmio_skipped;
    }
    const double writes_per_io = total.ios ? double(mmio_writes) / double(total.ios) : 0.0;
    const double cpu_us_per_io = total.ios ? total.cpu_seconds / double(total.ios) * 1e6 : 0.0;
    if (json) {
        std::string per_sec;
        for (std::size_t i = 0; i < r->per_second.size(); ++i) per_sec += (i ? ", " : "") + std::to_string(r->per_second[i]);
        std::printf("{\"address\": \"%s\", \"nsid\": %u, \"pattern\": \"%s\", \"io_size\": %llu, \"depth\": %u, "
                    "\"queues\": %llu, \"seconds\": %.3f, \"interrupts\": %s, \"memory\": \"%s\", \"iommu\": \"%s\", \"per_queue\": [%s], \"total\": %s, "
                    "\"cpu_seconds\": %.6f, \"process_cpu_seconds\": %.6f, \"cpu_us_per_io\": %.4f, \"per_second_ios\": [%s], "
                    "\"dbbuf\": %s, \"doorbell_writes\": %llu, \"doorbell_writes_skipped\": %llu, \"doorbell_writes_per_io\": %.4f}\n",
                    address.to_string().c_str(), cfg.nsid, std::string(pattern).c_str(),
                    static_cast<unsigned long long>(io_size), cfg.depth, static_cast<unsigned long long>(queues),
                    r->seconds, interrupts ? "true" : "false", mem_name(mem), to_string(iommu).data(), qjson.c_str(), tjson.c_str(), total.cpu_seconds,
                    process_cpu, cpu_us_per_io, per_sec.c_str(), c.shadow_doorbells_active() ? "true" : "false",
                    static_cast<unsigned long long>(mmio_writes), static_cast<unsigned long long>(mmio_skipped),
                    writes_per_io);
    } else {
        std::printf("CPU: %.3f s in I/O threads (%.3f s whole process), %.2f us per I/O\n", total.cpu_seconds,
                    process_cpu, cpu_us_per_io);
        std::printf("Doorbells: shadow %s, %llu register writes (%.2f per I/O), %llu left to the shadow\n",
                    c.shadow_doorbells_active() ? "on" : "off", static_cast<unsigned long long>(mmio_writes),
                    writes_per_io, static_cast<unsigned long long>(mmio_skipped));
    }
    return total.errors == 0 ? 0 : 1;
}
