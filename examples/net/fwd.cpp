// fwd: forwards frames between two ports, like ixy-fwd: what arrives on A is
// sent on B and the other way round, zero-copy (both ports share one IOMMU
// domain and DMA context, so a buffer of A's pool is mapped for B too).
// With --queues N, thread q forwards between queue q of A and queue q of B.
// Prints per-port RX/TX rates each second.
#include "common.hpp"
#include "frame.hpp"

#include <dmakit/drivers/net/dma_pool_backing.hpp>
#include <dmakit/drivers/net/packet_pool.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

using namespace dmakit;
using namespace dmakit::examples;

namespace {

constexpr const char* kUsage = R"(usage: fwd -a BDF -b BDF [options]

Forwards every frame received on port A out of port B and vice versa, and
prints each port's RX and TX rate every second. Frames B cannot take (ring
full) are dropped and counted, as ixy-fwd does. Both ports run promiscuous,
as testpmd's do, so frames addressed to any station are forwarded.

  -a BDF             first port
  -b BDF             second port
  -t, --time SEC     run for SEC seconds (default 10)
      --burst N      frames per rx_burst/tx_burst, 1..512 (default 32)
      --queues N     queue pairs per port, 1..64 (default 1), each forwarded
                     by its own thread; the ports' driver must offer N
                     (virtio-net with MQ; e1000e has 1)
      --tx-first N   send N bursts of 60-byte frames on each port (and
                     queue) at start
                     (default 0): when A and B sit on one link or hub they
                     then circulate, as with testpmd --tx-first
      --dst MAC      destination of those frames (default ff:ff:ff:ff:ff:ff,
                     broadcast), as testpmd's --eth-peer; frames for a MAC
                     no station has circulate only through promiscuous ports
  -q, --quiet        no per-second lines
      --iommu MODE   IOMMU policy: pool (default; pool memory mapped once) or
                     strict (every buffer mapped on its own, with its
                     direction's permission)
      --json         print one JSON object with the results on stdout
  -h, --help         this text
)";

// One queue's counters: written by its thread only, read by the reporter.
struct QueueCounters {
    std::atomic<std::uint64_t> rx{0}, tx{0}, dropped{0};
};

struct Side {
    std::unique_ptr<net::Nic> nic;
    std::string bdf;
    std::unique_ptr<QueueCounters[]> queues;
    std::uint64_t last_rx = 0, last_tx = 0;
    std::vector<double> rx_per_second, tx_per_second;

    [[nodiscard]] std::uint64_t sum(std::size_t count, std::atomic<std::uint64_t> QueueCounters::*field) const {
        std::uint64_t n = 0;
        for (std::size_t q = 0; q < count; ++q) n += (queues[q].*field).load(std::memory_order_relaxed);
        return n;
    }
};

void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Receives a burst on queue q of `from` and sends it on queue q of `to`;
// false (with the error) when a port failed.
bool forward(Side& from, Side& to, std::size_t q, std::span<net::PacketBuffer*> bufs, Error& error) {
    auto received = from.nic->rx_burst(q, bufs);
    if (!received.ok()) {
        error = std::move(received).error();
        return false;
    }
    const std::size_t n = *received;
    if (n == 0) return true;
    add(from.queues[q].rx, n);
    auto taken = to.nic->tx_burst(q, bufs.first(n));
    if (!taken.ok()) {
        (void)net::free_to_owners(bufs.first(n));
        error = std::move(taken).error();
        return false;
    }
    const std::size_t sent = *taken;
    add(to.queues[q].tx, sent);
    if (sent < n) {
        add(to.queues[q].dropped, n - sent);
        (void)net::free_to_owners(bufs.subspan(sent, n - sent));
    }
    return true;
}

// Shared by the queues' threads: stop flag and the first error.
struct Job {
    std::atomic<bool> stop{false};
    std::mutex lock;
    std::optional<Error> failure;
};

// Queue q, both directions, until `on_round` (every 16 rounds, with the
// time) says stop, the job stops, or a port fails.
template <typename OnRound>
void forward_loop(std::array<Side, 2>& sides, std::size_t q, std::size_t burst, Job& job, OnRound on_round) {
    std::vector<net::PacketBuffer*> bufs(burst);
    Error error(0, "");
    for (std::uint64_t round = 1;; ++round) {
        if (!forward(sides[0], sides[1], q, bufs, error) || !forward(sides[1], sides[0], q, bufs, error)) {
            std::lock_guard guard(job.lock);
            if (!job.failure) job.failure.emplace(std::move(error));
            job.stop.store(true, std::memory_order_relaxed);
            return;
        }
        if ((round & 15) != 0) continue;
        if (job.stop.load(std::memory_order_relaxed) || !on_round(coarse_now())) return;
    }
}

}  // namespace

int main(int argc, char** argv) {
    Args args(argc, argv, "fwd", kUsage);
    std::optional<pci::PciAddress> a, b;
    double duration = 10;
    std::size_t burst = 32, tx_first = 0, queues = 1;
    net::MacAddress seed_destination = net::MacAddress::broadcast();
    bool json = false, quiet = false;
    dma::IommuPolicy iommu = dma::IommuPolicy::pool;
    while (!args.done()) {
        if (args.flag({"-h", "--help"})) args.help();
        else if (auto v = args.option({"-a"})) args.set_port(a, *v);
        else if (auto v = args.option({"-b"})) args.set_port(b, *v);
        else if (auto v = args.option({"-t", "--time"})) duration = args.number<double>(*v, 0.1, 1e6);
        else if (auto v = args.option({"--burst"})) burst = args.number<std::size_t>(*v, 1, 512);
        else if (auto v = args.option({"--tx-first"})) tx_first = args.number<std::size_t>(*v, 0, 64);
        else if (auto v = args.option({"--dst"})) seed_destination = args.mac(*v);
        else if (auto v = args.option({"--queues"})) queues = args.number<std::size_t>(*v, 1, 64);
        else if (auto v = args.option({"--iommu"})) iommu = args.iommu_policy(*v);
        else if (args.flag({"--json"})) json = true;
        else if (args.flag({"-q", "--quiet"})) quiet = true;
        else args.unknown();
    }
    if (!a || !b) args.bad("name both ports with -a BDF -b BDF");
    args.require_distinct(*a, *b);
    FILE* progress = json ? stderr : stdout;
    std::fprintf(progress, "fwd: %s <-> %s, %zu queue pair(s), burst %zu, %.1f s, IOMMU %s\n",
                 a->to_string().c_str(), b->to_string().c_str(), queues, burst, duration, to_string(iommu).data());

    Logger logger(LogLevel::warning);
    dma::PciDmaOptions options;
    options.context.logger = &logger;
    options.context.policy = iommu;
    const std::array addresses{*a, *b};
    auto domain = dma::PciDomain::open(addresses, options);
    if (!domain.ok()) die("fwd", domain.error());
    net::NicDriverRegistry registry;
    if (auto s = net::register_builtin_drivers(registry); !s.ok()) die("fwd", s.error());

    // The pools outlive both ports: a buffer of A's pool may sit in B's TX
    // ring when the ports close, and goes back to A's pool then.
    std::array<std::unique_ptr<net::PacketPool>, 2> pools;
    for (std::size_t i = 0; i < 2; ++i) pools[i] = port_pool_or_die("fwd", (*domain)->context(), addresses[i], logger);
    std::array<Side, 2> sides;
    for (std::size_t i = 0; i < 2; ++i) {
        net::NicOpenContext ctx;
        ctx.address = addresses[i];
        ctx.function = &(*domain)->function(i);
        ctx.pool = pools[i].get();
        ctx.logger = &logger;
        ctx.rx_queues = ctx.tx_queues = static_cast<std::uint32_t>(queues);
        // A forwarder passes on frames for any station. A filtering port
        // drops unicast frames for other MACs (testpmd's txonly frames left
        // in the taps, say); when those were all a loop carried, it died.
        ctx.promiscuous = true;
        sides[i].nic = open_port_or_die("fwd", registry, ctx);
        sides[i].bdf = addresses[i].to_string();
        sides[i].queues = std::make_unique<QueueCounters[]>(queues);
    }

    std::vector<net::PacketBuffer*> bufs(burst);
    for (std::size_t round = 0; round < tx_first; ++round) {
        for (std::size_t q = 0; q < queues; ++q) {
            for (auto& s : sides) {
                net::PacketPool& pool = *s.nic->packet_pool();
                const std::size_t n = pool.alloc_burst(bufs);
                for (std::size_t k = 0; k < n; ++k) {
                    build_frame(*bufs[k], 60, seed_destination, s.nic->mac_address(), 0, round * burst + k);
                }
                auto taken = s.nic->tx_burst(q, std::span(bufs).first(n));
                if (!taken.ok()) die("fwd", taken.error());
                const std::size_t sent = *taken;
                (void)pool.free_burst(std::span(bufs).subspan(sent, n - sent));
            }
        }
    }

    const auto start = Clock::now();
    auto last = start;
    const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
    Job job;
    // Queue pairs 1..N-1 on threads of their own; pair 0 on this thread,
    // which also prints the per-second lines.
    std::vector<std::thread> threads;
    for (std::size_t q = 1; q < queues; ++q) {
        threads.emplace_back([&, q] { forward_loop(sides, q, burst, job, [&](Clock::time_point now) { return now < end; }); });
    }
    forward_loop(sides, 0, burst, job, [&](Clock::time_point now) {
        if (now - last < std::chrono::seconds(1) && now < end) return true;
        const double interval = std::chrono::duration<double>(now - last).count();
        for (auto& s : sides) {
            const std::uint64_t rx = s.sum(queues, &QueueCounters::rx);
            const std::uint64_t tx = s.sum(queues, &QueueCounters::tx);
            s.rx_per_second.push_back((rx - s.last_rx) / interval);
            s.tx_per_second.push_back((tx - s.last_tx) / interval);
            s.last_rx = rx;
            s.last_tx = tx;
        }
        if (!quiet) {
            std::fprintf(progress, "[%5.1fs] %s rx %8.4f Mpps tx %8.4f Mpps | %s rx %8.4f Mpps tx %8.4f Mpps\n",
                         std::chrono::duration<double>(now - start).count(), sides[0].bdf.c_str(),
                         sides[0].rx_per_second.back() / 1e6, sides[0].tx_per_second.back() / 1e6,
                         sides[1].bdf.c_str(), sides[1].rx_per_second.back() / 1e6,
                         sides[1].tx_per_second.back() / 1e6);
            std::fflush(progress);
        }
        last = now;
        return now < end;
    });
    job.stop.store(true, std::memory_order_relaxed);
    for (auto& t : threads) t.join();
    if (job.failure) die("fwd", job.failure->message());
    const double elapsed = seconds_since(start);
    std::string out = "{\"tool\": \"fwd\", \"iommu\": \"" + std::string(to_string(iommu)) +
                      "\", \"queues\": " + std::to_string(queues) + ", \"burst\": " + std::to_string(burst) +
                      ", \"tx_first\": " + std::to_string(tx_first) + ", \"dst\": \"" + seed_destination.to_string() +
                      "\", \"seconds\": " + std::to_string(elapsed) + ", \"ports\": [";
    for (std::size_t i = 0; i < 2; ++i) {
        Side& s = sides[i];
        const std::uint64_t rx = s.sum(queues, &QueueCounters::rx);
        const std::uint64_t tx = s.sum(queues, &QueueCounters::tx);
        const std::uint64_t dropped = s.sum(queues, &QueueCounters::dropped);
        std::fprintf(progress, "%s: forwarded in %llu frames (%.4f Mpps), sent %llu (%.4f Mpps), dropped %llu\n",
                     s.bdf.c_str(), static_cast<unsigned long long>(rx), rx / elapsed / 1e6,
                     static_cast<unsigned long long>(tx), tx / elapsed / 1e6, static_cast<unsigned long long>(dropped));
        // The per-second array grows with -t: appended, not formatted into a fixed buffer.
        char buf[384];
        std::snprintf(buf, sizeof buf,
                      "%s{\"device\": \"%s\", \"rx_packets\": %llu, \"tx_packets\": %llu, \"dropped\": %llu, "
                      "\"rx_pps\": %.1f, \"tx_pps\": %.1f, \"rx_per_second_pps\": ",
                      i ? ", " : "", s.bdf.c_str(), static_cast<unsigned long long>(rx),
                      static_cast<unsigned long long>(tx), static_cast<unsigned long long>(dropped), rx / elapsed,
                      tx / elapsed);
        out += buf;
        // The device's own view of the run; null when the port can no longer be read.
        auto stats = s.nic->stats();
        out += json_array(s.rx_per_second) + ", \"device_counters\": " +
               (stats.ok() ? json_counters(stats->device) : std::string("null")) + "}";
    }
    out += "]}\n";
    if (json) std::fputs(out.c_str(), stdout);
    for (auto& s : sides) s.nic.reset();  // ports first, then the pools, then the domain
    for (std::size_t i = 0; i < 2; ++i) {
        if (pools[i]->in_use() != 0) {
            std::fprintf(stderr, "fwd: %zu buffers of %s's pool were not returned\n",
                         pools[i]->in_use(), sides[i].bdf.c_str());
            return 1;
        }
    }
    return 0;
}
