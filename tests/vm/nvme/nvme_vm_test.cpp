// The NVMe driver against QEMU's emulated controllers (1b36:0010) through
// VFIO and the emulated intel-iommu. Every NvmeVm test runs on both of the
// bench's controllers: 0 (512-byte blocks, MDTS 7) and 1 (4 KiB blocks on
// nsid 1, 512 B + 8 B separate metadata on nsid 2, MDTS 1: 8 KiB per
// command); NvmeVmSecond tests what only controller 1 has. The kernel
// cross-check also needs the guest's nvme driver (scripts/vm --modules
// nvme). What is missing fails the test in the guest and skips it elsewhere
// (bench_devices.hpp).
#include "bench_devices.hpp"

#include <dmakit/drivers/nvme/controller.hpp>
#include <dmakit/drivers/nvme/io_queue.hpp>

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/pci/sysfs.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

namespace dmakit::nvme {
namespace {

using namespace std::chrono_literals;

struct CapturedLog {
    std::vector<std::string> lines;
    Logger logger{LogLevel::debug, [this](LogLevel, std::string_view m) { lines.emplace_back(m); }};
};

// Pattern: every 8-byte word names its LBA, its offset and a tag.
void fill(std::byte* p, std::size_t bs, std::uint64_t lba, std::uint32_t blocks, std::uint64_t tag) {
    for (std::uint32_t b = 0; b < blocks; ++b) {
        auto* w = reinterpret_cast<std::uint64_t*>(p + std::size_t{b} * bs);
        for (std::size_t i = 0; i < bs / 8; ++i) w[i] = (lba + b) << 24 ^ i << 8 ^ tag ^ 0x5a5a000000000000ull;
    }
}
// First block (relative) that differs, or -1.
long first_bad(const std::byte* p, std::size_t bs, std::uint64_t lba, std::uint32_t blocks, std::uint64_t tag) {
    std::vector<std::byte> want(bs);
    for (std::uint32_t b = 0; b < blocks; ++b) {
        fill(want.data(), bs, lba + b, 1, tag);
        if (std::memcmp(want.data(), p + std::size_t{b} * bs, bs) != 0) return b;
    }
    return -1;
}

// An LBA of the namespace near `lba`: the bench's namespaces differ in size
// (controller 1's nsid 1 has 16384 blocks), the tests' spots must fit all.
std::uint64_t spot(const NamespaceInfo& ns, std::uint64_t lba) { return lba % (ns.nsze - 256); }

class NvmeVmBase : public ::testing::Test {
protected:
    // Controller `index` of the bench (bench_devices.hpp), checked by serial.
    void pick(std::size_t index) {
        const auto found = vmtest::devices_bound_to(vmtest::kBenchNvme);
        DMAKIT_VM_REQUIRE_DEVICES(found, vmtest::kBenchNvme);
        index_ = index;
        address_ = found[index];
        ASSERT_TRUE(open_device().ok());
        const std::string want = vmtest::bench_nvme_serial(index);
        DMAKIT_VM_REQUIRE(!want.empty(), "the serial of NVMe controller " + std::to_string(index) +
                                             " (DMAKIT_VM_NVME_SERIAL / DMAKIT_VM_NVME1_SERIAL, set by scripts/vm)");
        auto c = open();
        ASSERT_TRUE(c.ok()) << c.error();
        ASSERT_EQ((*c)->info().serial, want) << "the NVMe controller at " << address_->to_string()
                                             << " is not bench controller " << index << " (by PCI address order)";
        ASSERT_FALSE((*c)->namespaces().empty());
        ns1_ = (*c)->namespaces()[0];
        max_transfer_ = (*c)->max_transfer();
    }

    Status open_device() {
        dma::PciDmaOptions o;
        o.context.logger = &log_.logger;
        o.context.debug = true;  // every map/unmap checked; leaks reported at close
        o.context.pages.region_size = std::size_t{16} << 20;
        auto d = dma::PciDomain::open(*address_, o);
        if (!d.ok()) {
            ADD_FAILURE() << d.error();
            return d.error();
        }
        dev_ = std::move(d).value();
        return {};
    }

    Result<std::unique_ptr<Controller>> open(ControllerOptions o = {}) {
        o.logger = &log_.logger;
        o.io_timeout = 5s;
        o.admin_timeout = 5s;
        return Controller::open(dev_->function(0), o);
    }

    std::size_t index_ = 0;
    NamespaceInfo ns1_;  // the controller's first namespace, as open() found it
    std::uint64_t max_transfer_ = 0;
    std::optional<pci::PciAddress> address_;
    CapturedLog log_;
    std::unique_ptr<dma::PciDomain> dev_;
};

class NvmeVm : public NvmeVmBase, public ::testing::WithParamInterface<std::size_t> {
protected:
    void SetUp() override { pick(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Bench, NvmeVm, ::testing::Values(std::size_t{0}, std::size_t{1}),
                         [](const auto& info) {
                             return info.param == 0 ? std::string("Controller0") : std::string("Controller1Mdts1");
                         });

TEST_P(NvmeVm, IdentifyMatchesWhatQemuWasStartedWith) {
    auto c = open();
    ASSERT_TRUE(c.ok()) << c.error();
    const ControllerInfo& i = (*c)->info();
    EXPECT_EQ(i.model, "QEMU NVMe Ctrl");
    EXPECT_EQ(i.vid, 0x1b36);
    EXPECT_EQ(i.serial, vmtest::bench_nvme_serial(index_));
    ASSERT_FALSE((*c)->namespaces().empty());
    const NamespaceInfo& ns = (*c)->namespaces()[0];
    EXPECT_EQ(ns.nsid, 1u);
    if (index_ == 0) {
        const char* bytes = std::getenv("DMAKIT_VM_DISK_BYTES");
        ASSERT_NE(bytes, nullptr);
        ASSERT_EQ((*c)->namespaces().size(), 1u);
        EXPECT_EQ(ns.size_bytes(), std::strtoull(bytes, nullptr, 10));
        EXPECT_EQ(ns.block_size(), 512u);  // QEMU's default LBA format
        EXPECT_EQ(ns.metadata_size(), 0u);
        EXPECT_GT((*c)->max_transfer(), 8192u);
    } else {
        // scripts/vm: nsid 1 64 MiB of 4 KiB blocks; nsid 2 512 B + 8 B separate metadata; mdts=1.
        ASSERT_EQ((*c)->namespaces().size(), 2u);
        EXPECT_EQ(ns.block_size(), 4096u);
        EXPECT_EQ(ns.size_bytes(), std::uint64_t{64} << 20);
        EXPECT_EQ(ns.metadata_size(), 0u);
        const NamespaceInfo& md = (*c)->namespaces()[1];
        EXPECT_EQ(md.nsid, 2u);
        EXPECT_EQ(md.block_size(), 512u);
        EXPECT_EQ(md.metadata_size(), 8u);
        EXPECT_TRUE(md.separate_metadata());
        EXPECT_EQ(i.mdts, 1u);
        EXPECT_EQ((*c)->max_transfer(), 8192u);
    }
    EXPECT_GE((*c)->io_queues_granted(), 2u);
    EXPECT_GE((*c)->async_events_outstanding(), 1u);

    auto smart = (*c)->smart_log();
    ASSERT_TRUE(smart.ok()) << smart.error();
    EXPECT_GT(smart->temperature_celsius(), -50);
    EXPECT_LT(smart->temperature_celsius(), 150);
    auto errors = (*c)->error_log();
    ASSERT_TRUE(errors.ok()) << errors.error();
    // Abort of a CID nobody used: the controller answers "not aborted" (DW0 bit 0 = 1).
    auto q = (*c)->create_io_queue(8);
    ASSERT_TRUE(q.ok()) << q.error();
    auto aborted = (*c)->abort((*q)->qid(), 0x7ff0);
    ASSERT_TRUE(aborted.ok()) << aborted.error();
    EXPECT_FALSE(*aborted);
}

TEST_P(NvmeVm, WriteReadVerifyThousandsOfLbasAtDepths1To64OnSeveralQueues) {
    auto c = open();
    ASSERT_TRUE(c.ok()) << c.error();
    const NamespaceInfo& ns = (*c)->namespaces()[0];
    const std::size_t bs = ns.block_size();
    std::vector<IoQueue*> qs;
    for (int i = 0; i < 3; ++i) {
        auto q = (*c)->create_io_queue(128);
        ASSERT_TRUE(q.ok()) << q.error();
        qs.push_back(*q);
    }
    const std::uint64_t first_lba = 1000, lbas = 4096;
    std::uint64_t tag = 1;
    for (std::uint32_t depth : {1u, 4u, 16u, 64u}) {
        // 64 KiB: a PRP list (at most MDTS: 8 KiB on controller 1).
        for (std::size_t io : {std::size_t{4096}, std::min<std::size_t>(65536, (*c)->max_transfer())}) {
            ++tag;
            const std::uint32_t per_io = static_cast<std::uint32_t>(io / bs);
            auto buf = (*c)->dma().alloc_coherent(depth * io);
            ASSERT_TRUE(buf.ok());
            for (int phase = 0; phase < 2; ++phase) {
                for (std::uint64_t lba = first_lba; lba < first_lba + lbas;) {
                    struct Io {
                        std::uint64_t lba;
                        bool done = false, ok = false;
                    };
                    std::vector<Io> batch;
                    for (std::uint32_t k = 0; k < depth && lba < first_lba + lbas; ++k, lba += per_io) batch.push_back({lba});
                    for (std::size_t k = 0; k < batch.size(); ++k) {
                        std::byte* p = buf->as<std::byte>() + k * io;
                        if (phase == 0) fill(p, bs, batch[k].lba, per_io, tag);
                        else std::memset(p, 0, io);
                        const DmaSegment seg{buf->dma().value() + k * io, io};
                        auto cb = +[](void* u, const IoCompletion& done) noexcept {
                            static_cast<Io*>(u)->done = true;
                            static_cast<Io*>(u)->ok = done.ok();
                        };
                        IoQueue& q = *qs[k % qs.size()];
                        auto r = phase == 0 ? q.write(ns.nsid, batch[k].lba, per_io, {&seg, 1}, cb, &batch[k])
                                            : q.read(ns.nsid, batch[k].lba, per_io, {&seg, 1}, cb, &batch[k]);
                        ASSERT_TRUE(r.ok()) << r.error();
                    }
                    const auto give_up = std::chrono::steady_clock::now() + 10s;
                    bool all = false;
                    while (!all && std::chrono::steady_clock::now() < give_up) {
                        for (auto* q : qs) q->poll();
                        all = true;
                        for (auto& b : batch) all = all && b.done;
                    }
                    ASSERT_TRUE(all) << "I/O did not complete at depth " << depth;
                    for (std::size_t k = 0; k < batch.size(); ++k) {
                        ASSERT_TRUE(batch[k].ok) << "LBA " << batch[k].lba;
                        if (phase == 1) {
                            const long bad = first_bad(buf->as<std::byte>() + k * io, bs, batch[k].lba, per_io, tag);
                            ASSERT_EQ(bad, -1) << "mismatch at LBA " << batch[k].lba + static_cast<std::uint64_t>(bad)
                                               << " depth " << depth << " io " << io;
                        }
                    }
                }
            }
        }
    }
    // Caller memory through map_single, and scattered pages through map_sg.
    const std::size_t host_bytes = std::min<std::size_t>(65536, (*c)->max_transfer());
    const auto host_blocks = static_cast<std::uint32_t>(host_bytes / bs);
    std::vector<std::byte> host(host_bytes);
    fill(host.data(), bs, 50, host_blocks, 99);
    ASSERT_TRUE(qs[0]->write_host_sync(ns.nsid, 50, host_blocks, host.data()).ok());
    std::vector<std::byte> back(host_bytes);
    ASSERT_TRUE(qs[1]->read_host_sync(ns.nsid, 50, host_blocks, back.data()).ok());
    EXPECT_EQ(first_bad(back.data(), bs, 50, host_blocks, 99), -1);
    const int page_count = static_cast<int>(std::min<std::size_t>(4, host_bytes / 4096));
    const auto per_page = static_cast<std::uint32_t>(4096 / bs);
    std::vector<std::byte*> pages;
    for (int k = 0; k < page_count; ++k) pages.push_back(static_cast<std::byte*>(std::aligned_alloc(4096, 4096)));
    dma::ScatterList sg;
    for (auto* p : pages) sg.add(p, 4096);
    ASSERT_TRUE((*c)->dma().map_sg(sg, dma::DmaDirection::from_device).ok());
    struct Done { bool done = false, ok = false; } d;
    auto r = qs[2]->read_sg(ns.nsid, 50, per_page * page_count, sg, +[](void* u, const IoCompletion& x) noexcept {
        static_cast<Done*>(u)->done = true;
        static_cast<Done*>(u)->ok = x.ok();
    }, &d);
    ASSERT_TRUE(r.ok()) << r.error();
    for (int spin = 0; !d.done && spin < 10'000'000; ++spin) qs[2]->poll();
    ASSERT_TRUE(d.ok);
    ASSERT_TRUE((*c)->dma().unmap_sg(sg, dma::DmaDirection::from_device).ok());
    for (int k = 0; k < page_count; ++k) {
        EXPECT_EQ(first_bad(pages[k], bs, 50 + per_page * k, per_page, 99), -1) << "sg page " << k;
    }
    for (auto* p : pages) std::free(p);
    for (auto* q : qs) EXPECT_EQ(q->stats().device_errors(), 0u);
}

TEST_P(NvmeVm, WriteZeroesDeallocateAndFlush) {
    auto c = open();
    ASSERT_TRUE(c.ok()) << c.error();
    const NamespaceInfo& ns = (*c)->namespaces()[0];
    auto q = (*c)->create_io_queue(16);
    ASSERT_TRUE(q.ok());
    // 8 KiB: 16 blocks of 512 B or 2 of 4 KiB; the first half is zeroed.
    const std::uint32_t bs = ns.block_size();
    const std::uint32_t n = 8192 / bs, half = n / 2;
    auto buf = (*c)->dma().alloc_coherent(8192);
    ASSERT_TRUE(buf.ok());
    const DmaSegment seg{buf->dma().value(), 8192};
    fill(buf->as<std::byte>(), bs, 7000, n, 5);
    ASSERT_TRUE((*q)->write_sync(ns.nsid, 7000, n, {&seg, 1}).ok());
    ASSERT_TRUE((*q)->flush_sync(ns.nsid).ok());
    ASSERT_TRUE((*q)->write_zeroes_sync(ns.nsid, 7000, half).ok());
    std::memset(buf->cpu(), 0xff, 8192);
    ASSERT_TRUE((*q)->read_sync(ns.nsid, 7000, n, {&seg, 1}).ok());
    for (std::size_t i = 0; i < 4096; ++i) ASSERT_EQ(buf->as<std::uint8_t>()[i], 0u) << "byte " << i;
    EXPECT_EQ(first_bad(buf->as<std::byte>() + 4096, bs, 7000 + half, half, 5), -1);
    if ((*c)->info().supports_dsm()) {
        // Deallocate is advisory (§6.7: the controller "may" deallocate), so
        // each block must read back either as before or, if deallocated and
        // DLFEAT says so, as zeroes; never anything else.
        const DsmRange range{0, half, 7000 + half};
        ASSERT_TRUE((*q)->deallocate_sync(ns.nsid, {&range, 1}).ok());
        ASSERT_TRUE((*q)->read_sync(ns.nsid, 7000, n, {&seg, 1}).ok());
        for (std::uint32_t b = 0; b < half; ++b) {
            const std::byte* blk = buf->as<std::byte>() + 4096 + b * bs;
            const bool zero = std::all_of(blk, blk + bs, [](std::byte x) { return x == std::byte{0}; });
            const bool old = first_bad(blk, bs, 7000 + half + b, 1, 5) == -1;
            EXPECT_TRUE(old || (zero && ns.deallocate_reads_zeroes())) << "block " << 7000 + half + b;
        }
    }
}

TEST_P(NvmeVm, IoPastTheNamespaceEndOrToAMissingNamespaceIsRefusedBeforeTheDevice) {
    auto c = open();
    ASSERT_TRUE(c.ok()) << c.error();
    const NamespaceInfo& ns = (*c)->namespaces()[0];
    auto q = (*c)->create_io_queue(8);
    ASSERT_TRUE(q.ok());
    auto buf = (*c)->dma().alloc_coherent(4096);
    ASSERT_TRUE(buf.ok());
    const std::uint32_t n = 4096 / ns.block_size();
    const DmaSegment seg{buf->dma().value(), 4096};
    const std::uint64_t submitted = (*q)->stats().submitted;
    for (std::uint64_t slba : {ns.nsze - n / 2, ns.nsze, ns.nsze + 1000}) {
        auto r = (*q)->read_sync_completion(ns.nsid, slba, n, {&seg, 1});
        ASSERT_FALSE(r.ok()) << "slba " << slba;
        EXPECT_EQ(r.error().code(), ERANGE) << r.error();
    }
    // NSID 0, one past the last and FFFFFFFEh are no namespace of this controller.
    for (std::uint32_t nsid : {0u, static_cast<std::uint32_t>((*c)->namespaces().size() + 1), 0xfffffffeu}) {
        auto r = (*q)->read_sync(nsid, 0, n, {&seg, 1});
        ASSERT_FALSE(r.ok()) << "nsid " << nsid;
        EXPECT_EQ(r.error().code(), EINVAL) << r.error();
        EXPECT_NE(r.error().message().find("not active"), std::string::npos) << r.error();
    }
    EXPECT_EQ((*q)->stats().submitted, submitted);  // nothing reached the device
    // The queue is fine afterwards: the last full range reads.
    ASSERT_TRUE((*q)->read_sync(ns.nsid, ns.nsze - n, n, {&seg, 1}).ok());
    EXPECT_EQ((*q)->stats().device_errors(), 0u);
    EXPECT_EQ((*q)->outstanding(), 0u);
}

TEST_P(NvmeVm, PrpAtAnUnmappedIovaFailsWithoutTouchingMemory) {
    auto c = open();
    ASSERT_TRUE(c.ok()) << c.error();
    const NamespaceInfo& ns = (*c)->namespaces()[0];
    auto q = (*c)->create_io_queue(8);
    ASSERT_TRUE(q.ok());
    // Something non-zero on the disk to read back.
    const std::uint32_t bs = ns.block_size(), n = 4096 / bs;
    std::vector<std::byte> data(4096);
    fill(data.data(), bs, 3000, n, 77);
    ASSERT_TRUE((*q)->write_host_sync(ns.nsid, 3000, n, data.data()).ok());

    constexpr std::size_t len = 2 << 20;  // a whole 2 MiB extent: nothing else keeps it mapped
    auto* target = static_cast<std::byte*>(std::aligned_alloc(len, len));
    ASSERT_NE(target, nullptr);
    std::memset(target, 0xa5, len);
    auto addr = (*c)->dma().map_single(target, len, dma::DmaDirection::from_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    ASSERT_TRUE((*c)->dma().unmap_single(*addr, len, dma::DmaDirection::from_device).ok());

    const DmaSegment stale{addr->value(), 4096};
    auto r = (*q)->read_sync_completion(ns.nsid, 3000, n, {&stale, 1});
    // Three outcomes are safe: an error status, a handled timeout, or success
    // for a write the IOMMU dropped (a posted write gets no response on PCIe;
    // QEMU's controller reports success then). Which one happened is recorded;
    // the memory check below is what must hold in every case.
    std::string outcome;
    if (r.ok()) {
        outcome = r->ok() ? "success status (the IOMMU dropped the write)" : std::string(status_name(r->status));
    } else {
        EXPECT_EQ(r.error().code(), ETIMEDOUT) << r.error();
        outcome = "timeout: " + dmakit::to_string(r.error());
    }
    RecordProperty("unmapped_iova_outcome", outcome);
    std::printf("read into an unmapped IOVA: %s\n", outcome.c_str());
    for (std::size_t i = 0; i < len; ++i) ASSERT_EQ(static_cast<unsigned>(target[i]), 0xa5u) << "byte " << i << " changed";
    std::free(target);

    // The controller is still usable (or is made so by a reset).
    if ((*c)->failed()) {
        ASSERT_TRUE((*c)->reset().ok());
    }
    std::vector<std::byte> back(4096);
    ASSERT_TRUE((*q)->read_host_sync(ns.nsid, 3000, n, back.data()).ok());
    EXPECT_EQ(first_bad(back.data(), bs, 3000, n, 77), -1);
}

TEST_P(NvmeVm, InterruptModeCompletesThroughMsixEventfds) {
    ControllerOptions o;
    o.interrupts = true;
    auto c = open(o);
    ASSERT_TRUE(c.ok()) << c.error();
    ASSERT_TRUE((*c)->interrupts_enabled());
    const NamespaceInfo& ns = (*c)->namespaces()[0];
    auto q = (*c)->create_io_queue(32);
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE((*q)->vector().has_value());
    const std::uint32_t bs = ns.block_size(), n = 8192 / bs;
    std::vector<std::byte> data(8192), back(8192);
    fill(data.data(), bs, 9000, n, 3);
    ASSERT_TRUE((*q)->write_host_sync(ns.nsid, 9000, n, data.data()).ok());
    // Async read, then block on the eventfd (no busy polling before it).
    bool done = false;
    auto r = (*q)->read_host(ns.nsid, 9000, n, back.data(), +[](void* u, const IoCompletion&) noexcept { *static_cast<bool*>(u) = true; }, &done);
    ASSERT_TRUE(r.ok());
    (*q)->ring();
    auto fired = (*c)->interrupts()->wait(*(*q)->vector(), 5000ms);
    ASSERT_TRUE(fired.ok()) << fired.error();
    EXPECT_GE(*fired, 1u) << "no MSI-X interrupt for the queue's vector";
    for (int spin = 0; !done && spin < 1000; ++spin) (void)(*q)->wait(10ms);
    ASSERT_TRUE(done);
    EXPECT_EQ(first_bad(back.data(), bs, 9000, n, 3), -1);
}

// QEMU 7.2 offers Doorbell Buffer Config (OACS bit 8, since 7.1): on by
// default, data right through it, sent again after a reset (the controller
// forgets it), and off on request.
TEST_P(NvmeVm, ShadowDoorbellsCarryDataAndAreConfiguredAgainAfterAReset) {
    const std::uint32_t bs = ns1_.block_size(), n = 8192 / bs;
    std::vector<std::byte> data(8192), back(8192);
    auto round_trip = [&](IoQueue& q, std::uint32_t nsid, std::uint64_t lba, std::uint64_t tag) {
        lba = spot(ns1_, lba);
        fill(data.data(), bs, lba, n, tag);
        ASSERT_TRUE(q.write_host_sync(nsid, lba, n, data.data()).ok());
        ASSERT_TRUE(q.read_host_sync(nsid, lba, n, back.data()).ok());
        EXPECT_EQ(first_bad(back.data(), bs, lba, n, tag), -1) << "LBA " << lba;
    };
    {
        auto c = open();
        ASSERT_TRUE(c.ok()) << c.error();
        ASSERT_TRUE((*c)->info().supports_doorbell_buffer_config()) << "QEMU 7.1+ sets OACS bit 8";
        EXPECT_TRUE((*c)->shadow_doorbells_active());
        const std::uint32_t nsid = (*c)->namespaces()[0].nsid;
        auto q = (*c)->create_io_queue(16);
        ASSERT_TRUE(q.ok()) << q.error();
        EXPECT_TRUE((*q)->shadow_doorbells());
        for (std::uint64_t i = 0; i < 40; ++i) round_trip(**q, nsid, 12000 + i * n, 7);  // wraps the ring
        ASSERT_TRUE((*c)->reset().ok());
        EXPECT_TRUE((*c)->shadow_doorbells_active());
        EXPECT_TRUE((*q)->shadow_doorbells());
        for (std::uint64_t i = 0; i < 40; ++i) round_trip(**q, nsid, 12000 + i * n, 8);
        EXPECT_EQ((*q)->stats().device_errors(), 0u);
    }
    ControllerOptions off;
    off.shadow_doorbells = false;
    auto plain = open(off);
    ASSERT_TRUE(plain.ok()) << plain.error();
    EXPECT_FALSE((*plain)->shadow_doorbells_active());
    auto q = (*plain)->create_io_queue(16);
    ASSERT_TRUE(q.ok()) << q.error();
    EXPECT_FALSE((*q)->shadow_doorbells());
    round_trip(**q, (*plain)->namespaces()[0].nsid, 12000, 9);
    EXPECT_EQ((*q)->doorbell_counts().mmio_skipped, 0u);
}

// nvme_perf -c N: a queue per thread, each with its own MSI-X vector, all
// at once, every block checked.
TEST_P(NvmeVm, TwoQueuesOnTwoThreadsEachWithItsOwnVector) {
    ControllerOptions o;
    o.interrupts = true;
    auto c = open(o);
    ASSERT_TRUE(c.ok()) << c.error();
    const NamespaceInfo& ns = (*c)->namespaces()[0];
    const std::uint32_t bs = ns.block_size(), n = 8192 / bs;
    std::vector<IoQueue*> qs;
    for (int i = 0; i < 2; ++i) {
        auto q = (*c)->create_io_queue(32);
        ASSERT_TRUE(q.ok()) << q.error();
        qs.push_back(*q);
    }
    ASSERT_NE(qs[0]->vector(), qs[1]->vector());
    std::vector<std::string> failures(2);
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
            IoQueue& q = *qs[t];
            std::vector<std::byte> data(8192), back(8192);
            for (std::uint64_t i = 0; i < 64 && failures[t].empty(); ++i) {
                const std::uint64_t lba = spot(ns, 20000 + (std::uint64_t(t) * 64 + i) * n);
                fill(data.data(), bs, lba, n, 20 + t);
                auto w = q.write_host_sync(ns.nsid, lba, n, data.data());
                auto r = w.ok() ? q.read_host_sync(ns.nsid, lba, n, back.data()) : w;
                if (!r.ok()) failures[t] = dmakit::to_string(r.error());
                else if (first_bad(back.data(), bs, lba, n, 20 + t) != -1) failures[t] = "mismatch at LBA " + std::to_string(lba);
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures[0], "");
    EXPECT_EQ(failures[1], "");
    EXPECT_EQ(qs[0]->stats().completed, 128u);
    EXPECT_EQ(qs[1]->stats().completed, 128u);
}

TEST_P(NvmeVm, NextOpenStartsFromAControllerLeftInAnyState) {
    const std::uint32_t bs = ns1_.block_size(), n = 4096 / bs;
    const std::uint64_t lba = spot(ns1_, 11000), far = spot(ns1_, 20000);
    std::vector<std::byte> data(4096);
    fill(data.data(), bs, lba, n, 42);
    {
        // 1. Left enabled with I/O queues created and commands in flight.
        auto a = open();
        ASSERT_TRUE(a.ok()) << a.error();
        auto q1 = (*a)->create_io_queue(64);
        auto q2 = (*a)->create_io_queue(64);
        ASSERT_TRUE(q1.ok() && q2.ok());
        ASSERT_TRUE((*q1)->write_host_sync(1, lba, n, data.data()).ok());
        auto buf = (*a)->dma().alloc_coherent(65536);
        ASSERT_TRUE(buf.ok());
        for (int k = 0; k < 16; ++k) {
            const DmaSegment seg{buf->dma().value() + k * 4096u, 4096};
            ASSERT_TRUE((*q2)->read(1, far + n * k, n, {&seg, 1}, nullptr, nullptr).ok());
        }
        (*q2)->ring();
        EXPECT_TRUE((*a)->status().ready());
        (*a)->abandon();
    }
    {
        auto b = open();
        ASSERT_TRUE(b.ok()) << "open after an abandoned controller: " << b.error();
        auto q = (*b)->create_io_queue(16);
        ASSERT_TRUE(q.ok()) << q.error();
        std::vector<std::byte> back(4096);
        ASSERT_TRUE((*q)->read_host_sync(1, lba, n, back.data()).ok());
        EXPECT_EQ(first_bad(back.data(), bs, lba, n, 42), -1);
        // 2. A clean shutdown: CC.SHN, SHST complete.
        ASSERT_TRUE((*b)->shutdown().ok());
        EXPECT_EQ((*b)->status().shutdown(), ShutdownStatus::complete);
        (*b)->abandon();  // stays shut down (EN still 1) for the next open
    }
    {
        auto c = open();
        ASSERT_TRUE(c.ok()) << "open after a shutdown: " << c.error();
        auto q = (*c)->create_io_queue(16);
        ASSERT_TRUE(q.ok());
        std::vector<std::byte> back(4096);
        ASSERT_TRUE((*q)->read_host_sync(1, lba, n, back.data()).ok());
        EXPECT_EQ(first_bad(back.data(), bs, lba, n, 42), -1);
        // 3. Reset path while queues exist: the same IoQueue works afterwards.
        ASSERT_TRUE((*c)->reset().ok());
        std::fill(back.begin(), back.end(), std::byte{0});
        ASSERT_TRUE((*q)->read_host_sync(1, lba, n, back.data()).ok());
        EXPECT_EQ(first_bad(back.data(), bs, lba, n, 42), -1);
    }
    // 4. A process that dies with the device open: the kernel closes the fds.
    dev_.reset();
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        auto d = dma::PciDomain::open(*address_);
        if (!d.ok()) _exit(3);
        auto c = Controller::open((*d)->function(0), {});
        if (!c.ok()) _exit(4);
        auto q = (*c)->create_io_queue(16);
        if (!q.ok()) _exit(5);
        _exit(0);  // no shutdown, no destructors
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_TRUE(open_device().ok());
    auto d = open();
    ASSERT_TRUE(d.ok()) << "open after a process died holding the controller: " << d.error();
    auto q = (*d)->create_io_queue(16);
    ASSERT_TRUE(q.ok());
    std::vector<std::byte> back(4096);
    ASSERT_TRUE((*q)->read_host_sync(1, lba, n, back.data()).ok());
    EXPECT_EQ(first_bad(back.data(), bs, lba, n, 42), -1);
}

// ---- Controller 1 only: separate metadata, namespace changes -----------------

class NvmeVmSecond : public NvmeVmBase {
protected:
    void SetUp() override { pick(1); }
};

TEST_F(NvmeVmSecond, SeparateMetadataIsWrittenAndReadBackThroughMptr) {
    auto c = open();
    ASSERT_TRUE(c.ok()) << c.error();
    const NamespaceInfo* ns = (*c)->find_namespace(2);
    ASSERT_NE(ns, nullptr);
    ASSERT_TRUE(ns->separate_metadata());
    auto q = (*c)->create_io_queue(16);
    ASSERT_TRUE(q.ok());
    constexpr std::uint32_t blocks = 16;  // 8 KiB: the controller's MDTS
    auto data = (*c)->dma().alloc_coherent(blocks * 512);
    auto md = (*c)->dma().alloc_coherent(4096);
    ASSERT_TRUE(data.ok() && md.ok());
    const DmaSegment seg{data->dma().value(), blocks * 512};
    const DmaSegment meta{md->dma().value(), blocks * 8};
    fill(data->as<std::byte>(), 512, 600, blocks, 0x77);
    for (std::uint32_t b = 0; b < blocks * 8; ++b) md->as<std::uint8_t>()[b] = static_cast<std::uint8_t>(b * 7 + 1);
    ASSERT_TRUE((*q)->write_with_metadata_sync(2, 600, blocks, {&seg, 1}, meta).ok());
    std::memset(data->cpu(), 0, blocks * 512);
    std::memset(md->cpu(), 0, 4096);
    ASSERT_TRUE((*q)->read_with_metadata_sync(2, 600, blocks, {&seg, 1}, meta).ok());
    EXPECT_EQ(first_bad(data->as<std::byte>(), 512, 600, blocks, 0x77), -1);
    for (std::uint32_t b = 0; b < blocks * 8; ++b) {
        ASSERT_EQ(md->as<std::uint8_t>()[b], static_cast<std::uint8_t>(b * 7 + 1)) << "metadata byte " << b;
    }
    // Past the metadata the device wrote nothing.
    for (std::uint32_t b = blocks * 8; b < 4096; ++b) ASSERT_EQ(md->as<std::uint8_t>()[b], 0u) << "byte " << b;
    // Without a metadata buffer: refused, nothing sent.
    const std::uint64_t submitted = (*q)->stats().submitted;
    auto refused = (*q)->read_sync(2, 600, blocks, {&seg, 1});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), EINVAL);
    EXPECT_EQ((*q)->stats().submitted, submitted);
}

// NVMe 1.4 §5.19 Namespace Attachment: SEL (CDW10 3:0) 0 attach, 1 detach,
// for the controllers in a Controller List (§4.9: count, then IDs).
Result<std::uint32_t> attach_namespace(Controller& c, dma::CoherentBuffer& list, std::uint32_t nsid, bool attach) {
    std::memset(list.cpu(), 0, 4096);
    const std::uint16_t ids[2] = {1, c.info().cntlid};
    std::memcpy(list.cpu(), ids, sizeof ids);
    SubmissionEntry e;
    e.cdw0 = admin_opcode::namespace_attachment;
    e.nsid = nsid;
    e.cdw10 = attach ? 0u : 1u;
    e.set_data({list.dma().value(), 0});
    return c.admin_ok(e, attach ? "Namespace Attachment (attach)" : "Namespace Attachment (detach)");
}

struct SeenEvents {
    std::vector<AsyncEvent> events;
    static void on(void* self, const AsyncEvent& e) noexcept { static_cast<SeenEvents*>(self)->events.push_back(e); }
};

TEST_F(NvmeVmSecond, DetachingAndAttachingANamespaceRaisesTheEventAndTheTableFollows) {
    SeenEvents seen;
    ControllerOptions o;
    o.on_async_event = &SeenEvents::on;
    o.async_event_user = &seen;
    auto c = open(o);
    ASSERT_TRUE(c.ok()) << c.error();
    ASSERT_GE((*c)->async_events_outstanding(), 1u);
    ASSERT_NE((*c)->find_namespace(2), nullptr);
    const NamespaceInfo before = *(*c)->find_namespace(2);
    auto q = (*c)->create_io_queue(8);
    ASSERT_TRUE(q.ok());
    auto list = (*c)->dma().alloc_coherent(4096);
    ASSERT_TRUE(list.ok());
    auto wait_for_event = [&](std::size_t n) {
        const auto give_up = std::chrono::steady_clock::now() + 20s;
        while (seen.events.size() < n && std::chrono::steady_clock::now() < give_up) {
            auto r = (*c)->process_events();
            if (!r.ok()) {
                ADD_FAILURE() << r.error();
                return;
            }
            std::this_thread::sleep_for(10ms);
        }
    };

    auto detached = attach_namespace(**c, *list, 2, false);
    ASSERT_TRUE(detached.ok()) << detached.error();
    wait_for_event(1);
    ASSERT_EQ(seen.events.size(), 1u) << "no asynchronous event after the detach";
    EXPECT_EQ(seen.events[0].description, "notice: namespace attribute changed");
    EXPECT_EQ(seen.events[0].changed_namespaces, std::vector<std::uint32_t>{2});
    EXPECT_TRUE(seen.events[0].log_error.empty()) << seen.events[0].log_error;
    EXPECT_EQ((*c)->find_namespace(2), nullptr);
    ASSERT_EQ((*c)->namespaces().size(), 1u);
    std::vector<std::byte> buf(512);
    auto gone = (*q)->read_host_sync(2, 0, 1, buf.data());
    ASSERT_FALSE(gone.ok());
    EXPECT_EQ(gone.error().code(), EINVAL) << gone.error();

    auto attached = attach_namespace(**c, *list, 2, true);
    ASSERT_TRUE(attached.ok()) << attached.error();
    wait_for_event(2);
    ASSERT_EQ(seen.events.size(), 2u) << "no asynchronous event after the attach";
    EXPECT_EQ(seen.events[1].changed_namespaces, std::vector<std::uint32_t>{2});
    ASSERT_NE((*c)->find_namespace(2), nullptr);
    EXPECT_EQ(*(*c)->find_namespace(2), before);
    EXPECT_GE((*c)->async_events_outstanding(), 1u);  // resubmitted after each
    const bool logged = std::any_of(log_.lines.begin(), log_.lines.end(), [](const std::string& l) {
        return l.find("asynchronous event: notice: namespace attribute changed") != std::string::npos;
    });
    EXPECT_TRUE(logged);
    EXPECT_EQ((*c)->admin_stats().device_errors(), 0u);
}

// ---- Cross-check with the guest kernel's own nvme driver --------------------

bool write_sysfs(const std::string& path, const std::string& value) {
    std::ofstream f(path);
    f << value << std::flush;
    return static_cast<bool>(f);
}

TEST_P(NvmeVm, DataWrittenByDmakitIsReadBackByTheKernelsNvmeDriver) {
    namespace fs = std::filesystem;
    DMAKIT_VM_REQUIRE(fs::exists("/sys/bus/pci/drivers/nvme"),
                      "the kernel's nvme driver (/sys/bus/pci/drivers/nvme): scripts/vm loads it with "
                      "--modules nvme, which tests/vm/meson.build passes");
    const std::string bdf = address_->to_string();
    const std::uint32_t bs = ns1_.block_size();
    const std::uint64_t lba = spot(ns1_, 40000);
    const std::uint32_t blocks = (1u << 20) / bs;  // 1 MiB
    const auto chunk = static_cast<std::uint32_t>(std::min<std::uint64_t>(max_transfer_, 128 * 1024) / bs);
    std::vector<std::byte> data(std::size_t{blocks} * bs);
    fill(data.data(), bs, lba, blocks, 0xc0ffee);
    {
        auto c = open();
        ASSERT_TRUE(c.ok()) << c.error();
        auto q = (*c)->create_io_queue(32);
        ASSERT_TRUE(q.ok());
        for (std::uint32_t off = 0; off < blocks; off += chunk) {
            ASSERT_TRUE((*q)->write_host_sync(1, lba + off, chunk, data.data() + std::size_t{off} * bs).ok());
        }
        ASSERT_TRUE((*q)->flush_sync(1).ok());
    }  // clean shutdown
    dev_.reset();  // close VFIO: the device is free to rebind

    const std::string dev = "/sys/bus/pci/devices/" + bdf;
    ASSERT_TRUE(write_sysfs(dev + "/driver_override", "\n"));
    ASSERT_TRUE(write_sysfs(dev + "/driver/unbind", bdf));
    ASSERT_TRUE(write_sysfs("/sys/bus/pci/drivers/nvme/bind", bdf)) << "binding " << bdf << " to nvme";
    // The kernel probes asynchronously; wait for the namespace's block device.
    std::string block;
    for (int i = 0; i < 600 && block.empty(); ++i) {
        std::error_code ec;
        for (const auto& e : fs::recursive_directory_iterator(dev + "/nvme", ec)) {
            std::string name = e.path().filename();
            // The block device of nsid 1 (nvmeXn1): the other may be one the
            // kernel hides (separate metadata without PI support). A
            // controller in an NVM subsystem (the bench's second) shows its
            // path nvmeXcYn1; the device to read is the subsystem's head nvmeXn1.
            const bool nsid1 = name.size() > 2 && name.compare(name.size() - 2, 2, "n1") == 0;
            if (!nsid1 || name.rfind("nvme", 0) != 0 || name.find('n', 4) == std::string::npos) continue;
            if (const auto path = name.find('c', 4); path != std::string::npos) {
                name.erase(path, name.find('n', path) - path);
            }
            if (fs::exists("/dev/" + name)) {
                block = "/dev/" + name;
                break;
            }
        }
        if (block.empty()) std::this_thread::sleep_for(100ms);
    }
    std::vector<char> got;
    if (!block.empty()) {
        const std::string out = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/nvme-crosscheck.bin";
        const std::string cmd = "dd if=" + block + " of=" + out + " bs=" + std::to_string(bs) + " skip=" + std::to_string(lba) +
                                " count=" + std::to_string(blocks) + " iflag=direct status=none";
        EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
        std::ifstream f(out, std::ios::binary);
        got.assign(std::istreambuf_iterator<char>(f), {});
        std::remove(out.c_str());
    }
    // Back to vfio-pci for the tests that follow, whatever happened above.
    (void)write_sysfs(dev + "/driver/unbind", bdf);
    (void)write_sysfs(dev + "/driver_override", "vfio-pci");
    (void)write_sysfs("/sys/bus/pci/drivers_probe", bdf);

    ASSERT_FALSE(block.empty()) << "no block device appeared for " << bdf << " under the nvme driver";
    ASSERT_EQ(got.size(), data.size());
    const long bad = first_bad(reinterpret_cast<const std::byte*>(got.data()), bs, lba, blocks, 0xc0ffee);
    EXPECT_EQ(bad, -1) << "the kernel read different data at LBA " << lba + static_cast<std::uint64_t>(bad);
    EXPECT_FALSE(vmtest::devices_bound_to(vmtest::kBenchNvme).empty()) << "controller did not go back to vfio-pci";
}

}  // namespace
}  // namespace dmakit::nvme
