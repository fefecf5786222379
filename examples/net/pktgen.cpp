// pktgen: sends UDP frames as fast as the port accepts them (or at --rate),
// on one or more ports and one or more queues per port (one thread per
// queue), and prints Mpps and Gbit/s per port every second.
#include "common.hpp"
#include "frame.hpp"

#include <dmakit/support/inline_copy.hpp>
#include <dmakit/drivers/net/dma_pool_backing.hpp>
#include <dmakit/drivers/net/packet_pool.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

using namespace dmakit;
using namespace dmakit::examples;

namespace {

constexpr const char* kUsage = R"(usage: pktgen -d BDF [-d BDF ...] [options]

Sends UDP frames (IPv4, 10.0.0.1 -> 10.0.0.2, port 54439) on each port as fast
as the port takes them, and prints packets/s and Gbit/s per port each second.
The ports must be bound to vfio-pci (dmakit bind BDF).

  -d, --device BDF   port to send on (repeat for more ports)
  -t, --time SEC     run for SEC seconds (default 10)
  -s, --size BYTES   frame size without FCS, 60..1514 (default 60)
  -b, --burst N      frames per tx_burst call, 1..512 (default 32)
  -r, --rate PPS     per-port rate limit in frames/s (default: none)
      --dst MAC      destination MAC of every frame (default
                     ff:ff:ff:ff:ff:ff, broadcast); a unicast MAC of no
                     station shows which receivers filter and which are
                     promiscuous
      --queues N     TX queues per port, 1..64 (default 1), each driven by
                     its own thread (queue q of every port on thread q);
                     the port's driver must offer N queues (virtio-net with
                     MQ: N queue pairs; e1000e: 1)
  -q, --quiet        no per-second lines
      --iommu MODE   IOMMU policy: pool (default; pool memory mapped once) or
                     strict (every buffer mapped on its own, with its
                     direction's permission)
      --json         print one JSON object with the results on stdout
                     (per-second lines go to stderr)
  -h, --help         this text

Gbit/s counts frame bytes plus the 4-byte FCS, without preamble and gap.
)";

struct Port {
    std::unique_ptr<net::Nic> nic;
    std::string bdf;
    // Frames taken by tx_burst, per queue: each queue's thread adds, the
    // reporting thread reads.
    std::unique_ptr<std::atomic<std::uint64_t>[]> sent;
    std::uint64_t last_sent = 0;
    std::vector<double> per_second;
    unsigned link_down_seconds = 0;  // per-second checks that found the link down

    [[nodiscard]] std::uint64_t total(std::size_t queues) const {
        std::uint64_t n = 0;
        for (std::size_t q = 0; q < queues; ++q) n += sent[q].load(std::memory_order_relaxed);
        return n;
    }
};

// What every queue's thread shares: the ports and their one pool, the frame
// templates, the settings, and how a thread says it stopped on an error.
struct Job {
    std::vector<Port>* ports;
    net::PacketPool* pool;
    const std::vector<std::vector<std::byte>>* templates;
    std::size_t size, burst;
    double rate_per_queue;  // 0: unlimited
    Clock::time_point start, end;
    std::atomic<bool> stop{false};
    std::mutex failure_lock;
    std::optional<std::pair<std::size_t, Error>> failure;  // port index, error
};

// One queue's loop: queue q of every port, with the thread's private cache
// of the ports' pool (rte_mempool's per-lcore cache). `on_round` runs every
// 16 rounds with the time; it returns false to stop. Returns when told to
// stop, at the end time, or on an error (recorded in the job).
template <typename OnRound>
void send_loop(Job& job, std::size_t q, OnRound on_round) {
    std::vector<Port>& ports = *job.ports;
    net::PacketPoolCache pool = job.pool->make_cache();
    std::vector<net::PacketBuffer*> bufs(job.burst);
    // Every 16 rounds the coarse clock (coarse_now: no system call, no
    // emulated timer read); a rate limit needs the precise one per round.
    Clock::time_point now = job.start;
    for (std::uint64_t round = 0;; ++round) {
        if (job.rate_per_queue > 0) now = Clock::now();
        else if ((round & 15) == 0) now = coarse_now();
        if ((round & 15) == 0 && (job.stop.load(std::memory_order_relaxed) || !on_round(now))) break;
        for (std::size_t i = 0; i < ports.size(); ++i) {
            Port& p = ports[i];
            std::atomic<std::uint64_t>& sent_here = p.sent[q];
            const std::uint64_t sent_before = sent_here.load(std::memory_order_relaxed);
            std::size_t want = job.burst;
            if (job.rate_per_queue > 0) {
                const double allowed = job.rate_per_queue * std::chrono::duration<double>(now - job.start).count();
                if (allowed <= static_cast<double>(sent_before)) continue;
                want = std::min<std::size_t>(want, static_cast<std::size_t>(allowed - static_cast<double>(sent_before)) + 1);
            }
            const std::size_t n = pool.alloc_burst(std::span(bufs).first(want));
            // copy_inline, not memcpy: a memcpy call is glibc's AVX2 code in
            // the guest, which made QEMU spend about twice the host CPU per
            // frame (support/inline_copy.hpp).
            for (std::size_t k = 0; k < n; ++k) {
                copy_inline(bufs[k]->data(), (*job.templates)[i].data(), job.size);
                bufs[k]->length = static_cast<std::uint32_t>(job.size);
            }
            auto taken = p.nic->tx_burst(q, std::span(bufs).first(n));
            if (!taken.ok()) {
                // Typically the port was removed: give back what we hold and
                // let the main thread report how many buffers are still out.
                (void)pool.free_burst(std::span(bufs).first(n));
                std::lock_guard lock(job.failure_lock);
                if (!job.failure) job.failure.emplace(i, std::move(taken).error());
                job.stop.store(true, std::memory_order_relaxed);
                return;
            }
            if (*taken < n) (void)pool.free_burst(std::span(bufs).subspan(*taken, n - *taken));
            sent_here.store(sent_before + *taken, std::memory_order_relaxed);
        }
        if (job.rate_per_queue > 0) std::this_thread::yield();
    }
    // The cache goes back to the pool here, before the ports close.
}

}  // namespace

int main(int argc, char** argv) {
    Args args(argc, argv, "pktgen", kUsage);
    std::vector<pci::PciAddress> addresses;
    double duration = 10;
    std::size_t size = 60, burst = 32, queues = 1;
    double rate = 0;
    net::MacAddress destination = net::MacAddress::broadcast();
    bool json = false, quiet = false;
    dma::IommuPolicy iommu = dma::IommuPolicy::pool;
    while (!args.done()) {
        if (args.flag({"-h", "--help"})) args.help();
        else if (auto v = args.option({"-d", "--device"})) args.add_port(addresses, *v);
        else if (auto v = args.option({"-t", "--time"})) duration = args.number<double>(*v, 0.1, 1e6);
        else if (auto v = args.option({"-s", "--size"})) size = args.number<std::size_t>(*v, 60, 1514);
        else if (auto v = args.option({"-b", "--burst"})) burst = args.number<std::size_t>(*v, 1, 512);
        else if (auto v = args.option({"-r", "--rate"})) rate = args.number<double>(*v, 1, 1e9);
        else if (auto v = args.option({"--dst"})) destination = args.mac(*v);
        else if (auto v = args.option({"--queues"})) queues = args.number<std::size_t>(*v, 1, 64);
        else if (auto v = args.option({"--iommu"})) iommu = args.iommu_policy(*v);
        else if (args.flag({"--json"})) json = true;
        else if (args.flag({"-q", "--quiet"})) quiet = true;
        else args.unknown();
    }
    if (addresses.empty()) args.bad("name at least one port with -d BDF");
    FILE* progress = json ? stderr : stdout;
    std::fprintf(progress, "pktgen: %zu port(s), %zu queue(s) each, %zu-byte frames, burst %zu, %.1f s, IOMMU %s\n",
                 addresses.size(), queues, size, burst, duration, to_string(iommu).data());

    Logger logger(LogLevel::warning);
    net::NicDriverRegistry registry;
    if (auto s = net::register_builtin_drivers(registry); !s.ok()) die("pktgen", s.error());
    // All ports in one DMA domain with one packet pool, as testpmd runs its
    // ports from one mempool. With a pool per port, the store into each fresh
    // buffer missed QEMU's software TLB (direct-mapped) often enough to cost
    // about 70 ns a frame with two ports, and not with one: the pools'
    // busiest buffers sit at the same offsets of regions carved alike
    // (docs/performance.md, NIC).
    dma::PciDmaOptions dma_options;
    dma_options.context.logger = &logger;
    dma_options.context.policy = iommu;
    auto domain = dma::PciDomain::open(addresses, dma_options);
    if (!domain.ok()) die("pktgen", domain.error());
    // Per port what the port would make for itself: its rings and 1024 in flight.
    const net::NicOpenContext defaults;
    const std::size_t per_port = queues * (std::size_t{defaults.rx_ring_size} + defaults.tx_ring_size) + 1024;
    net::PacketPoolConfig pool_config;
    pool_config.logger = &logger;
    auto pool = net::create_dma_packet_pool((*domain)->context(), "pktgen", addresses.size() * per_port,
                                            2048 + 128, pool_config);
    if (!pool.ok()) die("pktgen", pool.error());
    std::vector<Port> ports;
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        net::NicOpenContext ctx;
        ctx.address = addresses[i];
        ctx.function = &(*domain)->function(i);
        ctx.pool = pool->get();
        ctx.logger = &logger;
        ctx.rx_queues = ctx.tx_queues = static_cast<std::uint32_t>(queues);
        Port port;
        port.nic = open_port_or_die("pktgen", registry, ctx);
        port.bdf = addresses[i].to_string();
        port.sent = std::make_unique<std::atomic<std::uint64_t>[]>(queues);
        ports.push_back(std::move(port));
    }

    // One template frame per port; each send copies it into a fresh buffer
    // (the pool does not promise which buffer comes back).
    std::vector<std::vector<std::byte>> templates;
    for (auto& p : ports) {
        templates.emplace_back(size);
        build_frame(templates.back(), size, destination, p.nic->mac_address(), 0, 0);
    }

    Job job;
    job.ports = &ports;
    job.pool = pool->get();
    job.templates = &templates;
    job.size = size;
    job.burst = burst;
    job.rate_per_queue = rate / static_cast<double>(queues);
    job.start = Clock::now();
    job.end = job.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
    const auto start = job.start;
    const auto end = job.end;

    // Queues 1..N-1 on threads of their own; queue 0 on this thread, which
    // also prints the per-second lines.
    std::vector<std::thread> threads;
    for (std::size_t q = 1; q < queues; ++q) {
        threads.emplace_back([&job, q] { send_loop(job, q, [&](Clock::time_point now) { return now < job.end; }); });
    }
    auto next_tick = start + std::chrono::seconds(1);
    send_loop(job, 0, [&](Clock::time_point now) {
        if (now < next_tick && now < end) return true;
        const double interval = std::chrono::duration<double>(now - (next_tick - std::chrono::seconds(1))).count();
        for (auto& p : ports) {
            const std::uint64_t total = p.total(queues);
            const double pps = (total - p.last_sent) / interval;
            p.per_second.push_back(pps);
            p.last_sent = total;
            // One register read a second: a link that drops shows here
            // (frames queued meanwhile wait in the ring, or are lost).
            auto link = p.nic->link();
            const bool up = link.ok() && link->up;
            if (!up) ++p.link_down_seconds;
            if (!quiet) {
                std::fprintf(progress, "[%5.1fs] %s: %8.4f Mpps %7.4f Gbit/s%s\n",
                             std::chrono::duration<double>(now - start).count(), p.bdf.c_str(), pps / 1e6,
                             gbits(pps, size), up ? "" : "  (link down)");
            }
        }
        std::fflush(progress);
        next_tick += std::chrono::seconds(1);
        return now < end;
    });
    job.stop.store(true, std::memory_order_relaxed);
    for (auto& t : threads) t.join();
    if (job.failure) {
        // The other ports' rings hold buffers of the same pool: close them
        // first, so the count of buffers still out is the failed port's.
        Port& p = ports[job.failure->first];
        for (auto& other : ports) {
            if (&other != &p) other.nic.reset();
        }
        report_port_failure("pktgen", p.bdf, *p.nic, job.failure->second);
        return 1;
    }
    const double elapsed = seconds_since(start);

    std::string out = "{\"tool\": \"pktgen\", \"iommu\": \"" + std::string(to_string(iommu)) +
                      "\", \"queues\": " + std::to_string(queues) + ", \"size\": " + std::to_string(size) +
                      ", \"burst\": " + std::to_string(burst) + ", \"dst\": \"" + destination.to_string() +
                      "\", \"seconds\": " +
                      std::to_string(elapsed) + ", \"ports\": [";
    double total = 0;
    for (std::size_t i = 0; i < ports.size(); ++i) {
        Port& p = ports[i];
        for (std::size_t q = 0; q < queues; ++q) (void)p.nic->tx_burst(q, {});  // reclaim what completed
        auto stats = p.nic->stats();
        if (!stats.ok()) die("pktgen", stats.error());
        const std::uint64_t sent = p.total(queues);
        std::uint64_t ring_full = 0;
        for (const auto& qs : stats->queues) ring_full += qs.tx_ring_full;
        const double pps = sent / elapsed;
        total += pps;
        std::fprintf(progress, "%s: sent %llu frames of %zu bytes in %.2f s: %.4f Mpps, %.4f Gbit/s "
                               "(device GPTC %llu, ring-full calls %llu)\n",
                     p.bdf.c_str(), static_cast<unsigned long long>(sent), size, elapsed, pps / 1e6,
                     gbits(pps, size), static_cast<unsigned long long>(stats->device.tx_good_packets),
                     static_cast<unsigned long long>(ring_full));
        // The per-second array grows with -t: appended, not formatted into a fixed buffer.
        char buf[384];
        std::snprintf(buf, sizeof buf,
                      "%s{\"device\": \"%s\", \"packets\": %llu, \"pps\": %.1f, \"gbps\": %.4f, "
                      "\"device_tx_packets\": %llu, \"link_down_seconds\": %u, \"per_second_pps\": ",
                      i ? ", " : "", p.bdf.c_str(), static_cast<unsigned long long>(sent), pps,
                      gbits(pps, size), static_cast<unsigned long long>(stats->device.tx_good_packets),
                      p.link_down_seconds);
        out += buf;
        out += json_array(p.per_second) + ", \"device_counters\": " + json_counters(stats->device) + "}";
    }
    char tail[128];
    std::snprintf(tail, sizeof tail, "], \"total_pps\": %.1f}\n", total);
    out += tail;
    if (json) std::fputs(out.c_str(), stdout);
    return 0;
}
