// HugepageSource: regions backed by 2 MiB or 1 GiB hugepages.
//
// Memory comes from memfd_create(MFD_HUGETLB) mapped MAP_SHARED: the kernel
// reserves the hugepages at mmap time, so a shortage is a clean ENOMEM here
// instead of a SIGBUS later. Pages are bound to a NUMA node (mbind; the
// options' node, or the one the allocator asks for), pre-faulted and locked. When the pool cannot supply a
// region and fallback is allowed, the region comes from 4 KiB anonymous
// memory instead and the source says once, through the Logger, how to
// reserve hugepages.
#pragma once

#include <dmakit/mem/anonymous_source.hpp>
#include <dmakit/mem/page_source.hpp>

#include <cstddef>
#include <string>

namespace dmakit {
class Logger;
}

namespace dmakit::mem {

struct HugepageSourceOptions {
    std::size_t page_size = std::size_t{2} << 20;  // 2 MiB or 1 GiB
    int numa_node = -1;                           // -1: no binding
    bool allow_fallback = true;                   // 4 KiB pages when short
    const Logger* logger = nullptr;               // null: silent
    // Where the pool counters are read (tests point this at a fake tree).
    std::string sysfs_dir = "/sys/kernel/mm/hugepages";
};

// Free/total hugepages of one size, from sysfs_dir, or from the node's own
// counters under /sys/devices/system/node when numa_node >= 0.
struct HugepagePool {
    std::size_t page_size = 0;
    std::size_t total = 0;
    std::size_t free = 0;
};
[[nodiscard]] Result<HugepagePool> read_hugepage_pool(
    std::size_t page_size, int numa_node = -1,
    const std::string& sysfs_dir = "/sys/kernel/mm/hugepages");

class HugepageSource final : public PageSource {
public:
    // Fails with EINVAL for a page size other than 2 MiB or 1 GiB.
    [[nodiscard]] static Result<HugepageSource> create(HugepageSourceOptions options = {});

    [[nodiscard]] Result<RegionBacking> map(void* address, std::size_t length) override;
    // `node` -1 means options.numa_node. The 4 KiB fallback is bound too.
    [[nodiscard]] Result<RegionBacking> map_on_node(void* address, std::size_t length,
                                                    int node) override;
    [[nodiscard]] std::size_t alignment() const noexcept override { return options_.page_size; }
    [[nodiscard]] std::string_view name() const noexcept override { return name_; }

    // How many regions had to fall back to 4 KiB pages so far.
    [[nodiscard]] std::size_t fallback_regions() const noexcept { return fallback_regions_; }

private:
    explicit HugepageSource(HugepageSourceOptions options);
    [[nodiscard]] Result<RegionBacking> map_hugepages(void* address, std::size_t length, int node);

    HugepageSourceOptions options_;
    std::string name_;
    AnonymousSource fallback_;
    bool warned_fallback_ = false;
    std::size_t fallback_regions_ = 0;
};

}  // namespace dmakit::mem
