// fwd: forwards frames between two ports, like ixy-fwd: what arrives on A is
// sent on B and the other way round, zero-copy (both ports share one IOMMU
// domain and DMA context, so a buffer of A's pool is mapped for B too).
// Prints per-port RX/TX rates each second.
#include "common.hpp"
#include "frame.hpp"

#include <net/dma_pool_backing.hpp>
#include <net/packet_pool.hpp>

#include <array>

using namespace dmakit;
using namespace dmakit::examples;

namespace {

constexpr const char* kUsage = R"(usage: fwd -a BDF -b BDF [options]

Forwards every frame received on port A out of port B and vice versa, and
prints each port's RX and TX rate every second. Frames B cannot take (ring
full) are dropped and counted, as ixy-fwd does.

  -a BDF             first port
  -b BDF             second port
  -t, --time SEC     run for SEC seconds (default 10)
      --burst N      frames per rx_burst/tx_burst, 1..512 (default 32)
      --tx-first N   send N bursts of 60-byte frames on each port at start
                     (default 0): when A and B sit on one link or hub they
                     then circulate, as with testpmd --tx-first
  -q, --quiet        no per-second lines
      --iommu MODE   IOMMU policy: pool (default; pool memory mapped once) or
                     strict (every buffer mapped on its own, with its
                     direction's permission)
      --json         print one JSON object with the results on stdout
  -h, --help         this text
)";

struct Side {
    std::unique_ptr<net::Nic> nic;
    std::string bdf;
    std::uint64_t rx = 0, tx = 0, dropped = 0;
    std::uint64_t last_rx = 0, last_tx = 0;
    std::vector<double> rx_per_second, tx_per_second;
};

void forward(Side& from, Side& to, std::span<net::PacketBuffer*> bufs) {
    auto received = from.nic->rx_burst(0, bufs);
    if (!received.ok()) die("fwd", received.error().message());
    const std::size_t n = *received;
    if (n == 0) return;
    from.rx += n;
    auto taken = to.nic->tx_burst(0, bufs.first(n));
    if (!taken.ok()) die("fwd", taken.error().message());
    const std::size_t sent = *taken;
    to.tx += sent;
    if (sent < n) {
        to.dropped += n - sent;
        (void)net::free_to_owners(bufs.subspan(sent, n - sent));
    }
}

}  // namespace

int main(int argc, char** argv) {
    Args args(argc, argv, "fwd", kUsage);
    std::optional<pci::PciAddress> a, b;
    double duration = 10;
    std::size_t burst = 32, tx_first = 0;
    bool json = false, quiet = false;
    dma::IommuPolicy iommu = dma::IommuPolicy::pool;
    while (!args.done()) {
        if (args.flag({"-h", "--help"})) args.help();
        else if (auto v = args.option({"-a"})) args.set_port(a, *v);
        else if (auto v = args.option({"-b"})) args.set_port(b, *v);
        else if (auto v = args.option({"-t", "--time"})) duration = args.number<double>(*v, 0.1, 1e6);
        else if (auto v = args.option({"--burst"})) burst = args.number<std::size_t>(*v, 1, 512);
        else if (auto v = args.option({"--tx-first"})) tx_first = args.number<std::size_t>(*v, 0, 64);
        else if (auto v = args.option({"--iommu"})) iommu = args.iommu_policy(*v);
        else if (args.flag({"--json"})) json = true;
        else if (args.flag({"-q", "--quiet"})) quiet = true;
        else args.unknown();
    }
    if (!a || !b) args.bad("name both ports with -a BDF -b BDF");
    args.require_distinct(*a, *b);
    FILE* progress = json ? stderr : stdout;
    std::fprintf(progress, "fwd: %s <-> %s, burst %zu, %.1f s, IOMMU %s\n", a->to_string().c_str(),
                 b->to_string().c_str(), burst, duration, to_string(iommu).data());

    Logger logger(LogLevel::warning);
    dma::PciDmaOptions options;
    options.context.logger = &logger;
    options.context.policy = iommu;
    const std::array addresses{*a, *b};
    auto domain = dma::PciDomain::open(addresses, options);
    if (!domain.ok()) die("fwd", domain.error().message());
    net::NicDriverRegistry registry;
    if (auto s = net::register_builtin_drivers(registry); !s.ok()) die("fwd", s.error().message());

    // The pools outlive both ports: a buffer of A's pool may sit in B's TX
    // ring when the ports close, and goes back to A's pool then.
    std::array<std::unique_ptr<net::PacketPool>, 2> pools;
    for (std::size_t i = 0; i < 2; ++i) {
        net::PacketPoolConfig config;
        config.logger = &logger;
        auto pool = net::create_dma_packet_pool((*domain)->context(), "fwd-" + addresses[i].to_string(),
                                                4096, 2048 + 128, config);
        if (!pool.ok()) die("fwd", pool.error().message());
        pools[i] = std::move(pool).value();
    }
    std::array<Side, 2> sides;
    for (std::size_t i = 0; i < 2; ++i) {
        net::NicOpenContext ctx;
        ctx.address = addresses[i];
        ctx.function = &(*domain)->function(i);
        ctx.pool = pools[i].get();
        ctx.logger = &logger;
        sides[i].nic = open_port_or_die("fwd", registry, ctx);
        sides[i].bdf = addresses[i].to_string();
    }

    std::vector<net::PacketBuffer*> bufs(burst);
    for (std::size_t round = 0; round < tx_first; ++round) {
        for (auto& s : sides) {
            net::PacketPool& pool = *s.nic->packet_pool();
            const std::size_t n = pool.alloc_burst(bufs);
            for (std::size_t k = 0; k < n; ++k) {
                build_frame(*bufs[k], 60, net::MacAddress{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
                            s.nic->mac_address(), 0, round * burst + k);
            }
            auto taken = s.nic->tx_burst(0, std::span(bufs).first(n));
            if (!taken.ok()) die("fwd", taken.error().message());
            const std::size_t sent = *taken;
            (void)pool.free_burst(std::span(bufs).subspan(sent, n - sent));
        }
    }

    const auto start = Clock::now();
    auto last = start;
    const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
    for (std::uint64_t round = 1;; ++round) {
        forward(sides[0], sides[1], bufs);
        forward(sides[1], sides[0], bufs);
        if ((round & 15) != 0) continue;  // the clock may be costly in a guest: see pktgen
        const auto now = Clock::now();
        if (now - last >= std::chrono::seconds(1) || now >= end) {
            const double interval = std::chrono::duration<double>(now - last).count();
            for (auto& s : sides) {
                s.rx_per_second.push_back((s.rx - s.last_rx) / interval);
                s.tx_per_second.push_back((s.tx - s.last_tx) / interval);
                s.last_rx = s.rx;
                s.last_tx = s.tx;
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
            if (now >= end) break;
        }
    }
    const double elapsed = seconds_since(start);
    std::string out = "{\"tool\": \"fwd\", \"iommu\": \"" + std::string(to_string(iommu)) +
                      "\", \"burst\": " + std::to_string(burst) +
                      ", \"seconds\": " + std::to_string(elapsed) + ", \"ports\": [";
    for (std::size_t i = 0; i < 2; ++i) {
        Side& s = sides[i];
        std::fprintf(progress, "%s: forwarded in %llu frames (%.4f Mpps), sent %llu (%.4f Mpps), dropped %llu\n",
                     s.bdf.c_str(), static_cast<unsigned long long>(s.rx), s.rx / elapsed / 1e6,
                     static_cast<unsigned long long>(s.tx), s.tx / elapsed / 1e6,
                     static_cast<unsigned long long>(s.dropped));
        // The per-second array grows with -t: appended, not formatted into a fixed buffer.
        char buf[384];
        std::snprintf(buf, sizeof buf,
                      "%s{\"device\": \"%s\", \"rx_packets\": %llu, \"tx_packets\": %llu, \"dropped\": %llu, "
                      "\"rx_pps\": %.1f, \"tx_pps\": %.1f, \"rx_per_second_pps\": ",
                      i ? ", " : "", s.bdf.c_str(), static_cast<unsigned long long>(s.rx),
                      static_cast<unsigned long long>(s.tx), static_cast<unsigned long long>(s.dropped),
                      s.rx / elapsed, s.tx / elapsed);
        out += buf;
        out += json_array(s.rx_per_second) + "}";
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
