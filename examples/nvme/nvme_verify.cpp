// nvme_verify: writes seeded patterns with a per-block checksum over an LBA
// range at several queue depths and I/O sizes, reads them back and checks
// every block; reports the first mismatch with its LBA. Every buffer kind
// (coherent hugepage memory, caller memory via map_single, scattered caller
// pages via map_sg) runs at every size and depth, spread over several queue
// pairs; I/Os above the controller's MDTS are split by the driver, so a
// controller with mdts=1 (8 KiB) runs the same passes.
// On a namespace with metadata the metadata is patterned and checked too:
// inline with each block (extended LBAs), or in a coherent buffer of its own
// named by MPTR (separate metadata, NVMe 1.4 §8.2).
#include "common.hpp"

#include <dmakit/dma/mapped_scatter_list.hpp>
#include <dmakit/dma/scatterlist.hpp>
#include <dmakit/dma/streaming_mapping.hpp>

#include <cstring>
#include <numeric>
#include <vector>

using namespace dmakit;

namespace {

const char* const prog = "nvme_verify";

void help() {
    std::printf(
        "usage: nvme_verify [-d BDF] [-n NSID] [--lbas N] [--start LBA] [--seed S] [-c QUEUES]\n"
        "                   [--iommu MODE] [--transfer MODE] [--no-dbbuf] [--json]\n"
        "Writes a seeded pattern with a checksum in every block across N LBAs, reads it back\n"
        "and verifies it, once per (queue depth, I/O size, memory) pass: depths 1, 8, 64;\n"
        "sizes 4 KiB, 64 KiB, 128 KiB, 1 MiB; memory hugepage (coherent), map_single and\n"
        "map_sg (one scatter entry per 4 KiB page). I/Os above MDTS are split by the driver.\n"
        "DESTROYS the data in that range.\n"
        "  -d BDF       controller (default: the first NVMe controller on vfio-pci)\n"
        "  -n NSID      namespace (default: the first); one with metadata has it verified too\n"
        "  --lbas N     blocks to cover (default 8192)\n"
        "  --start LBA  first block (default 0)\n"
        "  --seed S     pattern seed (default 1)\n"
        "  -c N         I/O queue pairs the I/Os are spread over (default 2)\n"
        "  --iommu MODE IOMMU policy: pool (default; pool memory mapped once) or strict\n"
        "               (every buffer mapped on its own, with its direction's permission)\n"
        "  --transfer MODE  data pointers: auto (default; SGL for scattered buffers where the\n"
        "               controller has SGLs, else PRP), prp or sgl\n"
        "  --no-dbbuf   no shadow doorbells (Doorbell Buffer Config): register writes only\n"
        "  --json       results as one JSON object\n"
        "  -h, --help   this text\n");
}

std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Block layout: [lba][seed][pass][checksum of the rest][payload...], all u64.
void fill_block(std::byte* b, std::size_t bs, std::uint64_t lba, std::uint64_t seed, std::uint64_t pass) {
    auto* w = reinterpret_cast<std::uint64_t*>(b);
    const std::size_t n = bs / 8;
    w[0] = lba;
    w[1] = seed;
    w[2] = pass;
    std::uint64_t sum = 0, x = mix(seed ^ (lba * 0x100000001b3ull) ^ (pass << 48));
    for (std::size_t i = 4; i < n; ++i) {
        x = mix(x);
        w[i] = x;
        sum = sum * 31 + x;
    }
    w[3] = sum;
}

// Empty string when good, else what is wrong with the block.
std::string check_block(const std::byte* b, std::size_t bs, std::uint64_t lba, std::uint64_t seed, std::uint64_t pass) {
    const auto* w = reinterpret_cast<const std::uint64_t*>(b);
    if (w[0] != lba) return "block carries LBA " + std::to_string(w[0]);
    if (w[1] != seed || w[2] != pass) return "block carries seed/pass " + std::to_string(w[1]) + "/" + std::to_string(w[2]);
    std::uint64_t sum = 0;
    for (std::size_t i = 4; i < bs / 8; ++i) sum = sum * 31 + w[i];
    if (sum != w[3]) return "checksum mismatch";
    std::vector<std::byte> want(bs);
    fill_block(want.data(), bs, lba, seed, pass);
    if (std::memcmp(want.data(), b, bs) != 0) return "payload differs from the pattern";
    return {};
}

// Separate metadata of one block: `ms` bytes derived from its LBA, seed and pass.
void fill_metadata(std::byte* m, std::size_t ms, std::uint64_t lba, std::uint64_t seed, std::uint64_t pass) {
    std::uint64_t x = mix(seed ^ (lba * 0x9e3779b97f4a7c15ull) ^ (pass << 40) ^ 0x6d657461ull);
    for (std::size_t i = 0; i < ms; ++i) {
        if (i % 8 == 0 && i != 0) x = mix(x);
        m[i] = static_cast<std::byte>(x >> (8 * (i % 8)));
    }
}

enum class Mem { coherent, map_single, map_sg };
const char* mem_name(Mem m) { return m == Mem::coherent ? "coherent" : m == Mem::map_single ? "map_single" : "map_sg"; }

struct Pass {
    std::uint32_t depth;
    std::uint64_t io_size;
    Mem mem;
};

struct Failure {
    std::uint64_t lba = 0;
    std::string what;
    bool device_error = false;  // the controller failed the command (not a data mismatch)
};

struct FreeDeleter {
    void operator()(std::byte* p) const noexcept { std::free(p); }
};

class Verifier {
public:
    Verifier(nvme::Controller& c, std::vector<nvme::IoQueue*> qs, const nvme::NamespaceInfo& ns, std::uint64_t seed)
        : c_(c), qs_(std::move(qs)), ns_(ns), seed_(seed) {}

    // One pass: write [start, start+lbas) then read and verify it.
    Result<std::optional<Failure>> run(const Pass& p, std::uint64_t pass_no, std::uint64_t start, std::uint64_t lbas) {
        // A block takes bs bytes of the data buffer: its LBA data, plus its
        // metadata when that is inline (extended LBAs); separate metadata
        // (ms bytes a block) goes to its own buffer.
        const std::size_t bs = ns_.bytes_per_block();
        const std::size_t ms = ns_.separate_metadata() ? ns_.metadata_size() : 0;
        const std::uint64_t blocks_per_io = p.io_size / ns_.block_size();
        const std::size_t io_bytes = blocks_per_io * bs;
        const std::size_t bytes = std::size_t{p.depth} * io_bytes;
        // Host memory: one region holds the batch; map_sg takes its pages in a shuffled order.
        std::unique_ptr<std::byte, FreeDeleter> host(static_cast<std::byte*>(std::aligned_alloc(4096, bytes)));
        if (!host) return Error(ENOMEM, "out of memory");
        dma::CoherentBuffer coh;
        if (p.mem == Mem::coherent) {
            DMAKIT_ASSIGN_OR_RETURN(coh, c_.dma().alloc_coherent(bytes));
        }
        std::byte* cpu = p.mem == Mem::coherent ? static_cast<std::byte*>(coh.cpu()) : host.get();
        dma::CoherentBuffer md;
        if (ms != 0) {
            DMAKIT_ASSIGN_OR_RETURN(md, c_.dma().alloc_coherent(std::size_t{p.depth} * blocks_per_io * ms));
        }

        for (int phase = 0; phase < 2; ++phase) {
            const bool writing = phase == 0;
            for (std::uint64_t lba = start; lba < start + lbas;) {
                // A batch of up to `depth` I/Os in flight, spread over the queues.
                struct Io {
                    std::uint64_t lba;
                    std::uint32_t blocks;
                    std::byte* cpu;
                    dma::MappedScatterList sg;
                    std::size_t md_off = 0;
                    dma::StreamingMapping single;  // separate metadata: map_single done here
                    bool done = false;
                    bool ok = false;
                    std::string status;
                };
                std::vector<Io> batch;
                batch.reserve(p.depth);
                for (std::uint32_t i = 0; i < p.depth && lba < start + lbas; ++i) {
                    const auto n = static_cast<std::uint32_t>(std::min(blocks_per_io, start + lbas - lba));
                    batch.push_back(Io{lba, n, cpu + std::size_t{i} * io_bytes, {}, std::size_t{i} * blocks_per_io * ms,
                                       {}, false, false, {}});
                    lba += n;
                }
                for (auto& io : batch) {
                    std::byte* io_md = ms != 0 ? static_cast<std::byte*>(md.cpu()) + io.md_off : nullptr;
                    if (writing) {
                        for (std::uint32_t b = 0; b < io.blocks; ++b) {
                            fill_block(io.cpu + b * bs, bs, io.lba + b, seed_, pass_no);
                            if (io_md) fill_metadata(io_md + b * ms, ms, io.lba + b, seed_, pass_no);
                        }
                    } else {
                        std::memset(io.cpu, 0xee, std::size_t{io.blocks} * bs);  // stale data must not pass
                        if (io_md) std::memset(io_md, 0xee, std::size_t{io.blocks} * ms);
                    }
                }
                const auto dir = writing ? dma::DmaDirection::to_device : dma::DmaDirection::from_device;
                auto cb = +[](void* u, const nvme::IoCompletion& c) noexcept {
                    auto* io = static_cast<Io*>(u);
                    io->done = true;
                    io->ok = c.ok();
                    if (!c.ok()) io->status = std::string(nvme::status_name(c.status)) + (c.cancelled ? " (cancelled)" : "");
                };
                for (std::size_t i = 0; i < batch.size(); ++i) {
                    Io& io = batch[i];
                    nvme::IoQueue& q = *qs_[i % qs_.size()];
                    const std::size_t len = std::size_t{io.blocks} * bs;
                    if (p.mem == Mem::map_sg) {
                        // One scatter entry per 4 KiB page: map_sg merges what is contiguous
                        // for the device; what is left goes as an SGL, or as PRPs (which check the joins).
                        // The handles unmap on every early return, before `host` is freed.
                        dma::ScatterList pages;
                        for (std::size_t off = 0; off < len; off += 4096) pages.add(io.cpu + off, std::min<std::size_t>(4096, len - off));
                        DMAKIT_ASSIGN_OR_RETURN(io.sg, c_.dma().map(std::move(pages), dir));
                    }
                    // Separate metadata: each kind's data segments, and MPTR's buffer.
                    std::vector<nvme::DmaSegment> segs;
                    if (ms != 0) {
                        if (p.mem == Mem::coherent) {
                            segs.push_back({coh.dma().value() + std::uint64_t(io.cpu - cpu), len});
                        } else if (p.mem == Mem::map_single) {
                            DMAKIT_ASSIGN_OR_RETURN(io.single, c_.dma().map(io.cpu, len, dir));
                            segs.push_back({io.single.dma().value(), len});
                        } else {
                            for (const auto& s : io.sg.segments()) segs.push_back({s.addr.value(), s.length});
                        }
                    }
                    const nvme::DmaSegment meta{ms != 0 ? md.dma().value() + io.md_off : 0, std::uint64_t{io.blocks} * ms};
                    const auto give_up = std::chrono::steady_clock::now() + c_.options().io_timeout * 2;
                    Result<std::uint16_t> r = std::uint16_t{0};
                    // A split I/O needs several free entries: while the queue is busy, poll and retry.
                    for (;;) {
                        if (ms != 0) {
                            r = writing ? q.write_with_metadata(ns_.nsid, io.lba, io.blocks, segs, meta, cb, &io)
                                        : q.read_with_metadata(ns_.nsid, io.lba, io.blocks, segs, meta, cb, &io);
                        } else if (p.mem == Mem::coherent) {
                            const nvme::DmaSegment seg{coh.dma().value() + std::uint64_t(io.cpu - cpu), len};
                            r = writing ? q.write(ns_.nsid, io.lba, io.blocks, {&seg, 1}, cb, &io)
                                        : q.read(ns_.nsid, io.lba, io.blocks, {&seg, 1}, cb, &io);
                        } else if (p.mem == Mem::map_single) {
                            r = writing ? q.write_host(ns_.nsid, io.lba, io.blocks, io.cpu, cb, &io)
                                        : q.read_host(ns_.nsid, io.lba, io.blocks, io.cpu, cb, &io);
                        } else {
                            r = writing ? q.write_sg(ns_.nsid, io.lba, io.blocks, io.sg.list(), cb, &io)
                                        : q.read_sg(ns_.nsid, io.lba, io.blocks, io.sg.list(), cb, &io);
                        }
                        if (r.ok() || r.error().code() != EAGAIN) break;
                        for (auto* other : qs_) other->poll();
                        if (std::chrono::steady_clock::now() > give_up) return Error(ETIMEDOUT, "queue stayed full");
                    }
                    if (!r.ok()) return std::move(r).error();
                }
                for (auto* q : qs_) q->ring();
                const auto give_up = std::chrono::steady_clock::now() + c_.options().io_timeout * 2;
                for (;;) {
                    bool all = true;
                    for (auto& io : batch) all = all && io.done;
                    if (all) break;
                    for (auto* q : qs_) q->poll();
                    if (std::chrono::steady_clock::now() > give_up) return Error(ETIMEDOUT, "I/O did not complete");
                }
                for (auto& io : batch) {
                    if (io.sg) DMAKIT_TRY(io.sg.unmap());
                    if (io.single) DMAKIT_TRY(io.single.unmap());
                }
                for (auto& io : batch) {
                    if (!io.ok) {
                        return std::optional<Failure>(
                            Failure{io.lba, std::string(writing ? "write" : "read") + " failed: " + io.status, true});
                    }
                    if (!writing) {
                        std::vector<std::byte> want_md(ms);
                        for (std::uint32_t b = 0; b < io.blocks; ++b) {
                            auto why = check_block(io.cpu + b * bs, bs, io.lba + b, seed_, pass_no);
                            if (!why.empty()) return std::optional<Failure>(Failure{io.lba + b, why});
                            if (ms == 0) continue;
                            fill_metadata(want_md.data(), ms, io.lba + b, seed_, pass_no);
                            const std::byte* got = static_cast<const std::byte*>(md.cpu()) + io.md_off + b * ms;
                            if (std::memcmp(want_md.data(), got, ms) != 0) {
                                return std::optional<Failure>(Failure{io.lba + b, "separate metadata differs from the pattern"});
                            }
                        }
                    }
                }
            }
        }
        return std::optional<Failure>{};
    }

private:
    nvme::Controller& c_;
    std::vector<nvme::IoQueue*> qs_;
    const nvme::NamespaceInfo& ns_;
    std::uint64_t seed_;
};

}  // namespace

int main(int argc, char** argv) {
    std::optional<pci::PciAddress> device;
    std::uint64_t nsid = 0, lbas = 8192, start = 0, seed = 1, queues = 2;
    bool json = false, dbbuf = true;
    nvme::DataTransfer transfer = nvme::DataTransfer::automatic;
    dma::IommuPolicy iommu = dma::IommuPolicy::pool;
    examples::Args args(argc, argv);
    while (args.next()) {
        const auto a = args.current();
        if (a == "-h" || a == "--help") { help(); return 0; }
        else if (a == "-d") args.device(prog, device);
        else if (a == "-n") nsid = args.number(prog, 1, 0xfffffffe);
        else if (a == "--lbas") lbas = args.number(prog, 1, UINT64_MAX);
        else if (a == "--start") start = args.number(prog, 0, UINT64_MAX);
        else if (a == "--seed") seed = args.number(prog, 0, UINT64_MAX);
        else if (a == "-c" || a == "--queues") queues = args.number(prog, 1, 64);
        else if (a == "--iommu") iommu = args.iommu_policy(prog);
        else if (a == "--transfer") transfer = args.data_transfer(prog);
        else if (a == "--no-dbbuf") dbbuf = false;
        else if (a == "--json") json = true;
        else examples::usage_error(prog, "unknown option '" + std::string(a) + "'");
    }
    const auto address = examples::device_or_default(prog, device);
    nvme::ControllerOptions options;
    options.max_io_queues = static_cast<std::uint32_t>(queues);
    options.shadow_doorbells = dbbuf;
    auto opened = examples::open_controller(address, options, iommu);
    if (!opened.ok()) {
        std::fprintf(stderr, "%s: %s\n", prog, dmakit::to_string(opened.error()).c_str());
        return 1;
    }
    nvme::Controller& c = *opened->controller;
    if (c.namespaces().empty()) {
        std::fprintf(stderr, "%s: no usable namespace\n", prog);
        return 1;
    }
    const nvme::NamespaceInfo* ns = nsid ? c.find_namespace(static_cast<std::uint32_t>(nsid)) : &c.namespaces()[0];
    if (ns == nullptr) examples::usage_error(prog, "namespace " + std::to_string(nsid) + " is not active");
    if (start >= ns->nsze || lbas > ns->nsze - start) {
        examples::usage_error(prog, "range " + std::to_string(start) + "+" + std::to_string(lbas) +
                                        " is past the namespace end (" + std::to_string(ns->nsze) + " blocks)");
    }
    if (queues > c.io_queues_granted()) examples::usage_error(prog, "-c: only " + std::to_string(c.io_queues_granted()) + " queues granted");
    std::vector<nvme::IoQueue*> qs;
    for (std::uint64_t i = 0; i < queues; ++i) {
        // Room for a 1 MiB I/O split at an 8 KiB MDTS (128 commands).
        auto q = c.create_io_queue(256);
        if (!q.ok()) {
            std::fprintf(stderr, "%s: %s\n", prog, dmakit::to_string(q.error()).c_str());
            return 1;
        }
        (*q)->set_data_transfer(transfer);
        qs.push_back(*q);
    }
    Verifier v(c, qs, *ns, seed);
    const std::uint64_t sizes[] = {4096, 65536, 131072, 1 << 20};
    const std::uint32_t depths[] = {1, 8, 64};
    const Mem mems[] = {Mem::coherent, Mem::map_single, Mem::map_sg};
    std::vector<Pass> passes;
    for (auto d : depths) {
        for (auto s : sizes) {
            if (s % ns->block_size() != 0) continue;
            for (Mem m : mems) passes.push_back(Pass{d, s, m});
        }
    }
    if (!json) {
        const std::string metadata = ns->metadata_size() == 0 ? ""
                                     : " + " + std::to_string(ns->metadata_size()) + " bytes of " +
                                           (ns->extended_lba() ? "inline" : "separate") + " metadata";
        std::printf("nvme_verify %s nsid %u: LBAs %llu..%llu (%u-byte blocks%s), seed %llu, %zu queue(s), IOMMU %s, "
                    "transfer %s, MDTS %s\n",
                    address.to_string().c_str(), ns->nsid, static_cast<unsigned long long>(start),
                    static_cast<unsigned long long>(start + lbas - 1), ns->block_size(), metadata.c_str(),
                    static_cast<unsigned long long>(seed), qs.size(), to_string(iommu).data(), to_string(transfer),
                    c.info().max_transfer_bytes ? (std::to_string(*c.info().max_transfer_bytes / 1024) + " KiB").c_str()
                                                : "none");
        std::printf("  %-6s %-9s %-11s %s\n", "depth", "io size", "memory", "result");
    }
    std::string rows;
    int failures = 0;
    std::optional<Failure> first;
    for (std::size_t i = 0; i < passes.size(); ++i) {
        const Pass& p = passes[i];
        auto r = v.run(p, i + 1, start, lbas);
        std::string result;
        if (!r.ok()) {
            result = "error: " + dmakit::to_string(r.error());
            ++failures;
        } else if (r->has_value()) {
            result = (*r)->device_error
                         ? "DEVICE ERROR at LBA " + std::to_string((*r)->lba) + ": " + (*r)->what +
                               " (the controller failed the command: read its SMART log with nvme_identify --smart)"
                         : "MISMATCH at LBA " + std::to_string((*r)->lba) + ": " + (*r)->what;
            ++failures;
            if (!first) first = **r;
        } else {
            result = "ok";
        }
        if (json) {
            rows += (i ? ", " : "") + std::string("{\"depth\": ") + std::to_string(p.depth) + ", \"io_size\": " +
                    std::to_string(p.io_size) + ", \"memory\": \"" + mem_name(p.mem) + "\", \"result\": " +
                    examples::json_string(result) + "}";
        } else {
            std::printf("  %-6u %-9s %-11s %s\n", p.depth, (std::to_string(p.io_size / 1024) + "K").c_str(), mem_name(p.mem),
                        result.c_str());
            std::fflush(stdout);
        }
    }
    std::uint64_t device_errors = 0;
    for (auto* q : qs) device_errors += q->stats().device_errors();
    if (json) {
        std::printf("{\"address\": \"%s\", \"nsid\": %u, \"start\": %llu, \"lbas\": %llu, \"iommu\": \"%s\", "
                    "\"transfer\": \"%s\", \"max_transfer\": %llu, \"passes\": [%s], "
                    "\"failures\": %d, \"first_mismatch_lba\": %s, \"device_errors\": %llu}\n",
                    address.to_string().c_str(), ns->nsid, static_cast<unsigned long long>(start),
                    static_cast<unsigned long long>(lbas), to_string(iommu).data(), to_string(transfer),
                    static_cast<unsigned long long>(c.max_transfer() == UINT64_MAX ? 0 : c.max_transfer()), rows.c_str(), failures,
                    first ? std::to_string(first->lba).c_str() : "null", static_cast<unsigned long long>(device_errors));
    } else {
        std::printf("%s: %zu passes, %d failed%s\n", failures ? "FAILED" : "verified", passes.size(), failures,
                    first ? (std::string(first->device_error ? ", first device error at LBA " : ", first mismatch at LBA ") +
                             std::to_string(first->lba)).c_str()
                          : "");
    }
    return failures == 0 ? 0 : 1;
}
