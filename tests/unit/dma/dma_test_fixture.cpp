#include "dma_test_fixture.hpp"

#include <dmakit/mem/anonymous_source.hpp>

#include <algorithm>

namespace dmakit::dma::testing {

void DmaTest::make_context(TestContextOptions options) {
    device_.reset();
    context_.reset();
    auto backend = std::make_unique<iommu::TestIommuBackend>(options.backend);
    backend_ = backend.get();
    auto domain = iommu::IommuDomain::create(std::move(backend), options.domain);
    ASSERT_TRUE(domain.ok()) << domain.error();
    options.context.logger = &log_.logger;
    if (options.context.pages.region_size == (std::size_t{64} << 20)) {
        options.context.pages.region_size = std::size_t{4} << 20;  // keep tests light
    }
    std::unique_ptr<mem::PageSource> source =
        options.source ? options.source() : std::make_unique<mem::AnonymousSource>();
    auto context = DmaContext::create(std::move(domain).value(), std::move(source), options.context);
    ASSERT_TRUE(context.ok()) << context.error();
    context_ = std::move(context).value();
    device_ = std::make_unique<DmaDevice>(*context_, "0000:00:04.0");
}

void* DmaTest::device_view(DmaAddr addr, std::size_t length, iommu::Access access) const {
    auto cpu = backend_->translate(addr.value(), length, access);
    return cpu ? *cpu : nullptr;
}

bool DmaTest::device_can_read(DmaAddr addr, std::size_t length) const {
    return backend_->translate(addr.value(), length, iommu::Access::read).has_value();
}

bool DmaTest::device_can_write(DmaAddr addr, std::size_t length) const {
    return backend_->translate(addr.value(), length, iommu::Access::write).has_value();
}

std::size_t DmaTest::backend_maps() const {
    return static_cast<std::size_t>(std::count_if(
        backend_->operations().begin(), backend_->operations().end(), [](const auto& op) {
            return op.kind == iommu::TestIommuBackend::Operation::Kind::map && op.ok;
        }));
}

std::size_t DmaTest::backend_unmaps() const {
    return static_cast<std::size_t>(std::count_if(
        backend_->operations().begin(), backend_->operations().end(), [](const auto& op) {
            return op.kind == iommu::TestIommuBackend::Operation::Kind::unmap && op.ok;
        }));
}

}  // namespace dmakit::dma::testing
