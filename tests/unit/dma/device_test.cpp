#include "dma_test_fixture.hpp"

#include <dmakit/mem/anonymous_source.hpp>

#include <cerrno>
#include <cstring>
#include <vector>

namespace dmakit::dma::testing {
namespace {

TEST_F(DmaTest, CoherentBufferIsZeroedAlignedAndReachableByTheDevice) {
    auto buffer = device_->alloc_coherent(10000);
    ASSERT_TRUE(buffer.ok()) << buffer.error();
    EXPECT_EQ(buffer->size(), 10000U);
    EXPECT_EQ(buffer->dma().value() % 16384, 0U) << "aligned to its power-of-two size";
    auto bytes = buffer->bytes();
    EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; }));
    // The device writes through its address; the CPU sees it.
    auto* device_side = static_cast<unsigned char*>(device_view(buffer->dma(), buffer->size()));
    ASSERT_EQ(device_side, buffer->cpu());
    device_side[9999] = 0x5a;
    EXPECT_EQ(buffer->as<unsigned char>()[9999], 0x5a);
    EXPECT_LE(buffer->dma().value() + buffer->size() - 1, device_->coherent_mask());
}

TEST_F(DmaTest, CoherentFreeReturnsThePagesAndMovesTransferOwnership) {
    auto before = context_->pages().stats();
    {
        auto buffer = device_->alloc_coherent(4096);
        ASSERT_TRUE(buffer.ok());
        CoherentBuffer moved = std::move(buffer).value();
        EXPECT_TRUE(moved.valid());
        CoherentBuffer target;
        target = std::move(moved);
        EXPECT_FALSE(moved.valid());  // NOLINT(bugprone-use-after-move)
        EXPECT_TRUE(target.valid());
    }
    context_->pages().drain_thread_cache();
    auto after = context_->pages().stats();
    EXPECT_EQ(after.free_bytes, before.free_bytes + (after.managed_bytes - before.managed_bytes));
}

TEST_F(DmaTest, PoolMemoryMapsWithoutTouchingTheIommu) {
    auto buffer = device_->alloc_coherent(8192);
    ASSERT_TRUE(buffer.ok());
    const std::size_t maps = backend_maps();
    auto* inner = buffer->as<std::byte>() + 100;
    auto addr = device_->map_single(inner, 1000, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    EXPECT_EQ(addr->value(), buffer->dma().value() + 100);
    EXPECT_EQ(device_view(*addr, 1000), inner);
    EXPECT_TRUE(device_->unmap_single(*addr, 1000, DmaDirection::to_device).ok());
    EXPECT_EQ(backend_maps(), maps) << "no IOMMU call for pool memory";
    EXPECT_EQ(backend_unmaps(), 0U);
}

TEST_F(DmaTest, ForeignMemoryIsMappedPerCallAndUnmappedAtUnmap) {
    std::vector<unsigned char> heap(64 * 1024, 0x11);
    const std::size_t maps = backend_maps();
    auto a = device_->map_single(heap.data(), 4096, DmaDirection::from_device);
    ASSERT_TRUE(a.ok()) << a.error();
    auto b = device_->map_single(heap.data() + 8192, 4096, DmaDirection::from_device);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(backend_maps(), maps + 2) << "each map of foreign memory is its own IOMMU mapping";
    EXPECT_TRUE(device_can_write(*b, 4096));
    EXPECT_EQ(context_->registrations().stats().hits, 0U);

    ASSERT_TRUE(device_->unmap_single(*a, 4096, DmaDirection::from_device).ok());
    EXPECT_EQ(backend_unmaps(), 1U);
    EXPECT_FALSE(device_can_write(*a, 1)) << "the device can no longer reach unmapped memory";
    EXPECT_TRUE(device_can_write(*b, 4096)) << "b is untouched";
    ASSERT_TRUE(device_->unmap_single(*b, 4096, DmaDirection::from_device).ok());
    EXPECT_EQ(backend_unmaps(), 2U);
}

TEST_F(DmaTest, RegisteredMemoryMakesEveryMapAHit) {
    std::vector<unsigned char> heap(256 * 1024);
    auto registration = context_->registrations().register_memory(heap.data(), heap.size(),
                                                                  device_->mask());
    ASSERT_TRUE(registration.ok()) << registration.error();
    const std::size_t maps = backend_maps();
    for (int i = 0; i < 100; ++i) {
        auto addr = device_->map_single(heap.data() + i * 1024, 1024, DmaDirection::to_device);
        ASSERT_TRUE(addr.ok());
        ASSERT_TRUE(device_->unmap_single(*addr, 1024, DmaDirection::to_device).ok());
    }
    EXPECT_EQ(backend_maps(), maps);
    EXPECT_EQ(backend_unmaps(), 0U);
    EXPECT_EQ(context_->registrations().stats().hits, 100U);
    registration->reset();
    EXPECT_EQ(backend_unmaps(), 1U);
    // The registration ended: the next map is exact again, not a stale hit.
    auto after = device_->map_single(heap.data(), 1024, DmaDirection::to_device);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(backend_maps(), maps + 1);
    EXPECT_EQ(context_->registrations().stats().hits, 100U);
    ASSERT_TRUE(device_->unmap_single(*after, 1024, DmaDirection::to_device).ok());
}

TEST_F(DmaTest, MapPageAddsTheOffset) {
    auto buffer = device_->alloc_coherent(8192);
    ASSERT_TRUE(buffer.ok());
    auto addr = device_->map_page(buffer->cpu(), 4096, 512, DmaDirection::bidirectional);
    ASSERT_TRUE(addr.ok());
    EXPECT_EQ(addr->value(), buffer->dma().value() + 4096);
    EXPECT_TRUE(device_->unmap_page(*addr, 512, DmaDirection::bidirectional).ok());
}

TEST_F(DmaTest, BadInputGetsAClearErrorAndChangesNothing) {
    std::vector<unsigned char> heap(4096);
    auto zero = device_->map_single(heap.data(), 0, DmaDirection::to_device);
    ASSERT_FALSE(zero.ok());
    EXPECT_EQ(zero.error().code(), EINVAL);
    EXPECT_NE(zero.error().message().find("0 bytes"), std::string::npos);

    auto* near_top = reinterpret_cast<void*>(~std::uintptr_t{0} - 100);
    auto wrap = device_->map_single(near_top, 4096, DmaDirection::to_device);
    ASSERT_FALSE(wrap.ok());
    EXPECT_EQ(wrap.error().code(), EOVERFLOW);

    auto coherent_zero = device_->alloc_coherent(0);
    ASSERT_FALSE(coherent_zero.ok());
    EXPECT_EQ(coherent_zero.error().code(), EINVAL);

    auto huge = device_->alloc_coherent(std::size_t{4} << 30);
    ASSERT_FALSE(huge.ok());
    EXPECT_NE(huge.error().message().find("alloc_large"), std::string::npos);

    auto never = device_->unmap_single(DmaAddr(0x12345000), 4096, DmaDirection::to_device);
    ASSERT_FALSE(never.ok());
    EXPECT_EQ(never.error().code(), EINVAL);
    EXPECT_EQ(context_->registrations().stats().extents, 0U);
}

TEST_F(DmaTest, MasksBelowThePoolWindowAreRefusedWithTheFix) {
    EXPECT_TRUE(device_->set_mask_and_coherent(dma_bit_mask(64)).ok());
    EXPECT_TRUE(device_->set_mask_and_coherent(dma_bit_mask(32)).ok());
    auto narrow = device_->set_mask(dma_bit_mask(28));
    ASSERT_FALSE(narrow.ok());
    EXPECT_EQ(narrow.error().code(), EIO);
    EXPECT_NE(narrow.error().message().find("pool_dma_mask"), std::string::npos);
    EXPECT_EQ(device_->mask(), dma_bit_mask(32)) << "a refused mask changes nothing";
    auto tiny = device_->set_mask(0xfff);
    ASSERT_FALSE(tiny.ok());
}

TEST_F(DmaTest, ThirtyTwoBitDeviceGetsAddressesBelowFourGiB) {
    TestContextOptions options;
    options.context.pool_dma_mask = dma_bit_mask(32);
    make_context(options);
    ASSERT_TRUE(device_->set_mask_and_coherent(dma_bit_mask(32)).ok());
    std::vector<std::vector<unsigned char>> buffers;
    for (int i = 0; i < 16; ++i) {
        buffers.emplace_back(3 << 20);
        auto addr = device_->map_single(buffers.back().data(), buffers.back().size(),
                                        DmaDirection::to_device);
        ASSERT_TRUE(addr.ok()) << addr.error();
        EXPECT_LE(addr->value() + buffers.back().size() - 1, dma_bit_mask(32));
    }
    for (int i = 0; i < 8; ++i) {
        auto buffer = device_->alloc_coherent(std::size_t{1} << 20);
        ASSERT_TRUE(buffer.ok());
        EXPECT_LE(buffer->dma().value() + buffer->size() - 1, dma_bit_mask(32));
    }
}

TEST_F(DmaTest, ExhaustedIovaSpaceIsAnErrorAndTheDomainRecovers) {
    TestContextOptions options;
    // 16 MiB of device address space in all, a pool region takes 4 MiB.
    options.backend.usable_ranges = {{0x1000000, 0x1ffffff}};
    options.context.pool_dma_mask = 0x1ffffff;
    make_context(options);
    ASSERT_TRUE(device_->set_mask_and_coherent(0x1ffffff).ok());
    std::vector<std::vector<unsigned char>> heaps;
    std::vector<DmaAddr> mapped;
    Error last(0, "");
    for (int i = 0; i < 16; ++i) {
        heaps.emplace_back(std::size_t{3} << 20);
        auto addr = device_->map_single(heaps.back().data(), heaps.back().size(), DmaDirection::to_device);
        if (!addr.ok()) {
            last = addr.error();
            break;
        }
        mapped.push_back(*addr);
    }
    ASSERT_EQ(last.code(), ENOMEM) << last;
    EXPECT_NE(last.message().find("IOVA"), std::string::npos) << last.message();
    ASSERT_FALSE(mapped.empty());
    ASSERT_TRUE(device_->unmap_single(mapped.back(), heaps[mapped.size() - 1].size(), DmaDirection::to_device).ok());
    auto again = device_->map_single(heaps.back().data(), heaps.back().size(), DmaDirection::to_device);
    EXPECT_TRUE(again.ok()) << "usable again after space was freed";
}

TEST_F(DmaTest, ExhaustedMappingBudgetIsAnErrorAndRecovers) {
    TestContextOptions options;
    options.domain.max_mappings = 3;  // the first pool region takes one
    make_context(options);
    auto coherent = device_->alloc_coherent(4096);
    ASSERT_TRUE(coherent.ok());
    std::vector<std::vector<unsigned char>> heaps;
    std::vector<DmaAddr> mapped;
    std::optional<Error> failure;
    for (int i = 0; i < 4 && !failure; ++i) {
        heaps.emplace_back(std::size_t{3} << 20);
        auto addr = device_->map_single(heaps.back().data(), 4096, DmaDirection::to_device);
        if (addr.ok()) {
            mapped.push_back(*addr);
        } else {
            failure = addr.error();
        }
    }
    ASSERT_TRUE(failure.has_value());
    EXPECT_EQ(mapped.size(), 2U);
    EXPECT_NE(failure->message().find("budget"), std::string::npos) << failure->message();
    ASSERT_TRUE(device_->unmap_single(mapped[0], 4096, DmaDirection::to_device).ok());
    auto again = device_->map_single(heaps.back().data(), 4096, DmaDirection::to_device);
    EXPECT_TRUE(again.ok()) << again.error();
}

TEST_F(DmaTest, PoolRegionThatCannotBeMappedFailsTheAllocationCleanly) {
    TestContextOptions options;
    options.domain.max_mappings = 1;  // room for the first pool region only
    make_context(options);
    // One allocation as large as a region takes the whole first region, so
    // the next allocation needs a second one.
    auto fill = device_->alloc_coherent(std::size_t{4} << 20);
    ASSERT_TRUE(fill.ok()) << fill.error();
    const auto regions = context_->pages().stats().regions;
    auto refused = device_->alloc_coherent(std::size_t{1} << 20);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message().find("budget"), std::string::npos) << refused.error();
    EXPECT_EQ(context_->pages().stats().regions, regions) << "the unmappable region was dropped";
    fill->reset();
    auto retry = device_->alloc_coherent(std::size_t{1} << 20);
    EXPECT_TRUE(retry.ok()) << "usable again once memory was freed";
}

TEST_F(DmaTest, LargeBufferIsOneDeviceRangeOverScatteredPages) {
    const std::size_t size = std::size_t{3} << 20;
    auto buffer = device_->alloc_large(size);
    ASSERT_TRUE(buffer.ok()) << buffer.error();
    EXPECT_EQ(buffer->size(), size);
    for (std::size_t offset = 0; offset < size; offset += 256 * 1024) {
        EXPECT_EQ(device_view(buffer->dma() + offset, 4096),
                  static_cast<std::byte*>(buffer->cpu()) + offset);
    }
    EXPECT_NE(device_view(buffer->dma(), size), nullptr) << "one contiguous device range";
    DmaAddr addr = buffer->dma();
    buffer->reset();
    EXPECT_EQ(device_view(addr, 4096), nullptr);
}

TEST_F(DmaTest, TwoContextsAreIndependent) {
    auto other_backend = std::make_unique<iommu::TestIommuBackend>();
    auto* other_test = other_backend.get();
    auto domain = iommu::IommuDomain::create(std::move(other_backend));
    ASSERT_TRUE(domain.ok());
    DmaContextConfig config;
    config.logger = &log_.logger;
    config.pages.region_size = std::size_t{2} << 20;
    auto other = DmaContext::create(std::move(domain).value(),
                                    std::make_unique<mem::AnonymousSource>(), config);
    ASSERT_TRUE(other.ok());
    DmaDevice nic(**other, "0000:00:05.0");
    auto a = device_->alloc_coherent(4096);
    auto b = nic.alloc_coherent(4096);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_NE(device_view(b->dma(), 4096), b->cpu()) << "A's IOMMU does not map B's memory";
    EXPECT_EQ(*other_test->translate(b->dma().value(), 4096, iommu::Access::read), b->cpu());
}

TEST_F(DmaTest, EntryAddedAfterMapSgIsNotUnmapped) {
    std::vector<unsigned char> heap(64 * 1024);
    ScatterList list;
    list.add(heap.data(), 4096);
    ASSERT_TRUE(device_->map_sg(list, DmaDirection::to_device).ok());
    list.add(heap.data() + 16384, 4096);  // never mapped
    ASSERT_TRUE(device_->unmap_sg(list, DmaDirection::to_device).ok());
    EXPECT_EQ(backend_unmaps(), 1U);
    EXPECT_EQ(device_->live_mappings(), 0U);
}

}  // namespace
}  // namespace dmakit::dma::testing
