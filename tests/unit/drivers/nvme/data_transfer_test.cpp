// SGL and PRP data transfers and large I/O through Controller and IoQueue,
// against the software controller moving real bytes (FakeNvmeBus::move_data):
// each test writes a pattern and reads it back through the model's own
// PRP/SGL decoder, so a wrong list shows up as wrong data or a refusal.
#include "controller_fixture.hpp"

#include <dmakit/dma/scatterlist.hpp>

#include <cerrno>
#include <cstring>
#include <vector>

namespace dmakit::nvme {
namespace {

using testing::Callbacks;
using testing::ControllerTest;
using testing::error_code;
using testing::Response;

constexpr std::uint32_t kSglsWithBitBucket = 1u | (1u << 16);

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + seed * 7 + (i >> 9)) & 0xff);
    return v;
}

class DataTransfer : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        bus_->move_data = true;
    }
    void open_with_queue(std::uint32_t depth = 0) {
        ControllerTest::open_with_queue(depth);
        baseline_ = live_maps();
    }
    // IOMMU mappings alive now (streaming mappings of caller memory among them).
    [[nodiscard]] std::size_t live_maps() const { return backend_maps() - backend_unmaps(); }
    std::size_t baseline_ = 0;

    // Scatter entries over `memory`: `pieces` runs of `len` bytes with a
    // 100-byte gap before each, so no two are contiguous and none is page aligned.
    static dma::ScatterList scatter(std::vector<std::byte>& memory, std::size_t pieces, std::size_t len) {
        dma::ScatterList sg;
        for (std::size_t i = 0; i < pieces; ++i) sg.add(memory.data() + 100 + i * (len + 100), len);
        return sg;
    }
    static void gather(const dma::ScatterList& sg, std::vector<std::byte>& out) {
        out.clear();
        for (const auto& e : sg.entries()) {
            const auto* p = static_cast<const std::byte*>(e.cpu);
            out.insert(out.end(), p, p + e.length);
        }
    }
    bool sync(IoQueue& q, bool write, std::uint64_t slba, std::uint32_t blocks, dma::ScatterList& sg) {
        Callbacks cb;
        auto r = write ? q.write_sg(1, slba, blocks, sg, &Callbacks::on_done, &cb)
                       : q.read_sg(1, slba, blocks, sg, &Callbacks::on_done, &cb);
        EXPECT_TRUE(r.ok()) << r.error();
        if (!r.ok()) return false;
        for (int i = 0; i < 1000 && cb.done.empty(); ++i) q.poll();
        EXPECT_EQ(cb.done.size(), 1u);
        return cb.done.size() == 1 && cb.done[0].ok();
    }
};

// A map_sg list of unaligned 512-byte pieces: only an SGL can say that.
TEST_F(DataTransfer, ScatteredBufferGoesAsAnSglAndTheDataArrives) {
    bus_->sgls = kSglsWithBitBucket;
    open_with_queue();
    ASSERT_TRUE(controller_->sgl_support().supported);
    std::vector<std::byte> out_mem(16 * 612 + 4096), in_mem(16 * 612 + 4096);
    dma::ScatterList out = scatter(out_mem, 16, 512), in = scatter(in_mem, 16, 512);
    const auto data = pattern(16 * 512, 1);
    for (std::size_t i = 0; i < 16; ++i) std::memcpy(out.entries()[i].cpu, data.data() + i * 512, 512);
    ASSERT_TRUE(device_->map_sg(out, dma::DmaDirection::to_device).ok());
    ASSERT_TRUE(device_->map_sg(in, dma::DmaDirection::from_device).ok());
    ASSERT_GT(out.segments().size(), 1u);
    ASSERT_TRUE(sync(*queue_, true, 8, 16, out));
    ASSERT_TRUE(sync(*queue_, false, 8, 16, in));
    std::vector<std::byte> got;
    gather(in, got);
    EXPECT_EQ(got, data);
    EXPECT_EQ(std::memcmp(bus_->media.data() + 8 * 512, data.data(), data.size()), 0);
    EXPECT_EQ(bus_->sgl_commands, 2u);
    EXPECT_EQ(queue_->io_stats().sgl_commands, 2u);
    EXPECT_EQ(bus_->io_commands.back().psdt(), 1u);
    EXPECT_EQ(bus_->refused_data, 0u);
    EXPECT_TRUE(device_->unmap_sg(out, dma::DmaDirection::to_device).ok());
    EXPECT_TRUE(device_->unmap_sg(in, dma::DmaDirection::from_device).ok());
}

TEST_F(DataTransfer, PrpPolicyRefusesWhatPrpsCannotSay) {
    bus_->sgls = kSglsWithBitBucket;
    open_with_queue();
    queue_->set_data_transfer(nvme::DataTransfer::prp);
    std::vector<std::byte> mem(4 * 612 + 4096);
    dma::ScatterList sg = scatter(mem, 4, 512);
    ASSERT_TRUE(device_->map_sg(sg, dma::DmaDirection::to_device).ok());
    auto r = queue_->write_sg(1, 0, 4, sg, nullptr, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_NE(r.error().message().find("PRP rules"), std::string::npos) << r.error();
    EXPECT_TRUE(bus_->io_commands.empty());
    EXPECT_EQ(queue_->outstanding(), 0u);
    EXPECT_TRUE(device_->unmap_sg(sg, dma::DmaDirection::to_device).ok());
}

TEST_F(DataTransfer, SglAskedOfAControllerWithoutSglsIsRefusedWithWhatToDo) {
    open_with_queue();  // SGLS 0
    EXPECT_FALSE(controller_->sgl_support().supported);
    queue_->set_data_transfer(nvme::DataTransfer::sgl);
    auto r = queue_->write_host(1, 0, 8, buffer_.data(), nullptr, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ENOTSUP);
    EXPECT_NE(r.error().message().find("DataTransfer::prp"), std::string::npos) << r.error();
    EXPECT_TRUE(bus_->io_commands.empty());
    EXPECT_EQ(queue_->outstanding(), 0u);
    EXPECT_EQ(live_maps(), baseline_);  // the map_single for it was undone
    // The same queue with PRPs works, and its mapping was undone.
    queue_->set_data_transfer(nvme::DataTransfer::automatic);
    EXPECT_TRUE(queue_->write_host_sync(1, 0, 8, buffer_.data()).ok());
    EXPECT_EQ(bus_->io_commands.back().psdt(), 0u);
}

TEST_F(DataTransfer, ForcedSglForAContiguousBuffer) {
    bus_->sgls = 1;
    open_with_queue();
    queue_->set_data_transfer(nvme::DataTransfer::sgl);
    const auto data = pattern(65536, 2);
    std::vector<std::byte> back(65536);
    ASSERT_TRUE(queue_->write_host_sync(1, 0, 128, data.data()).ok());
    ASSERT_TRUE(queue_->read_host_sync(1, 0, 128, back.data()).ok());
    EXPECT_EQ(back, data);
    EXPECT_EQ(bus_->sgl_commands, 2u);
}

// Above MDTS (here 8 KiB, QEMU's mdts=1): split into commands of at most 8 KiB.
TEST_F(DataTransfer, LargeIoIsSplitAndEveryByteArrives) {
    bus_->mdts = 1;
    options_.io_queue_depth = 64;
    open_with_queue();
    EXPECT_EQ(controller_->max_transfer(), 8192u);
    const auto data = pattern(200 * 1024, 3);  // 25 commands of 8 KiB
    std::vector<std::byte> back(data.size());
    ASSERT_TRUE(queue_->write_host_sync(1, 40, 400, data.data()).ok());
    ASSERT_TRUE(queue_->read_host_sync(1, 40, 400, back.data()).ok());
    EXPECT_EQ(back, data);
    EXPECT_EQ(queue_->io_stats().split_requests, 2u);
    EXPECT_EQ(queue_->io_stats().split_commands, 50u);
    ASSERT_EQ(bus_->io_commands.size(), 50u);
    std::uint64_t next = 40;
    for (std::size_t i = 0; i < 25; ++i) {
        const SubmissionEntry& e = bus_->io_commands[i];
        EXPECT_EQ(e.cdw10, next) << i;
        EXPECT_EQ((e.cdw12 & 0xffffu) + 1, 16u) << i;
        next += 16;
    }
    EXPECT_EQ(bus_->refused_data, 0u);
    EXPECT_EQ(live_maps(), baseline_);  // the one mapping per request is undone once
}

TEST_F(DataTransfer, SplitScatteredSglRequest) {
    bus_->sgls = 1;
    bus_->mdts = 1;
    options_.io_queue_depth = 64;
    open_with_queue();
    // 40 unaligned pieces of 1 KiB: 5 commands, cuts inside the list.
    std::vector<std::byte> out_mem(40 * 1124 + 4096), in_mem(40 * 1124 + 4096);
    dma::ScatterList out = scatter(out_mem, 40, 1024), in = scatter(in_mem, 40, 1024);
    const auto data = pattern(40 * 1024, 4);
    for (std::size_t i = 0; i < 40; ++i) std::memcpy(out.entries()[i].cpu, data.data() + i * 1024, 1024);
    ASSERT_TRUE(device_->map_sg(out, dma::DmaDirection::to_device).ok());
    ASSERT_TRUE(device_->map_sg(in, dma::DmaDirection::from_device).ok());
    ASSERT_TRUE(sync(*queue_, true, 0, 80, out));
    ASSERT_TRUE(sync(*queue_, false, 0, 80, in));
    std::vector<std::byte> got;
    gather(in, got);
    EXPECT_EQ(got, data);
    EXPECT_EQ(bus_->sgl_commands, 10u);
    EXPECT_TRUE(device_->unmap_sg(out, dma::DmaDirection::to_device).ok());
    EXPECT_TRUE(device_->unmap_sg(in, dma::DmaDirection::from_device).ok());
}

// No MDTS: one command of 4 MiB, its PRP list chained over three pages.
TEST_F(DataTransfer, OneCommandUpToMdtsChainsPrpListPages) {
    bus_->mdts = 0;
    open_with_queue();
    const auto data = pattern(4 << 20, 5);
    std::vector<std::byte> back(data.size());
    ASSERT_TRUE(queue_->write_host_sync(1, 0, 8192, data.data()).ok());
    ASSERT_TRUE(queue_->read_host_sync(1, 0, 8192, back.data()).ok());
    EXPECT_EQ(back, data);
    EXPECT_EQ(bus_->io_commands.size(), 2u);
    EXPECT_EQ(queue_->io_stats().split_requests, 0u);
    // 65537 blocks is one more than NLB can say: two commands.
    std::vector<std::byte> big(65537ull * 512);
    ASSERT_TRUE(queue_->write_host_sync(1, 0, 65537, big.data()).ok());
    EXPECT_EQ(queue_->io_stats().split_commands, 2u);
}

TEST_F(DataTransfer, SplittingOffRefusesAboveMdts) {
    bus_->mdts = 1;
    options_.split_io = false;
    open_with_queue();
    EXPECT_FALSE(queue_->splits());
    std::vector<std::byte> mem(16384);
    auto r = queue_->write_host(1, 0, 32, mem.data(), nullptr, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_NE(r.error().message().find("splitting is off"), std::string::npos) << r.error();
    EXPECT_TRUE(bus_->io_commands.empty());
    EXPECT_EQ(queue_->outstanding(), 0u);
    EXPECT_EQ(live_maps(), baseline_);
    EXPECT_TRUE(queue_->write_host_sync(1, 0, 16, mem.data()).ok());  // at MDTS: fine
}

TEST_F(DataTransfer, SplitRequestCompletesOnceWithTheFirstError) {
    bus_->mdts = 1;
    options_.io_queue_depth = 64;
    open_with_queue();
    int seen = 0;
    bus_->on_io = [&seen](const SubmissionEntry&) {
        ++seen;
        return seen == 2 ? testing::refused(sct::generic, sc::lba_out_of_range)
               : seen == 3 ? testing::refused(sct::media_error, sc::unrecovered_read_error)
                           : Response{};
    };
    std::vector<std::byte> mem(32768);
    Callbacks cb;
    auto cid = queue_->read_host(1, 0, 64, mem.data(), &Callbacks::on_done, &cb);
    ASSERT_TRUE(cid.ok()) << cid.error();
    for (int i = 0; i < 100; ++i) queue_->poll();
    ASSERT_EQ(cb.done.size(), 1u);
    EXPECT_EQ(cb.done[0].cid, *cid);
    EXPECT_FALSE(cb.done[0].ok());
    EXPECT_EQ(cb.done[0].status.sc, sc::lba_out_of_range);
    EXPECT_EQ(seen, 4);
    EXPECT_EQ(queue_->outstanding(), 0u);
    EXPECT_EQ(live_maps(), baseline_);
}

TEST_F(DataTransfer, SplitNeedsFreeEntries) {
    bus_->mdts = 1;
    open_with_queue(8);  // 7 commands at most
    std::vector<std::byte> mem(128 * 1024);
    auto r = queue_->read_host(1, 0, 128, mem.data(), nullptr, nullptr);  // 8 commands
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_NE(r.error().message().find("deeper queue"), std::string::npos) << r.error();
    // Busy: 6 commands held, a 2-command request must wait.
    bus_->on_io = [](const SubmissionEntry&) { return Response{{}, 0, false, true}; };
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(queue_->read_host(1, i * 16, 16, mem.data() + i * 8192, nullptr, nullptr).ok());
    queue_->ring();
    r = queue_->read_host(1, 0, 32, mem.data() + 65536, nullptr, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), EAGAIN);
    EXPECT_EQ(queue_->outstanding(), 6u);
    bus_->io_queue(queue_->qid())->release_held();
    queue_->poll();
    EXPECT_EQ(queue_->outstanding(), 0u);
    EXPECT_EQ(live_maps(), baseline_);
}

TEST_F(DataTransfer, TimedOutSplitRequestQuarantinesEveryPiece) {
    bus_->mdts = 1;
    options_.io_queue_depth = 16;
    open_with_queue();
    bus_->on_io = [](const SubmissionEntry&) { return Response{{}, 0, false, true}; };
    std::vector<std::byte> mem(32768);
    auto s = queue_->read_host_sync(1, 0, 64, mem.data());  // 4 commands, all held
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ETIMEDOUT);
    EXPECT_EQ(queue_->quarantined(), 4u);
    EXPECT_GT(live_maps(), baseline_);  // still mapped: the device may write it
    bus_->io_queue(queue_->qid())->release_held();
    queue_->poll();
    EXPECT_EQ(queue_->quarantined(), 0u);
    EXPECT_EQ(queue_->outstanding(), 0u);
    EXPECT_EQ(live_maps(), baseline_);
}

}  // namespace
}  // namespace dmakit::nvme
