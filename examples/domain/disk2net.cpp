// disk2net: an NVMe controller and two NIC ports in ONE IOMMU domain
// (dma::PciDomain). Blocks are read from the namespace straight into port A's
// packet buffers and sent from there: the controller's DMA and the NIC's DMA
// use the same buffer at the same device address, with no copy. Port B
// receives every frame and checks its payload against the same blocks read
// once more into coherent memory. Exit 0 only when every frame arrived once
// with the right bytes.
#include "../net/common.hpp"
#include "../net/frame.hpp"

#include <dmakit/drivers/net/dma_pool_backing.hpp>
#include <dmakit/drivers/net/packet_pool.hpp>
#include <dmakit/drivers/nvme/controller.hpp>
#include <dmakit/drivers/nvme/io_queue.hpp>

#include <dmakit/dma/pci_domain.hpp>

#include <array>
#include <cstring>
#include <vector>

using namespace dmakit;
using namespace dmakit::examples;

namespace {

constexpr const char* kUsage = R"(usage: disk2net -d NVME_BDF -a BDF -b BDF [options]

Opens the NVMe controller and ports A and B in one IOMMU domain, reads N
frames' worth of blocks from the namespace directly into A's packet buffers
(no copy: the same buffer is the NVMe read's target and the NIC's source),
sends them from A, receives them on B and checks every payload against the
blocks read again into coherent memory. Reads only; nothing is written to
the disk. All three devices must be bound to vfio-pci (dmakit bind BDF).

  -d, --nvme BDF     NVMe controller (namespace 1)
  -a BDF             sending port
  -b BDF             receiving port
  -n, --count N      frames to send (default 10000); each carries 1 KiB of
                     blocks (one block when blocks are larger), from LBA 0 on
      --burst N      frames per NVMe batch and tx_burst, 1..256 (default 32)
  -t, --timeout SEC  give up waiting for frames after SEC s (default 30)
      --iommu MODE   IOMMU policy: pool (default) or strict (every buffer
                     mapped on its own, with its direction's permission)
      --json         print one JSON object with the results on stdout
  -h, --help         this text
)";

// After the UDP header: first LBA (u64 LE), frame number (u32 LE), blocks
// (u16 LE). 42 + 14 = 56 keeps the blocks dword aligned, as PRP1 must be
// (NVMe 1.4 §4.3: bits 1:0 of a PRP entry are zero).
constexpr std::size_t kAppHeader = 14;
constexpr std::size_t kDataOffset = kPayloadOffset + kAppHeader;

struct Totals {
    std::uint64_t sent = 0, received = 0, verified = 0, corrupt = 0, duplicate = 0, foreign = 0;
};

}  // namespace

int main(int argc, char** argv) {
    Args args(argc, argv, "disk2net", kUsage);
    std::optional<pci::PciAddress> nvme_bdf, a, b;
    std::uint64_t count = 10000;
    std::size_t burst = 32;
    double timeout = 30;
    bool json = false;
    dma::IommuPolicy iommu = dma::IommuPolicy::pool;
    while (!args.done()) {
        if (args.flag({"-h", "--help"})) args.help();
        else if (auto v = args.option({"-d", "--nvme"})) args.set_port(nvme_bdf, *v);
        else if (auto v = args.option({"-a"})) args.set_port(a, *v);
        else if (auto v = args.option({"-b"})) args.set_port(b, *v);
        else if (auto v = args.option({"-n", "--count"})) count = args.number<std::uint64_t>(*v, 1, 10'000'000);
        else if (auto v = args.option({"--burst"})) burst = args.number<std::size_t>(*v, 1, 256);
        else if (auto v = args.option({"-t", "--timeout"})) timeout = args.number<double>(*v, 0.1, 3600);
        else if (auto v = args.option({"--iommu"})) iommu = args.iommu_policy(*v);
        else if (args.flag({"--json"})) json = true;
        else args.unknown();
    }
    if (!nvme_bdf || !a || !b) args.bad("name the controller and both ports: -d NVME_BDF -a BDF -b BDF");
    args.require_distinct(*a, *b);
    if (*nvme_bdf == *a || *nvme_bdf == *b) {
        args.bad(nvme_bdf->to_string() + " is given both as the NVMe controller (-d) and as a port; they must differ");
    }
    FILE* progress = json ? stderr : stdout;

    Logger logger(LogLevel::warning);
    dma::PciDmaOptions options;
    options.context.logger = &logger;
    options.context.policy = iommu;
    const std::array addresses{*nvme_bdf, *a, *b};
    auto domain = dma::PciDomain::open(addresses, options);
    if (!domain.ok()) die("disk2net", domain.error());
    auto controller = nvme::Controller::open((*domain)->function(0), {});
    if (!controller.ok()) die("disk2net", controller.error());
    nvme::Controller& ctrl = **controller;
    const nvme::NamespaceInfo* ns = ctrl.find_namespace(1);
    if (ns == nullptr) die("disk2net", "namespace 1 of " + nvme_bdf->to_string() + " is not active");
    const std::uint64_t block = ns->block_size();
    const std::uint64_t blocks_per_frame = block >= 1024 ? 1 : 1024 / block;
    const std::uint64_t payload = blocks_per_frame * block;
    if (kDataOffset + payload > kMaxFrame) {
        die("disk2net", "blocks of " + std::to_string(block) + " bytes do not fit in one frame");
    }
    if (count * blocks_per_frame > ns->nsze) {
        die("disk2net", "-n " + std::to_string(count) + " needs " + std::to_string(count * blocks_per_frame) +
                            " blocks; namespace 1 has " + std::to_string(ns->nsze));
    }
    auto queue = ctrl.create_io_queue(static_cast<std::uint32_t>(std::max<std::size_t>(burst + 1, 2)));
    if (!queue.ok()) die("disk2net", queue.error());
    nvme::IoQueue& q = **queue;

    // The reference: the same blocks, read into coherent memory.
    auto reference = (*domain)->function(0).dma().alloc_coherent(count * payload);
    if (!reference.ok()) die("disk2net", reference.error());
    const std::uint64_t chunk_blocks = std::max<std::uint64_t>(1, ctrl.max_transfer() / block);
    for (std::uint64_t lba = 0; lba < count * blocks_per_frame; lba += chunk_blocks) {
        const auto n = static_cast<std::uint32_t>(std::min(chunk_blocks, count * blocks_per_frame - lba));
        const nvme::DmaSegment seg{reference->dma().value() + lba * block, n * block};
        if (auto s = q.read_sync(1, lba, n, {&seg, 1}); !s.ok()) die("disk2net", s.error());
    }

    net::NicDriverRegistry registry;
    if (auto s = net::register_builtin_drivers(registry); !s.ok()) die("disk2net", s.error());
    std::array<std::unique_ptr<net::PacketPool>, 2> pools;
    for (std::size_t i = 0; i < 2; ++i) {
        pools[i] = port_pool_or_die("disk2net", (*domain)->context(), addresses[i + 1], logger);
    }
    std::array<std::unique_ptr<net::Nic>, 2> ports;
    for (std::size_t i = 0; i < 2; ++i) {
        net::NicOpenContext ctx;
        ctx.function = &(*domain)->function(i + 1);
        ctx.pool = pools[i].get();
        ctx.promiscuous = true;
        ctx.logger = &logger;
        ports[i] = open_port_or_die("disk2net", registry, ctx);
    }
    std::fprintf(progress, "disk2net: %s -> %s -> %s, %llu frames of %llu bytes of blocks, IOMMU %s\n",
                 nvme_bdf->to_string().c_str(), a->to_string().c_str(), b->to_string().c_str(),
                 static_cast<unsigned long long>(count), static_cast<unsigned long long>(payload),
                 to_string(iommu).data());

    const net::MacAddress source = ports[0]->mac_address();
    const std::size_t frame_length = kDataOffset + payload;
    std::vector<std::uint8_t> seen(count, 0);
    Totals totals;
    std::vector<net::PacketBuffer*> bufs(burst), got(64);
    struct Read {
        bool done = false;
        bool ok = false;
    };
    std::vector<Read> reads(burst);
    auto on_read = [](void* user, const nvme::IoCompletion& c) noexcept {
        auto* r = static_cast<Read*>(user);
        r->done = true;
        r->ok = c.ok();
    };

    auto receive = [&] {
        auto n = ports[1]->rx_burst(0, got);
        if (!n.ok()) die("disk2net", n.error());
        for (std::size_t i = 0; i < *n; ++i) {
            const net::PacketBuffer* p = got[i];
            std::uint64_t lba = 0;
            std::uint32_t frame = 0;
            if (p->length != frame_length) {
                ++totals.foreign;
                continue;
            }
            std::memcpy(&lba, p->data() + kPayloadOffset, 8);
            std::memcpy(&frame, p->data() + kPayloadOffset + 8, 4);
            ++totals.received;
            if (frame >= count || lba != frame * blocks_per_frame) {
                ++totals.corrupt;
            } else if (seen[frame]) {
                ++totals.duplicate;
            } else {
                seen[frame] = 1;
                const auto* want = static_cast<const std::byte*>(reference->cpu()) + lba * block;
                if (std::memcmp(p->data() + kDataOffset, want, payload) == 0) ++totals.verified;
                else ++totals.corrupt;
            }
        }
        if (*n != 0) (void)pools[1]->free_burst(std::span(got).first(*n));
        return *n;
    };

    const auto start = Clock::now();
    for (std::uint64_t next = 0; next < count;) {
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(burst, count - next));
        const std::size_t n = pools[0]->alloc_burst(std::span(bufs).first(want));
        if (n == 0) {
            (void)ports[0]->tx_burst(0, {});  // reclaim
            receive();
            continue;
        }
        // One NVMe read per frame, straight into the packet buffer after its headers.
        for (std::size_t k = 0; k < n; ++k) {
            net::PacketBuffer& p = *bufs[k];
            write_headers(std::span(p.data(), p.room()), frame_length, net::MacAddress::broadcast(), source);
            const std::uint64_t frame = next + k;
            const std::uint64_t lba = frame * blocks_per_frame;
            const auto frame32 = static_cast<std::uint32_t>(frame);
            const auto blocks16 = static_cast<std::uint16_t>(blocks_per_frame);
            std::memcpy(p.data() + kPayloadOffset, &lba, 8);
            std::memcpy(p.data() + kPayloadOffset + 8, &frame32, 4);
            std::memcpy(p.data() + kPayloadOffset + 12, &blocks16, 2);
            p.length = static_cast<std::uint32_t>(frame_length);
            // Poisoned first: a read that never landed cannot pass for data.
            std::memset(p.data() + kDataOffset, 0xa5, payload);
            reads[k] = {};
            const nvme::DmaSegment seg{p.data_dma() + kDataOffset, payload};
            auto r = q.read(1, lba, static_cast<std::uint32_t>(blocks_per_frame), {&seg, 1}, on_read, &reads[k]);
            if (!r.ok()) die("disk2net", r.error());
        }
        q.ring();
        for (std::size_t k = 0; k < n;) {
            q.poll();
            while (k < n && reads[k].done) {
                if (!reads[k].ok) die("disk2net", "an NVMe read into a packet buffer failed");
                ++k;
            }
        }
        for (std::size_t sent = 0; sent < n;) {
            auto taken = ports[0]->tx_burst(0, std::span(bufs).subspan(sent, n - sent));
            if (!taken.ok()) die("disk2net", taken.error());
            sent += *taken;
            receive();
        }
        totals.sent += n;
        next += n;
    }
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
    while (totals.received < count && Clock::now() < deadline) {
        (void)ports[0]->tx_burst(0, {});
        receive();
    }
    const double elapsed = seconds_since(start);
    const bool pass = totals.verified == count && totals.corrupt == 0 && totals.duplicate == 0;
    std::fprintf(progress,
                 "sent %llu, received %llu, verified %llu, corrupt %llu, duplicate %llu, other frames %llu; "
                 "%.0f frames/s, %.2f MiB/s of blocks: %s\n",
                 static_cast<unsigned long long>(totals.sent), static_cast<unsigned long long>(totals.received),
                 static_cast<unsigned long long>(totals.verified), static_cast<unsigned long long>(totals.corrupt),
                 static_cast<unsigned long long>(totals.duplicate), static_cast<unsigned long long>(totals.foreign),
                 double(totals.verified) / elapsed, double(totals.verified * payload) / elapsed / (1 << 20),
                 pass ? "PASS" : "FAIL");
    if (json) {
        std::printf("{\"tool\": \"disk2net\", \"iommu\": \"%s\", \"frames\": %llu, \"sent\": %llu, \"received\": %llu, "
                    "\"verified\": %llu, \"corrupt\": %llu, \"duplicate\": %llu, \"seconds\": %.3f, \"pass\": %s}\n",
                    to_string(iommu).data(), static_cast<unsigned long long>(count),
                    static_cast<unsigned long long>(totals.sent), static_cast<unsigned long long>(totals.received),
                    static_cast<unsigned long long>(totals.verified), static_cast<unsigned long long>(totals.corrupt),
                    static_cast<unsigned long long>(totals.duplicate), elapsed, pass ? "true" : "false");
    }
    // Ports first (their rings hold pool buffers), then the pools, then the domain.
    for (auto& p : ports) p.reset();
    if (auto s = ctrl.delete_io_queue(&q); !s.ok()) std::fprintf(stderr, "disk2net: %s\n", dmakit::to_string(s.error()).c_str());
    return pass ? 0 : 1;
}
