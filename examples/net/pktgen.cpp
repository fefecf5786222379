// pktgen: sends UDP frames as fast as the port accepts them (or at --rate),
// on one or more ports, and prints Mpps and Gbit/s per port every second.
#include "common.hpp"
#include "frame.hpp"

#include <net/packet_pool.hpp>

#include <array>
#include <cstring>
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
    std::uint64_t sent = 0;
    std::uint64_t last_sent = 0;
    std::vector<double> per_second;
    unsigned link_down_seconds = 0;  // per-second checks that found the link down
};

}  // namespace

int main(int argc, char** argv) {
    Args args(argc, argv, "pktgen", kUsage);
    std::vector<pci::PciAddress> addresses;
    double duration = 10;
    std::size_t size = 60, burst = 32;
    double rate = 0;
    bool json = false, quiet = false;
    dma::IommuPolicy iommu = dma::IommuPolicy::pool;
    while (!args.done()) {
        if (args.flag({"-h", "--help"})) args.help();
        else if (auto v = args.option({"-d", "--device"})) args.add_port(addresses, *v);
        else if (auto v = args.option({"-t", "--time"})) duration = args.number<double>(*v, 0.1, 1e6);
        else if (auto v = args.option({"-s", "--size"})) size = args.number<std::size_t>(*v, 60, 1514);
        else if (auto v = args.option({"-b", "--burst"})) burst = args.number<std::size_t>(*v, 1, 512);
        else if (auto v = args.option({"-r", "--rate"})) rate = args.number<double>(*v, 1, 1e9);
        else if (auto v = args.option({"--iommu"})) iommu = args.iommu_policy(*v);
        else if (args.flag({"--json"})) json = true;
        else if (args.flag({"-q", "--quiet"})) quiet = true;
        else args.unknown();
    }
    if (addresses.empty()) args.bad("name at least one port with -d BDF");
    FILE* progress = json ? stderr : stdout;
    std::fprintf(progress, "pktgen: %zu port(s), %zu-byte frames, burst %zu, %.1f s, IOMMU %s\n",
                 addresses.size(), size, burst, duration, to_string(iommu).data());

    Logger logger(LogLevel::warning);
    net::NicDriverRegistry registry;
    if (auto s = net::register_builtin_drivers(registry); !s.ok()) die("pktgen", s.error().message());
    std::vector<Port> ports;
    for (const auto& a : addresses) {
        net::NicOpenContext ctx;
        ctx.address = a;
        ctx.logger = &logger;
        ctx.dma_options.context.logger = &logger;
        ctx.dma_options.context.policy = iommu;
        Port port;
        port.nic = open_port_or_die("pktgen", registry, ctx);
        port.bdf = a.to_string();
        ports.push_back(std::move(port));
    }

    // One template frame per port; each send copies it into a fresh buffer
    // (the pool does not promise which buffer comes back).
    const net::MacAddress broadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
    std::vector<std::vector<std::byte>> templates;
    for (auto& p : ports) {
        templates.emplace_back(size);
        build_frame(templates.back(), size, broadcast, p.nic->mac_address(), 0, 0);
    }

    // One private cache per port (rte_mempool's per-lcore cache): allocation
    // takes the pool's lock once per cache refill, not once per burst.
    std::vector<net::PacketPoolCache> caches;
    for (auto& p : ports) caches.push_back(p.nic->packet_pool()->make_cache());

    std::vector<net::PacketBuffer*> bufs(burst);
    const auto start = Clock::now();
    auto next_tick = start + std::chrono::seconds(1);
    const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
    // The guest's clock may be a system call plus an emulated timer read
    // (no stable TSC under TCG): read it once per 16 rounds, not per burst,
    // unless a rate limit needs it.
    Clock::time_point now = start;
    for (std::uint64_t round = 0;; ++round) {
        if (rate > 0 || (round & 15) == 0) now = Clock::now();
        if ((round & 15) == 0 && (now >= next_tick || now >= end)) {
            const double interval = std::chrono::duration<double>(now - (next_tick - std::chrono::seconds(1))).count();
            for (auto& p : ports) {
                const double pps = (p.sent - p.last_sent) / interval;
                p.per_second.push_back(pps);
                p.last_sent = p.sent;
                // One register read a second: a link that drops shows here
                // (frames queued meanwhile wait in the ring, or are lost).
                auto link = p.nic->link();
                const bool up = link.ok() && link->up;
                if (!up) ++p.link_down_seconds;
                if (!quiet) {
                    std::fprintf(progress, "[%5.1fs] %s: %8.4f Mpps %7.4f Gbit/s%s\n",
                                 std::chrono::duration<double>(now - start).count(), p.bdf.c_str(),
                                 pps / 1e6, gbits(pps, size), up ? "" : "  (link down)");
                }
            }
            std::fflush(progress);
            next_tick += std::chrono::seconds(1);
            if (now >= end) break;
        }
        for (std::size_t i = 0; i < ports.size(); ++i) {
            Port& p = ports[i];
            std::size_t want = burst;
            if (rate > 0) {
                const double allowed = rate * std::chrono::duration<double>(now - start).count();
                if (allowed <= static_cast<double>(p.sent)) continue;
                want = std::min<std::size_t>(want, static_cast<std::size_t>(allowed - static_cast<double>(p.sent)) + 1);
            }
            net::PacketPoolCache& pool = caches[i];
            const std::size_t n = pool.alloc_burst(std::span(bufs).first(want));
            for (std::size_t k = 0; k < n; ++k) {
                std::memcpy(bufs[k]->data(), templates[i].data(), size);
                bufs[k]->length = static_cast<std::uint32_t>(size);
            }
            auto sent = p.nic->tx_burst(0, std::span(bufs).first(n));
            if (!sent.ok()) {
                // Typically the port was removed: say so, give back what we
                // hold and show that the pool got every buffer back.
                (void)pool.free_burst(std::span(bufs).first(n));
                caches.clear();
                report_port_failure("pktgen", p.bdf, *p.nic, sent.error());
                return 1;
            }
            const std::size_t taken = *sent;
            if (taken < n) (void)pool.free_burst(std::span(bufs).subspan(taken, n - taken));
            p.sent += taken;
        }
        if (rate > 0) std::this_thread::yield();
    }
    const double elapsed = seconds_since(start);

    caches.clear();  // back to the pools before the ports close
    std::string out = "{\"tool\": \"pktgen\", \"iommu\": \"" + std::string(to_string(iommu)) +
                      "\", \"size\": " + std::to_string(size) +
                      ", \"burst\": " + std::to_string(burst) + ", \"seconds\": " +
                      std::to_string(elapsed) + ", \"ports\": [";
    double total = 0;
    for (std::size_t i = 0; i < ports.size(); ++i) {
        Port& p = ports[i];
        (void)p.nic->tx_burst(0, {});  // reclaim what completed
        auto stats = p.nic->stats();
        if (!stats.ok()) die("pktgen", stats.error().message());
        const double pps = p.sent / elapsed;
        total += pps;
        std::fprintf(progress, "%s: sent %llu frames of %zu bytes in %.2f s: %.4f Mpps, %.4f Gbit/s "
                               "(device GPTC %llu, ring-full calls %llu)\n",
                     p.bdf.c_str(), static_cast<unsigned long long>(p.sent), size, elapsed, pps / 1e6,
                     gbits(pps, size), static_cast<unsigned long long>(stats->device.tx_good_packets),
                     static_cast<unsigned long long>(stats->queues[0].tx_ring_full));
        // The per-second array grows with -t: appended, not formatted into a fixed buffer.
        char buf[384];
        std::snprintf(buf, sizeof buf,
                      "%s{\"device\": \"%s\", \"packets\": %llu, \"pps\": %.1f, \"gbps\": %.4f, "
                      "\"device_tx_packets\": %llu, \"link_down_seconds\": %u, \"per_second_pps\": ",
                      i ? ", " : "", p.bdf.c_str(), static_cast<unsigned long long>(p.sent), pps,
                      gbits(pps, size), static_cast<unsigned long long>(stats->device.tx_good_packets),
                      p.link_down_seconds);
        out += buf;
        out += json_array(p.per_second) + "}";
    }
    char tail[128];
    std::snprintf(tail, sizeof tail, "], \"total_pps\": %.1f}\n", total);
    out += tail;
    if (json) std::fputs(out.c_str(), stdout);
    return 0;
}
