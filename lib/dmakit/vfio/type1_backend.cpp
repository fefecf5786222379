#include <dmakit/vfio/type1_backend.hpp>

#include <dmakit/iommu/iova_allocator.hpp>
#include <dmakit/support/text_file.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/vfio.h>
#include <string>
#include <sys/ioctl.h>
#include <vector>

namespace dmakit::vfio {

using iommu::to_hex;

Result<std::unique_ptr<Type1Backend>> Type1Backend::create(const Container& container) {
    if (!container.iommu_ready()) {
        return Error(EINVAL, "the VFIO container has no IOMMU yet: attach a group first "
                             "(Container::attach_group_of)");
    }
    int dup = ::fcntl(container.fd(), F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return system_error(errno, "dup the VFIO container fd");
    return std::unique_ptr<Type1Backend>(new Type1Backend(UniqueFd(dup)));
}

Result<Type1Info> Type1Backend::info() const {
    // Two passes: when the capabilities do not fit, the kernel reports the
    // size they need in argsz and leaves cap_offset 0.
    std::vector<std::byte> buffer(sizeof(vfio_iommu_type1_info));
    for (int attempt = 0; attempt < 2; ++attempt) {
        vfio_iommu_type1_info head{};
        head.argsz = static_cast<std::uint32_t>(buffer.size());
        std::memcpy(buffer.data(), &head, sizeof head);
        if (::ioctl(fd_.get(), VFIO_IOMMU_GET_INFO, buffer.data()) != 0) {
            return system_error(errno, "VFIO_IOMMU_GET_INFO");
        }
        std::memcpy(&head, buffer.data(), sizeof head);
        if (head.argsz <= buffer.size()) break;
        buffer.assign(head.argsz, std::byte{0});
    }
    return parse_type1_info(buffer);
}

Result<iommu::IommuCapabilities> Type1Backend::query() {
    DMAKIT_ASSIGN_OR_RETURN(Type1Info info, this->info());
    iommu::IommuCapabilities caps;
    caps.page_sizes = info.iova_pgsizes;
    if (info.iova_ranges) {
        caps.usable_ranges = std::move(*info.iova_ranges);
    } else {
        // Kernels before 5.4 do not report ranges; everything is allowed as
        // far as VFIO is concerned (the hardware's width still applies).
        caps.usable_ranges = {{0, ~std::uint64_t{0}}};
    }
    if (info.dma_avail) caps.mappings_available = *info.dma_avail;
    return caps;
}

Status Type1Backend::map(std::uint64_t iova, const void* cpu, std::uint64_t length,
                         iommu::Access access) {
    vfio_iommu_type1_dma_map request{};
    request.argsz = sizeof request;
    request.flags = (iommu::allows_read(access) ? VFIO_DMA_MAP_FLAG_READ : 0U) |
                    (iommu::allows_write(access) ? VFIO_DMA_MAP_FLAG_WRITE : 0U);
    request.vaddr = reinterpret_cast<std::uintptr_t>(cpu);
    request.iova = iova;
    request.size = length;
    if (::ioctl(fd_.get(), VFIO_IOMMU_MAP_DMA, &request) == 0) return {};
    const int err = errno;
    const std::string what = "VFIO_IOMMU_MAP_DMA of " + std::to_string(length) + " bytes at IOVA " +
                             to_hex(iova);
    switch (err) {
        case ENOSPC: {
            // vfio_dma_do_map: no dma_avail left.
            // vfio_dma_do_map: dma_avail reached 0. The limit in force is
            // the module parameter read when the container was opened.
            auto words = budget_description();
            auto limit = read_trimmed("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit");
            const std::string count = limit.ok() ? *limit + " mappings, " : std::string();
            return Error(ENOSPC, "the IOMMU mapping budget (" + count + words.name +
                                     ") is used up; " + words.remedy);
        }
        case ENOMEM:
            return system_error(err, what, "pinning failed: the locked-memory limit "
                                           "(ulimit -l, RLIMIT_MEMLOCK) is too low; raise it, or "
                                           "run as root / with CAP_IPC_LOCK");
        case EEXIST:
            return system_error(err, what, "overlaps an existing mapping in this container");
        case EFAULT:
            return system_error(err, what, "the CPU range is not mapped memory of this process");
        default:
            return system_error(err, what);
    }
}

Status Type1Backend::unmap(std::uint64_t iova, std::uint64_t length) {
    vfio_iommu_type1_dma_unmap request{};
    request.argsz = sizeof request;
    request.iova = iova;
    request.size = length;
    if (::ioctl(fd_.get(), VFIO_IOMMU_UNMAP_DMA, &request) != 0) {
        return system_error(errno, "VFIO_IOMMU_UNMAP_DMA of " + std::to_string(length) +
                                       " bytes at IOVA " + to_hex(iova));
    }
    // The kernel writes back how much it unmapped.
    if (request.size != length) {
        return Error(EIO, "VFIO_IOMMU_UNMAP_DMA at IOVA " + to_hex(iova) + " unmapped " +
                              std::to_string(request.size) + " bytes, not " +
                              std::to_string(length));
    }
    return {};
}

iommu::BudgetDescription Type1Backend::budget_description() const {
    return {"vfio_iommu_type1 dma_entry_limit",
            "raise it with modprobe vfio_iommu_type1 dma_entry_limit=N (or write N to "
            "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit before opening the "
            "container), or map fewer, larger regions"};
}

Result<std::unique_ptr<iommu::IommuDomain>> create_type1_domain(const Container& container,
                                                                iommu::DomainConfig config) {
    DMAKIT_ASSIGN_OR_RETURN(auto backend, Type1Backend::create(container));
    return iommu::IommuDomain::create(std::move(backend), config);
}

}  // namespace dmakit::vfio
