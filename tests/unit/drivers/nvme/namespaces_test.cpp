// Namespaces of several formats (NVMe 1.4 §5.15.2.2): enumeration, metadata
// (extended LBAs inline, separate metadata through MPTR), and the I/O the
// driver refuses before it reaches the device: a namespace that does not
// exist, a range past its end, protection information it cannot compute.
#include "controller_fixture.hpp"

#include <cerrno>
#include <string>
#include <vector>

namespace dmakit::nvme {
namespace {

using testing::ControllerTest;
using testing::error_code;
using testing::FakeNvmeBus;

class NamespacesTest : public ControllerTest {
protected:
    // nsid 1: 4 KiB blocks; 2: 512 B + 8 B separate metadata; 3: 512 B + 8 B
    // extended LBAs; 4: 512 B with protection information type 1.
    void SetUp() override {
        ControllerTest::SetUp();
        bus_->namespace_count = 4;
        bus_->formats[1] = FakeNvmeBus::NamespaceFormat{12, 0, false, 0, 1024};
        bus_->formats[2] = FakeNvmeBus::NamespaceFormat{9, 8, false, 0, 4096};
        bus_->formats[3] = FakeNvmeBus::NamespaceFormat{9, 8, true, 0, 4096};
        bus_->formats[4] = FakeNvmeBus::NamespaceFormat{9, 8, false, 1, 4096};
        open_with_queue();
    }
    [[nodiscard]] std::size_t io_sent() const { return bus_->io_commands.size(); }
};

TEST_F(NamespacesTest, EveryActiveNamespaceIsListedWithItsFormatMetadataIncluded) {
    const auto all = controller_->namespaces();
    ASSERT_EQ(all.size(), 4u);
    EXPECT_EQ(all[0].block_size(), 4096u);
    EXPECT_EQ(all[0].metadata_size(), 0u);
    EXPECT_EQ(all[1].block_size(), 512u);
    EXPECT_EQ(all[1].metadata_size(), 8u);
    EXPECT_TRUE(all[1].separate_metadata());
    EXPECT_EQ(all[1].bytes_per_block(), 512u);
    EXPECT_TRUE(all[2].extended_lba());
    EXPECT_FALSE(all[2].separate_metadata());
    EXPECT_EQ(all[2].bytes_per_block(), 520u);
    EXPECT_TRUE(all[3].protection_enabled());
    EXPECT_FALSE(logged("skipped"));
}

TEST_F(NamespacesTest, SeparateMetadataGoesToMptrAndIsRequired) {
    auto data = device_->alloc_coherent(4096);
    auto md = device_->alloc_coherent(4096);
    ASSERT_TRUE(data.ok() && md.ok());
    const DmaSegment seg{data->dma().value(), 4096};
    const DmaSegment meta{md->dma().value(), 64};  // 8 blocks * 8 bytes
    ASSERT_TRUE(queue_->write_with_metadata_sync(2, 16, 8, {&seg, 1}, meta).ok());
    ASSERT_EQ(io_sent(), 1u);
    EXPECT_EQ(bus_->io_commands[0].mptr, meta.addr);
    EXPECT_EQ(bus_->io_commands[0].nsid, 2u);
    ASSERT_TRUE(queue_->read_with_metadata_sync(2, 16, 8, {&seg, 1}, meta).ok());
    EXPECT_EQ(bus_->io_commands[1].mptr, meta.addr);

    // Without the metadata buffer the device would DMA metadata to address 0.
    auto plain = queue_->read_sync(2, 16, 8, {&seg, 1});
    EXPECT_EQ(error_code(plain), EINVAL);
    EXPECT_NE(plain.error().message().find("separate metadata"), std::string::npos) << plain.error();
    auto host = queue_->read_host_sync(2, 16, 8, buffer_.data());
    EXPECT_EQ(error_code(host), EINVAL);
    // A metadata buffer of the wrong size or alignment.
    const DmaSegment short_md{md->dma().value(), 56};
    EXPECT_EQ(error_code(queue_->read_with_metadata_sync(2, 16, 8, {&seg, 1}, short_md)), EINVAL);
    const DmaSegment odd_md{md->dma().value() + 2, 64};
    EXPECT_EQ(error_code(queue_->read_with_metadata_sync(2, 16, 8, {&seg, 1}, odd_md)), EINVAL);
    // A metadata buffer for a namespace without separate metadata.
    EXPECT_EQ(error_code(queue_->read_with_metadata_sync(1, 0, 1, {&seg, 1}, meta)), EINVAL);
    EXPECT_EQ(io_sent(), 2u);
    EXPECT_EQ(queue_->outstanding(), 0u);
    EXPECT_EQ(device_->live_mappings(), 0u);
}

TEST_F(NamespacesTest, ExtendedLbasCarryTheirMetadataInTheDataBuffer) {
    auto data = device_->alloc_coherent(8192);
    ASSERT_TRUE(data.ok());
    const DmaSegment exact{data->dma().value(), 8 * 520};
    const DmaSegment data_only{data->dma().value(), 8 * 512};
    EXPECT_TRUE(queue_->write_sync(3, 0, 8, {&exact, 1}).ok());
    EXPECT_EQ(bus_->io_commands.back().mptr, 0u);
    auto wrong = queue_->write_sync(3, 0, 8, {&data_only, 1});
    EXPECT_EQ(error_code(wrong), EINVAL);
    EXPECT_NE(wrong.error().message().find("inline metadata"), std::string::npos) << wrong.error();
    std::vector<std::byte> host(8 * 520);
    EXPECT_TRUE(queue_->read_host_sync(3, 0, 8, host.data()).ok());
    EXPECT_EQ(io_sent(), 2u);
}

TEST_F(NamespacesTest, ProtectionInformationIsRefusedWithAReason) {
    auto r = queue_->write_host_sync(4, 0, 1, buffer_.data());
    EXPECT_EQ(error_code(r), ENOTSUP);
    EXPECT_NE(r.error().message().find("protection information"), std::string::npos) << r.error();
    EXPECT_EQ(io_sent(), 0u);
}

TEST_F(NamespacesTest, IoPastTheNamespaceEndIsRefusedBeforeTheDevice) {
    // nsid 1 has 1024 blocks of 4 KiB.
    for (auto [slba, blocks] : {std::pair<std::uint64_t, std::uint32_t>{1024, 1}, {1023, 2}, {~std::uint64_t{0}, 1}}) {
        auto r = queue_->read_host_sync(1, slba, blocks, buffer_.data());
        EXPECT_EQ(error_code(r), ERANGE) << slba;
        if (!r.ok()) {
            EXPECT_NE(r.error().message().find("0..1023"), std::string::npos) << r.error();
        }
    }
    EXPECT_EQ(error_code(queue_->write_zeroes_sync(1, 1000, 100)), ERANGE);
    const DsmRange past{0, 8, 1020};
    EXPECT_EQ(error_code(queue_->deallocate_sync(1, {&past, 1})), ERANGE);
    EXPECT_EQ(io_sent(), 0u);
    // The last block is fine.
    EXPECT_TRUE(queue_->read_host_sync(1, 1023, 1, buffer_.data()).ok());
    EXPECT_EQ(device_->live_mappings(), 0u);
}

TEST_F(NamespacesTest, ANamespaceThatDoesNotExistIsRefusedNamingTheActiveOnes) {
    auto r = queue_->read_host_sync(9, 0, 1, buffer_.data());
    EXPECT_EQ(error_code(r), EINVAL);
    EXPECT_NE(r.error().message().find("active: 1, 2, 3, 4"), std::string::npos) << r.error();
    EXPECT_EQ(error_code(queue_->flush_sync(9)), EINVAL);
    EXPECT_EQ(error_code(queue_->write_zeroes_sync(0, 0, 1)), EINVAL);
    EXPECT_EQ(io_sent(), 0u);
    EXPECT_TRUE(queue_->flush_sync(nsid_all).ok());  // §6.8: every namespace
    EXPECT_EQ(queue_->outstanding(), 0u);
}

TEST_F(ControllerTest, ADetachedNamespaceIsNotListed) {
    bus_->namespace_count = 3;
    bus_->detached = {2};
    auto c = open_ok();
    ASSERT_TRUE(c);
    ASSERT_EQ(c->namespaces().size(), 2u);
    EXPECT_EQ(c->namespaces()[0].nsid, 1u);
    EXPECT_EQ(c->namespaces()[1].nsid, 3u);
    EXPECT_EQ(c->find_namespace(2), nullptr);
}

}  // namespace
}  // namespace dmakit::nvme
