// SGL data transfers and large I/O against QEMU's NVMe controller (which
// reports SGL support) through VFIO and the emulated intel-iommu. Every test
// runs on every NVMe controller bound to vfio-pci, so a second controller
// with a small MDTS (scripts/vm --qemu-arg ..., docs/testing.md) is covered
// too. Data is always written one way and read back another.
#include "bench_devices.hpp"

#include <dmakit/drivers/nvme/controller.hpp>
#include <dmakit/drivers/nvme/io_queue.hpp>

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/dma/scatterlist.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

namespace dmakit::nvme {
namespace {

using namespace std::chrono_literals;

struct HostMemory {
    explicit HostMemory(std::size_t n) : p(static_cast<std::byte*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096))), size(n) {}
    ~HostMemory() { std::free(p); }
    HostMemory(const HostMemory&) = delete;
    HostMemory& operator=(const HostMemory&) = delete;
    std::byte* p;
    std::size_t size;
};

void fill(std::byte* p, std::size_t n, std::uint64_t seed) {
    std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (std::size_t i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = static_cast<std::byte>(x);
    }
}

class NvmeDataVm : public ::testing::Test {
protected:
    void SetUp() override {
        found_ = vmtest::devices_bound_to(vmtest::kBenchNvme);
        DMAKIT_VM_REQUIRE_DEVICES(found_, vmtest::kBenchNvme);
    }

    // Runs `body` on every controller (its domain and controller opened
    // fresh, DMA-API debug on: a leaked mapping fails at close).
    void on_every_controller(const std::function<void(Controller&, const NamespaceInfo&)>& body) {
        for (const pci::PciAddress& a : found_) {
            SCOPED_TRACE(a.to_string());
            dma::PciDmaOptions o;
            o.context.debug = true;
            o.context.pages.region_size = std::size_t{16} << 20;
            auto d = dma::PciDomain::open(a, o);
            ASSERT_TRUE(d.ok()) << d.error();
            ControllerOptions co;
            co.io_timeout = 5s;
            co.admin_timeout = 5s;
            auto c = Controller::open((*d)->function(0), co);
            ASSERT_TRUE(c.ok()) << c.error();
            ASSERT_FALSE((*c)->namespaces().empty());
            body(**c, (*c)->namespaces()[0]);
        }
    }

    std::vector<pci::PciAddress> found_;
};

// Scattered, unaligned host pieces (what only an SGL can describe), written
// with an SGL and read back into one contiguous buffer with PRPs.
TEST_F(NvmeDataVm, ScatteredSglWriteReadsBackThroughPrps) {
    on_every_controller([](Controller& c, const NamespaceInfo& ns) {
        ASSERT_TRUE(c.sgl_support().supported) << "QEMU 7.2 reports SGLS; this controller says " << c.info().sgls;
        auto q = c.create_io_queue(64);
        ASSERT_TRUE(q.ok()) << q.error();
        const std::size_t bs = ns.block_size();
        const std::size_t pieces = 48, piece = 700;  // 33600 bytes: rounded down to whole blocks below
        const std::size_t bytes = pieces * piece / bs * bs;
        HostMemory mem(pieces * (piece + 36) + 8192);
        std::vector<std::byte> data(bytes);
        fill(data.data(), bytes, 11);
        dma::ScatterList sg;
        std::size_t at = 0, off = 36;
        while (at < bytes) {
            const std::size_t n = std::min(piece, bytes - at);
            std::memcpy(mem.p + off, data.data() + at, n);
            sg.add(mem.p + off, n);
            at += n;
            off += n + 36;  // a gap: no two pieces touch
        }
        ASSERT_TRUE(c.dma().map_sg(sg, dma::DmaDirection::to_device).ok());
        ASSERT_GT(sg.segments().size(), 1u);
        const auto blocks = static_cast<std::uint32_t>(bytes / bs);
        bool done = false, ok = false;
        auto cb = +[](void* u, const IoCompletion& r) noexcept {
            auto* flags = static_cast<std::pair<bool*, bool*>*>(u);
            *flags->first = true;
            *flags->second = r.ok();
        };
        std::pair<bool*, bool*> flags{&done, &ok};
        auto cid = (*q)->write_sg(ns.nsid, 64, blocks, sg, cb, &flags);
        ASSERT_TRUE(cid.ok()) << cid.error();
        const auto give_up = std::chrono::steady_clock::now() + 10s;
        while (!done && std::chrono::steady_clock::now() < give_up) (*q)->poll();
        ASSERT_TRUE(done);
        EXPECT_TRUE(ok);
        EXPECT_GE((*q)->io_stats().sgl_commands, 1u);
        EXPECT_TRUE(c.dma().unmap_sg(sg, dma::DmaDirection::to_device).ok());

        (*q)->set_data_transfer(DataTransfer::prp);
        auto back = c.dma().alloc_coherent(bytes);
        ASSERT_TRUE(back.ok());
        const DmaSegment seg{back->dma().value(), bytes};
        const auto sgl_before = (*q)->io_stats().sgl_commands;
        ASSERT_TRUE((*q)->read_sync(ns.nsid, 64, blocks, {&seg, 1}).ok());
        EXPECT_EQ((*q)->io_stats().sgl_commands, sgl_before);
        EXPECT_EQ(std::memcmp(back->cpu(), data.data(), bytes), 0);
        EXPECT_TRUE(c.delete_io_queue(*q).ok());
    });
}

// 4 MiB through one request: split above MDTS, PRP lists chained within a
// command, forced SGL too; written from caller memory, read into hugepage
// memory, and the other way round.
TEST_F(NvmeDataVm, FourMiBRequestsAreSplitAtMdtsAndVerified) {
    on_every_controller([](Controller& c, const NamespaceInfo& ns) {
        const std::size_t bytes = 4u << 20;
        const std::size_t bs = ns.block_size();
        ASSERT_GE(ns.nsze * bs, 2 * bytes) << "the namespace is too small for this test";
        const std::uint64_t chunk = std::min<std::uint64_t>(c.max_transfer(), 65536ull * bs);
        const std::uint64_t per_request = (bytes + chunk - 1) / chunk;
        auto q = c.create_io_queue(static_cast<std::uint32_t>(std::min<std::uint64_t>(
            std::max<std::uint64_t>(per_request + 1, 16), c.max_io_queue_depth())));
        ASSERT_TRUE(q.ok()) << q.error();
        const auto blocks = static_cast<std::uint32_t>(bytes / bs);
        for (DataTransfer how : {DataTransfer::prp, DataTransfer::sgl}) {
            SCOPED_TRACE(to_string(how));
            (*q)->set_data_transfer(how);
            const auto stats0 = (*q)->io_stats();
            HostMemory out(bytes), in(bytes);
            fill(out.p, bytes, how == DataTransfer::prp ? 21 : 22);
            auto coherent = c.dma().alloc_coherent(bytes);
            ASSERT_TRUE(coherent.ok()) << coherent.error();
            const DmaSegment seg{coherent->dma().value(), bytes};
            // caller memory -> disk -> hugepage memory
            ASSERT_TRUE((*q)->write_host_sync(ns.nsid, 0, blocks, out.p).ok());
            ASSERT_TRUE((*q)->read_sync(ns.nsid, 0, blocks, {&seg, 1}).ok());
            EXPECT_EQ(std::memcmp(coherent->cpu(), out.p, bytes), 0);
            // hugepage memory -> disk (second range) -> caller memory
            fill(static_cast<std::byte*>(coherent->cpu()), bytes, 31);
            ASSERT_TRUE((*q)->write_sync(ns.nsid, blocks, blocks, {&seg, 1}).ok());
            ASSERT_TRUE((*q)->read_host_sync(ns.nsid, blocks, blocks, in.p).ok());
            EXPECT_EQ(std::memcmp(coherent->cpu(), in.p, bytes), 0);
            const auto& stats = (*q)->io_stats();
            if (per_request > 1) {
                EXPECT_EQ(stats.split_requests - stats0.split_requests, 4u);
                EXPECT_EQ(stats.split_commands - stats0.split_commands, 4 * per_request);
            }
            if (how == DataTransfer::sgl) {
                EXPECT_EQ(stats.sgl_commands - stats0.sgl_commands, 4 * per_request);
            }
        }
        EXPECT_EQ((*q)->stats().device_errors(), 0u);
        EXPECT_TRUE(c.delete_io_queue(*q).ok());
    });
}

TEST_F(NvmeDataVm, AboveMdtsWithSplittingOffIsRefusedAndNothingLeaks) {
    on_every_controller([](Controller& c, const NamespaceInfo& ns) {
        if (c.max_transfer() >= (std::uint64_t{64} << 20)) GTEST_SKIP() << "MDTS too large to exceed here";
        auto q = c.create_io_queue(16);
        ASSERT_TRUE(q.ok()) << q.error();
        (*q)->set_split(false);
        const std::size_t bytes = c.max_transfer() + 2 * ns.block_size();
        HostMemory mem(bytes);
        auto s = (*q)->write_host_sync(ns.nsid, 0, static_cast<std::uint32_t>(bytes / ns.block_size()), mem.p);
        ASSERT_FALSE(s.ok());
        EXPECT_EQ(s.error().code(), EINVAL);
        EXPECT_NE(s.error().message().find("splitting is off"), std::string::npos) << s.error();
        EXPECT_EQ((*q)->outstanding(), 0u);
        // Exactly MDTS is one command.
        ASSERT_TRUE((*q)->write_host_sync(ns.nsid, 0, static_cast<std::uint32_t>(c.max_transfer() / ns.block_size()),
                                          mem.p).ok());
        EXPECT_EQ((*q)->io_stats().split_requests, 0u);
        EXPECT_TRUE(c.delete_io_queue(*q).ok());
    });
}

}  // namespace
}  // namespace dmakit::nvme
