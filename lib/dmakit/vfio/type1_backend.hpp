// Type1Backend: the IOMMU backend of a VFIO container using the type1v2 IOMMU
// model (drivers/vfio/vfio_iommu_type1.c).
//
//  - query(): VFIO_IOMMU_GET_INFO with its capability chain: the page sizes,
//    VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE (usable ranges, reserved regions of
//    every attached group removed) and VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL (how
//    many more mappings the kernel allows: dma_entry_limit, 65535 by default,
//    minus the live ones).
//  - map(): VFIO_IOMMU_MAP_DMA. The kernel pins the pages (counted against
//    RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK) and fills the IOMMU
//    page tables; each call is one entry of the budget.
//  - unmap(): VFIO_IOMMU_UNMAP_DMA; type1v2 only unmaps whole earlier
//    mappings, which is how IommuDomain uses it.
#pragma once

#include <dmakit/iommu/backend.hpp>
#include <dmakit/iommu/domain.hpp>
#include <dmakit/support/result.hpp>
#include <dmakit/support/unique_fd.hpp>
#include <dmakit/vfio/container.hpp>
#include <dmakit/vfio/info.hpp>

#include <memory>

namespace dmakit::vfio {

class Type1Backend final : public iommu::IommuBackend {
public:
    // The container must have a group attached (so its IOMMU is set).
    // Keeps a duplicate of the container fd: the backend stays valid on its own.
    [[nodiscard]] static Result<std::unique_ptr<Type1Backend>> create(const Container& container);

    [[nodiscard]] std::string name() const override { return "vfio-type1"; }
    [[nodiscard]] Result<iommu::IommuCapabilities> query() override;
    [[nodiscard]] Status map(std::uint64_t iova, const void* cpu, std::uint64_t length,
                             iommu::Access access) override;
    [[nodiscard]] Status unmap(std::uint64_t iova, std::uint64_t length) override;
    [[nodiscard]] iommu::BudgetDescription budget_description() const override;

    // The raw VFIO_IOMMU_GET_INFO reply, parsed (for tools and tests).
    [[nodiscard]] Result<Type1Info> info() const;

private:
    explicit Type1Backend(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

// Type1Backend::create + IommuDomain::create: the usual way to get the
// domain of a container after attaching its groups.
[[nodiscard]] Result<std::unique_ptr<iommu::IommuDomain>> create_type1_domain(
    const Container& container, iommu::DomainConfig config = {});

}  // namespace dmakit::vfio
