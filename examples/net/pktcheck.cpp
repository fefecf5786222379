// pktcheck: port A sends N frames carrying a sequence number and a checksum;
// port B receives and verifies every one: count, order, payload. Exit status
// 0 only when all N arrived intact, in order, exactly once.
#include "common.hpp"
#include "frame.hpp"

#include <dmakit/drivers/net/packet_pool.hpp>

#include <array>
#include <random>

using namespace dmakit;
using namespace dmakit::examples;

namespace {

constexpr const char* kUsage = R"(usage: pktcheck -a BDF -b BDF [options]

Port A sends N UDP frames, each with a sequence number, a run id and a
checksum over its payload; port B receives them and checks every one.
Reports frames lost, corrupted, out of order and duplicated, plus frames
that are not from this run (ignored). Exits 1 on any loss or damage.

  -a BDF             sending port
  -b BDF             receiving port
  -n, --count N      frames to send (default 10000)
  -s, --size BYTES   frame size without FCS, 60..1514 (default 60)
      --burst N      frames per tx_burst, 1..512 (default 32)
  -t, --timeout SEC  give up waiting for frames after SEC s (default 30)
  -q, --quiet        no per-second lines
      --iommu MODE   IOMMU policy: pool (default; pool memory mapped once) or
                     strict (every buffer mapped on its own, with its
                     direction's permission)
      --json         print one JSON object with the results on stdout
  -h, --help         this text
)";

}  // namespace

int main(int argc, char** argv) {
    Args args(argc, argv, "pktcheck", kUsage);
    std::optional<pci::PciAddress> a, b;
    std::uint64_t count = 10000;
    std::size_t size = 60, burst = 32;
    double timeout = 30;
    bool json = false, quiet = false;
    dma::IommuPolicy iommu = dma::IommuPolicy::pool;
    while (!args.done()) {
        if (args.flag({"-h", "--help"})) args.help();
        else if (auto v = args.option({"-a"})) args.set_port(a, *v);
        else if (auto v = args.option({"-b"})) args.set_port(b, *v);
        else if (auto v = args.option({"-n", "--count"})) count = args.number<std::uint64_t>(*v, 1, 1ull << 40);
        else if (auto v = args.option({"-s", "--size"})) size = args.number<std::size_t>(*v, 60, 1514);
        else if (auto v = args.option({"--burst"})) burst = args.number<std::size_t>(*v, 1, 512);
        else if (auto v = args.option({"-t", "--timeout"})) timeout = args.number<double>(*v, 0.1, 1e6);
        else if (auto v = args.option({"--iommu"})) iommu = args.iommu_policy(*v);
        else if (args.flag({"--json"})) json = true;
        else if (args.flag({"-q", "--quiet"})) quiet = true;
        else args.unknown();
    }
    if (!a || !b) args.bad("name both ports with -a BDF -b BDF");
    args.require_distinct(*a, *b);
    FILE* progress = json ? stderr : stdout;
    std::fprintf(progress, "pktcheck: %s -> %s, %llu frames of %zu bytes, burst %zu, IOMMU %s\n",
                 a->to_string().c_str(), b->to_string().c_str(), static_cast<unsigned long long>(count), size,
                 burst, to_string(iommu).data());

    Logger logger(LogLevel::warning);
    net::NicDriverRegistry registry;
    if (auto s = net::register_builtin_drivers(registry); !s.ok()) die("pktcheck", s.error());
    auto open = [&](const pci::PciAddress& address) {
        net::NicOpenContext ctx;
        ctx.address = address;
        ctx.logger = &logger;
        ctx.dma_options.context.logger = &logger;
        ctx.dma_options.context.policy = iommu;
        return open_port_or_die("pktcheck", registry, ctx);
    };
    auto rx = open(*b);  // receiver first, so it is ready before the first frame
    auto tx = open(*a);

    const std::uint32_t run = std::random_device{}() | 1u;
    // seen[seq] counts arrivals: 0 lost, 1 fine, more duplicated.
    std::vector<std::uint8_t> seen(count, 0);
    std::uint64_t next = 0, received = 0, corrupt = 0, out_of_order = 0, duplicates = 0, foreign = 0;
    std::uint64_t expected_seq = 0;
    std::vector<net::PacketBuffer*> pending;
    std::array<net::PacketBuffer*, 64> got;
    net::PacketPool& pool = *tx->packet_pool();

    const auto start = Clock::now();
    auto last_report = start;
    auto last_progress = start;  // time of the last frame sent or received
    std::uint64_t last_received = 0;
    while (received + corrupt < count) {
        if (pending.empty() && next < count) {
            pending.resize(std::min<std::uint64_t>(burst, count - next));
            pending.resize(pool.alloc_burst(pending));
            for (auto* p : pending) build_frame(*p, size, rx->mac_address(), tx->mac_address(), run, next++);
        }
        if (!pending.empty()) {
            auto taken = tx->tx_burst(0, pending);
            if (!taken.ok()) die("pktcheck", taken.error());
            const std::size_t sent = *taken;
            if (sent != 0) last_progress = Clock::now();
            pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(sent));
        }
        auto burst = rx->rx_burst(0, got);
        if (!burst.ok()) die("pktcheck", burst.error());
        const std::size_t n = *burst;
        for (std::size_t i = 0; i < n; ++i) {
            std::uint64_t seq = 0;
            switch (check_frame(got[i]->bytes(), run, &seq)) {
                case FrameCheck::foreign: ++foreign; break;
                case FrameCheck::corrupt: ++corrupt; break;
                case FrameCheck::ok:
                    if (seq >= count) {
                        ++corrupt;
                        break;
                    }
                    if (seen[seq]++ != 0) {
                        ++duplicates;
                        break;
                    }
                    ++received;
                    if (seq != expected_seq) ++out_of_order;
                    expected_seq = seq + 1;
                    break;
            }
        }
        if (n != 0) {
            (void)net::free_to_owners(std::span(got).first(n));
            last_progress = Clock::now();
        }
        const auto now = Clock::now();
        if (now - last_report >= std::chrono::seconds(1)) {
            if (!quiet) {
                const double interval = std::chrono::duration<double>(now - last_report).count();
                std::fprintf(progress, "[%5.1fs] sent %llu, verified %llu (%.4f Mpps)\n",
                             std::chrono::duration<double>(now - start).count(),
                             static_cast<unsigned long long>(next - pending.size()),
                             static_cast<unsigned long long>(received),
                             (received - last_received) / interval / 1e6);
                std::fflush(progress);
            }
            last_received = received;
            last_report = now;
        }
        if (std::chrono::duration<double>(now - last_progress).count() > timeout) break;
    }
    const double elapsed = seconds_since(start);
    if (!pending.empty()) (void)pool.free_burst(pending);
    const std::uint64_t not_sent = pending.size() + (count - next);
    const std::uint64_t lost = count - received - corrupt;

    auto sa = tx->stats();
    auto sb = rx->stats();
    if (!sa.ok()) die("pktcheck", sa.error());
    if (!sb.ok()) die("pktcheck", sb.error());
    const bool ok = lost == 0 && corrupt == 0 && out_of_order == 0 && duplicates == 0;
    std::fprintf(progress,
                 "%s -> %s: sent %llu, received %llu intact in %.2f s (%.4f Mpps); lost %llu, corrupt %llu, "
                 "out of order %llu, duplicated %llu, other frames ignored %llu%s\n",
                 a->to_string().c_str(), b->to_string().c_str(),
                 static_cast<unsigned long long>(count - not_sent), static_cast<unsigned long long>(received),
                 elapsed, received / elapsed / 1e6, static_cast<unsigned long long>(lost),
                 static_cast<unsigned long long>(corrupt), static_cast<unsigned long long>(out_of_order),
                 static_cast<unsigned long long>(duplicates), static_cast<unsigned long long>(foreign),
                 not_sent ? (" (" + std::to_string(not_sent) + " never left A: ring stalled)").c_str() : "");
    std::fprintf(progress, "counters: A tx %llu (device GPTC %llu), B rx %llu (device GPRC %llu, missed %llu)\n",
                 static_cast<unsigned long long>(sa->queues[0].tx_packets),
                 static_cast<unsigned long long>(sa->device.tx_good_packets),
                 static_cast<unsigned long long>(sb->queues[0].rx_packets),
                 static_cast<unsigned long long>(sb->device.rx_good_packets),
                 static_cast<unsigned long long>(sb->device.rx_missed));
    std::fprintf(progress, "%s\n", ok ? "PASS" : "FAIL");
    if (json) {
        std::printf("{\"tool\": \"pktcheck\", \"iommu\": \"%s\", \"sender\": \"%s\", \"receiver\": \"%s\", \"count\": %llu, "
                    "\"size\": %zu, \"received\": %llu, \"lost\": %llu, \"corrupt\": %llu, "
                    "\"out_of_order\": %llu, \"duplicates\": %llu, \"foreign\": %llu, \"seconds\": %.3f, "
                    "\"pps\": %.1f, \"ok\": %s}\n",
                    to_string(iommu).data(), a->to_string().c_str(), b->to_string().c_str(),
                    static_cast<unsigned long long>(count), size, static_cast<unsigned long long>(received), static_cast<unsigned long long>(lost),
                    static_cast<unsigned long long>(corrupt), static_cast<unsigned long long>(out_of_order),
                    static_cast<unsigned long long>(duplicates), static_cast<unsigned long long>(foreign),
                    elapsed, received / elapsed, ok ? "true" : "false");
    }
    return ok ? 0 : 1;
}
