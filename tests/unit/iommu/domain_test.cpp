#include <dmakit/iommu/domain.hpp>
#include <dmakit/testing/test_backend.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace dmakit::iommu {
// Named, not anonymous: the unit programs compile as unity files (tests/meson.build),
// where another file's helpers of the same names share the translation unit.
namespace domain_test {

constexpr std::uint64_t k4K = 4096;

// Page-aligned scratch memory the test "device" can reach through translate().
struct Pages {
    explicit Pages(std::size_t n) : size(n * k4K), data(static_cast<std::byte*>(std::aligned_alloc(k4K, n * k4K))) {
        std::memset(data, 0, size);
    }
    ~Pages() { std::free(data); }
    Pages(const Pages&) = delete;
    Pages& operator=(const Pages&) = delete;
    std::byte* page(std::size_t i) const { return data + i * k4K; }
    std::size_t size;
    std::byte* data;
};

struct Fixture {
    explicit Fixture(TestBackendConfig backend_config = {}, DomainConfig config = {}) {
        auto owned = std::make_unique<TestIommuBackend>(std::move(backend_config));
        backend = owned.get();
        auto created = IommuDomain::create(std::move(owned), config);
        EXPECT_TRUE(created.ok()) << (created.ok() ? "" : dmakit::to_string(created.error()));
        domain = std::move(created).value();
    }
    TestIommuBackend* backend = nullptr;
    std::unique_ptr<IommuDomain> domain;
};

TEST(IommuDomain, MapAndUnmapAreRecorded) {
    Fixture f;
    Pages mem(4);
    EXPECT_EQ(f.domain->granule(), k4K);
    EXPECT_EQ(f.domain->mapping_budget(), 65535u);

    auto m = f.domain->map(mem.page(0), 3 * k4K - 100, Access::read_write);
    ASSERT_TRUE(m.ok()) << m.error();
    EXPECT_EQ(m->length, 3 * k4K);
    EXPECT_EQ(m->iova % (4 * k4K), 0u);
    EXPECT_EQ(f.domain->mappings_in_use(), 1u);
    ASSERT_EQ(f.backend->operations().size(), 1u);
    const auto& op = f.backend->operations()[0];
    EXPECT_EQ(op.kind, TestIommuBackend::Operation::Kind::map);
    EXPECT_EQ(op.iova, m->iova);
    EXPECT_EQ(op.length, 3 * k4K);
    EXPECT_EQ(op.cpu, mem.page(0));
    EXPECT_TRUE(op.ok);

    // The "device" writes through the IOVA and the CPU sees it.
    auto dev = f.backend->translate(m->iova + k4K + 8, 4, Access::write);
    ASSERT_TRUE(dev.has_value());
    std::memcpy(*dev, "abcd", 4);
    EXPECT_EQ(std::memcmp(mem.page(1) + 8, "abcd", 4), 0);
    EXPECT_EQ(f.domain->find_iova(mem.page(2) + 5), m->iova + 2 * k4K + 5);
    EXPECT_FALSE(f.domain->find_iova(mem.page(3)).has_value());

    ASSERT_TRUE(f.domain->unmap(m->iova).ok());
    EXPECT_EQ(f.domain->mappings_in_use(), 0u);
    ASSERT_EQ(f.backend->operations().size(), 2u);
    EXPECT_EQ(f.backend->operations()[1].kind, TestIommuBackend::Operation::Kind::unmap);
    EXPECT_TRUE(f.backend->live().empty());
    EXPECT_FALSE(f.backend->translate(m->iova, 4, Access::read).has_value());
    EXPECT_EQ(f.domain->unmap(m->iova).error().code(), EINVAL) << "double unmap";
}

TEST(IommuDomain, ReadOnlyMappingIsNotWritableByTheDevice) {
    Fixture f;
    Pages mem(1);
    auto m = f.domain->map(mem.page(0), k4K, Access::read);
    ASSERT_TRUE(m.ok());
    EXPECT_TRUE(f.backend->translate(m->iova, 4, Access::read).has_value());
    EXPECT_FALSE(f.backend->translate(m->iova, 4, Access::write).has_value());
}

TEST(IommuDomain, BadInputIsRejectedWithoutSideEffects) {
    Fixture f;
    Pages mem(2);
    const std::uint64_t free_before = f.domain->free_iova_bytes();
    EXPECT_EQ(f.domain->map(mem.page(0), 0, Access::read).error().code(), EINVAL);
    EXPECT_EQ(f.domain->map(nullptr, k4K, Access::read).error().code(), EINVAL);
    EXPECT_EQ(f.domain->map(mem.page(0) + 8, k4K, Access::read).error().code(), EINVAL);
    auto overflow = f.domain->map(reinterpret_cast<void*>(UINTPTR_MAX & ~(k4K - 1)), 2 * k4K,
                                  Access::read);
    ASSERT_FALSE(overflow.ok());
    EXPECT_NE(overflow.error().message().find("overflow"), std::string::npos);
    // A mask no usable range meets.
    auto masked = f.domain->map(mem.page(0), k4K, Access::read, {.dma_mask = 0xfff});
    ASSERT_FALSE(masked.ok());
    EXPECT_EQ(masked.error().code(), ENOMEM);
    EXPECT_TRUE(f.backend->operations().empty());
    EXPECT_EQ(f.domain->free_iova_bytes(), free_before);
}

TEST(IommuDomain, DmaMaskIsHonoured) {
    Fixture f;
    Pages mem(1);
    auto m = f.domain->map(mem.page(0), k4K, Access::read, {.dma_mask = 0xffffffff});
    ASSERT_TRUE(m.ok());
    EXPECT_LE(m->iova + m->length - 1, 0xffffffffu);
}

TEST(IommuDomain, BudgetExhaustionIsClearAndRecovers) {
    TestBackendConfig config;
    config.budget = 5;
    Fixture f(config);
    Pages mem(8);
    std::vector<IommuMapping> maps;
    for (int i = 0; i < 5; ++i) {
        auto m = f.domain->map(mem.page(static_cast<std::size_t>(i)), k4K, Access::read_write);
        ASSERT_TRUE(m.ok());
        maps.push_back(*m);
    }
    const std::size_t ops_before = f.backend->operations().size();
    auto full = f.domain->map(mem.page(5), k4K, Access::read_write);
    ASSERT_FALSE(full.ok());
    EXPECT_EQ(full.error().code(), ENOSPC);
    EXPECT_NE(full.error().message().find("mapping budget (5 mappings, TestIommuBackend budget) is used up"),
              std::string::npos)
        << full.error();
    EXPECT_EQ(f.backend->operations().size(), ops_before) << "the backend was not even asked";
    // Recovers after an unmap.
    ASSERT_TRUE(f.domain->unmap(maps[2].iova).ok());
    auto again = f.domain->map(mem.page(5), k4K, Access::read_write);
    ASSERT_TRUE(again.ok()) << again.error();
}

TEST(IommuDomain, ConfigCapLowersTheBudget) {
    Fixture f({}, DomainConfig{.max_mappings = 2});
    Pages mem(3);
    EXPECT_EQ(f.domain->mapping_budget(), 2u);
    ASSERT_TRUE(f.domain->map(mem.page(0), k4K, Access::read).ok());
    ASSERT_TRUE(f.domain->map(mem.page(1), k4K, Access::read).ok());
    auto full = f.domain->map(mem.page(2), k4K, Access::read);
    ASSERT_FALSE(full.ok());
    EXPECT_EQ(full.error().code(), ENOSPC);
    EXPECT_NE(full.error().message().find("DomainConfig::max_mappings"), std::string::npos);
}

TEST(IommuDomain, Type1BudgetMessageNamesTheModuleParameter) {
    // The wording comes from the backend; check the domain assembles it.
    class Type1Words final : public TestIommuBackend {
    public:
        using TestIommuBackend::TestIommuBackend;
        BudgetDescription budget_description() const override {
            return {"vfio_iommu_type1 dma_entry_limit",
                    "raise it with modprobe vfio_iommu_type1 dma_entry_limit=131072"};
        }
    };
    TestBackendConfig config;
    config.budget = 1;
    auto created = IommuDomain::create(std::make_unique<Type1Words>(config));
    ASSERT_TRUE(created.ok());
    Pages mem(2);
    ASSERT_TRUE((*created)->map(mem.page(0), k4K, Access::read).ok());
    auto full = (*created)->map(mem.page(1), k4K, Access::read);
    ASSERT_FALSE(full.ok());
    EXPECT_EQ(full.error().message(),
              "the IOMMU mapping budget (1 mappings, vfio_iommu_type1 dma_entry_limit) is used "
              "up; raise it with modprobe vfio_iommu_type1 dma_entry_limit=131072");
}

TEST(IommuDomain, BackendFailureRollsBack) {
    Fixture f;
    Pages mem(8);
    const std::uint64_t free_before = f.domain->free_iova_bytes();
    f.backend->fail_map_after(0, Error(ENOMEM, "injected pin failure"));
    auto m = f.domain->map(mem.page(0), k4K, Access::read);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().message(), "injected pin failure");
    EXPECT_EQ(f.domain->free_iova_bytes(), free_before) << "IOVA returned";
    EXPECT_EQ(f.domain->mappings_in_use(), 0u);
    EXPECT_EQ(f.domain->mapping_count(), 0u);

    // Scattered: the third segment fails; the first two are unmapped again.
    f.backend->clear_operations();
    f.backend->fail_map_after(2, Error(EFAULT, "injected"));
    const CpuSegment segments[] = {{mem.page(0), k4K}, {mem.page(4), k4K}, {mem.page(2), k4K}};
    auto s = f.domain->map_scattered(segments, Access::read_write);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(f.backend->live().empty());
    const auto& ops = f.backend->operations();
    ASSERT_EQ(ops.size(), 5u);  // map, map, failed map, unmap, unmap
    EXPECT_FALSE(ops[2].ok);
    EXPECT_EQ(ops[3].kind, TestIommuBackend::Operation::Kind::unmap);
    EXPECT_EQ(ops[4].kind, TestIommuBackend::Operation::Kind::unmap);
    EXPECT_EQ(f.domain->free_iova_bytes(), free_before);

    // Still usable.
    auto ok = f.domain->map_scattered(segments, Access::read_write);
    ASSERT_TRUE(ok.ok()) << ok.error();
    EXPECT_EQ(ok->length, 3 * k4K);
    EXPECT_EQ(f.domain->mappings_in_use(), 3u);
    EXPECT_EQ(f.domain->mapping_count(), 1u);
    // Contiguous for the device, scattered for the CPU.
    EXPECT_EQ(*f.backend->translate(ok->iova + k4K, 1, Access::read), mem.page(4));
    EXPECT_EQ(*f.backend->translate(ok->iova + 2 * k4K, 1, Access::read), mem.page(2));
    EXPECT_EQ(f.domain->find_iova(mem.page(4) + 1), ok->iova + k4K + 1);
    ASSERT_TRUE(f.domain->unmap(ok->iova).ok());
    EXPECT_TRUE(f.backend->live().empty());
    EXPECT_EQ(f.domain->free_iova_bytes(), free_before);
}

TEST(IommuDomain, ScatteredNeedsWholePagesExceptTheLast) {
    Fixture f;
    Pages mem(2);
    const CpuSegment bad[] = {{mem.page(0), 100}, {mem.page(1), k4K}};
    EXPECT_EQ(f.domain->map_scattered(bad, Access::read).error().code(), EINVAL);
    const CpuSegment good[] = {{mem.page(0), k4K}, {mem.page(1), 100}};
    EXPECT_TRUE(f.domain->map_scattered(good, Access::read).ok());
}

TEST(IommuDomain, FailedUnmapKeepsTheMappingAndCanBeRetried) {
    Fixture f;
    Pages mem(1);
    auto m = f.domain->map(mem.page(0), k4K, Access::read);
    ASSERT_TRUE(m.ok());
    f.backend->fail_next_unmap(Error(EIO, "injected"));
    EXPECT_FALSE(f.domain->unmap(m->iova).ok());
    EXPECT_EQ(f.domain->mappings_in_use(), 1u);
    EXPECT_TRUE(f.domain->unmap(m->iova).ok());
    EXPECT_EQ(f.domain->mappings_in_use(), 0u);
}

// The backend dies with the domain, so its unmaps are counted from outside.
struct CountingBackend final : TestIommuBackend {
    explicit CountingBackend(int* unmaps) : unmaps_(unmaps) {}
    Status unmap(std::uint64_t iova, std::uint64_t length) override {
        ++*unmaps_;
        return TestIommuBackend::unmap(iova, length);
    }
    int* unmaps_;
};

TEST(IommuDomain, DestructionUnmapsEverything) {
    using Counting = CountingBackend;
    int unmaps = 0;
    Pages mem(3);
    {
        auto domain = IommuDomain::create(std::make_unique<Counting>(&unmaps));
        ASSERT_TRUE(domain.ok());
        for (std::size_t i = 0; i < 3; ++i) {
            ASSERT_TRUE((*domain)->map(mem.page(i), k4K, Access::read).ok());
        }
    }
    EXPECT_EQ(unmaps, 3);
}

TEST(IommuDomain, MappingsTheKernelDroppedAreForgottenNotUnmapped) {
    // After a hot unplug released the domain's device, the kernel has dropped
    // every mapping: unmap and destruction only keep the books.
    int unmaps = 0;
    Pages mem(3);
    {
        auto domain = IommuDomain::create(std::make_unique<CountingBackend>(&unmaps));
        ASSERT_TRUE(domain.ok());
        std::vector<std::uint64_t> iovas;
        for (std::size_t i = 0; i < 3; ++i) {
            auto m = (*domain)->map(mem.page(i), k4K, Access::read);
            ASSERT_TRUE(m.ok());
            iovas.push_back(m->iova);
        }
        ASSERT_TRUE((*domain)->unmap(iovas[0]).ok());
        EXPECT_EQ(unmaps, 1);
        (*domain)->forget_backend_mappings();
        EXPECT_TRUE((*domain)->unmap(iovas[1]).ok());
        EXPECT_EQ((*domain)->mapping_count(), 1u);
        EXPECT_EQ(unmaps, 1) << "no backend call after the kernel dropped the mappings";
        // A second unmap of the same address is still refused: the books stay honest.
        EXPECT_EQ((*domain)->unmap(iovas[1]).error().code(), EINVAL);
    }
    EXPECT_EQ(unmaps, 1) << "destruction made no backend call either";
}

TEST(IommuDomain, TwoDomainsAreIndependent) {
    Fixture a;
    TestBackendConfig small;
    small.usable_ranges = {{0x100000, 0x1fffff}};
    small.budget = 1;
    Fixture b(small);
    Pages mem(2);
    auto ma = a.domain->map(mem.page(0), k4K, Access::read);
    auto mb = b.domain->map(mem.page(0), k4K, Access::read);  // same memory, both domains
    ASSERT_TRUE(ma.ok());
    ASSERT_TRUE(mb.ok());
    EXPECT_GE(mb->iova, 0x100000u);
    EXPECT_LE(mb->iova, 0x1fffffu);
    EXPECT_FALSE(b.domain->map(mem.page(1), k4K, Access::read).ok()) << "b's budget is 1";
    EXPECT_TRUE(a.domain->map(mem.page(1), k4K, Access::read).ok()) << "a is unaffected";
    EXPECT_EQ(a.backend->live().size(), 2u);
    EXPECT_EQ(b.backend->live().size(), 1u);
    EXPECT_EQ(a.domain->unmap(mb->iova == ma->iova ? ~0ull : mb->iova).ok(), false);
    ASSERT_TRUE(b.domain->unmap(mb->iova).ok());
    EXPECT_EQ(a.backend->live().size(), 2u);
}

TEST(IommuDomain, RefreshAppliesShrunkRangesAndBudget) {
    TestBackendConfig config;
    config.usable_ranges = {{0, 0xffffffff}};
    config.budget = 10;
    Fixture f(config);
    Pages mem(1);
    auto m = f.domain->map(mem.page(0), k4K, Access::read, {.dma_mask = 0xfffff});
    ASSERT_TRUE(m.ok());
    // A new group reserves 0xfee00000-0xfeefffff, and someone else mapped 3.
    f.backend->set_usable_ranges({{0, 0xfedfffff}, {0xfef00000, 0xffffffff}});
    f.backend->set_budget(7);
    ASSERT_TRUE(f.domain->refresh().ok());
    EXPECT_EQ(f.domain->mapping_budget(), 7u);
    ASSERT_EQ(f.domain->usable_ranges().size(), 2u);
    EXPECT_EQ(f.domain->usable_ranges()[0].last, 0xfedfffffu);
    // Shrinking under a live mapping is refused.
    f.backend->set_usable_ranges({{0x200000, 0xfedfffff}});
    auto refused = f.domain->refresh();
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), EBUSY);
}

TEST(IommuDomain, CreateReportsBackendErrors) {
    auto backend = std::make_unique<TestIommuBackend>();
    backend->fail_query(Error(ENODEV, "no IOMMU"));
    auto d = IommuDomain::create(std::move(backend));
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code(), ENODEV);
    EXPECT_FALSE(IommuDomain::create(nullptr).ok());
    TestBackendConfig no_pages;
    no_pages.page_sizes = 0;
    EXPECT_FALSE(IommuDomain::create(std::make_unique<TestIommuBackend>(no_pages)).ok());
}

TEST(IommuDomain, FreedSmallBlocksAreReusedAndGivenBackWhenSpaceRunsShort) {
    // 1 MiB of IOVA space in all.
    TestBackendConfig config;
    config.usable_ranges = {{0x100000, 0x1fffff}};
    Fixture f(config);
    Pages mem(1);
    auto first = f.domain->map(mem.page(0), k4K, Access::read);
    ASSERT_TRUE(first.ok());
    ASSERT_TRUE(f.domain->unmap(first->iova).ok());
    auto again = f.domain->map(mem.page(0), k4K, Access::read);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->iova, first->iova) << "the freed block is reused first";
    EXPECT_EQ(f.domain->free_iova_bytes(), 0x100000 - k4K) << "cached blocks count as free";
    // Fill the space with 4 KiB maps, free them all (they sit in the cache,
    // up to its depth), then ask for the whole 1 MiB: the cache must give
    // its blocks back to the allocator for that to fit.
    std::vector<std::uint64_t> iovas{again->iova};
    for (;;) {
        auto m = f.domain->map(mem.page(0), k4K, Access::read);
        if (!m.ok()) {
            EXPECT_EQ(m.error().code(), ENOMEM);
            break;
        }
        iovas.push_back(m->iova);
    }
    EXPECT_EQ(iovas.size(), 256u);
    for (std::uint64_t iova : iovas) ASSERT_TRUE(f.domain->unmap(iova).ok());
    EXPECT_EQ(f.domain->free_iova_bytes(), 0x100000u);
    Pages big(256);
    auto whole = f.domain->map(big.page(0), 0x100000, Access::read_write);
    ASSERT_TRUE(whole.ok()) << whole.error();
    EXPECT_EQ(whole->iova, 0x100000u);
}

TEST(IommuDomain, MapLargerThanAnyIovaBlockIsRefused) {
    TestBackendConfig config;
    config.usable_ranges = {{0x1000, ~std::uint64_t{0}}};
    Fixture f(config);
    Pages mem(1);
    auto huge = f.domain->map(mem.page(0), (std::uint64_t{1} << 63) + k4K, Access::read);
    ASSERT_FALSE(huge.ok());
    EXPECT_EQ(f.domain->mapping_count(), 0u);
    EXPECT_TRUE(f.backend->operations().empty()) << "refused before the backend was asked";
}

}  // namespace domain_test
}  // namespace dmakit::iommu
