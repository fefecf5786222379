#include <dmakit/mem/hugepage_source.hpp>

#include <dmakit/config.hpp>
#include <dmakit/mem/numa.hpp>
#include <dmakit/mem/page.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/support/text_file.hpp>
#include <dmakit/support/unique_fd.hpp>

#include <cerrno>
#include <charconv>
#include <string>
#include <sys/mman.h>
#include <unistd.h>


#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif
#ifndef MFD_HUGE_1GB
#define MFD_HUGE_1GB (30U << 26)
#endif

namespace dmakit::mem {
namespace {

std::string size_name(std::size_t bytes) {
    if (bytes >= kHugePage1G && bytes % kHugePage1G == 0) return std::to_string(bytes >> 30) + " GiB";
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
    return std::to_string(bytes >> 10) + " KiB";
}

std::string reserve_hint(std::size_t page_size, std::size_t pages) {
    if (page_size == kHugePage1G) {
        return "reserve 1 GiB pages at boot (hugepagesz=1G hugepages=" + std::to_string(pages) +
               ") or: echo " + std::to_string(pages) +
               " > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";
    }
    return "reserve hugepages: dmakit hugepages --reserve " + std::to_string(pages) +
           " (or echo " + std::to_string(pages) + " > /proc/sys/vm/nr_hugepages)";
}

Result<std::size_t> read_count(const std::string& path) {
    DMAKIT_ASSIGN_OR_RETURN(std::string text, read_trimmed(path));
    std::size_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        return Error(EINVAL, path + ": not a number: '" + text + "'");
    }
    return value;
}

}  // namespace

Result<HugepagePool> read_hugepage_pool(std::size_t page_size, int numa_node,
                                        const std::string& sysfs_dir) {
    const std::string leaf = "hugepages-" + std::to_string(page_size >> 10) + "kB";
    const std::string dir = numa_node >= 0
                                ? "/sys/devices/system/node/node" + std::to_string(numa_node) +
                                      "/hugepages/" + leaf
                                : sysfs_dir + "/" + leaf;
    HugepagePool pool;
    pool.page_size = page_size;
    DMAKIT_ASSIGN_OR_RETURN(pool.total, read_count(dir + "/nr_hugepages"));
    DMAKIT_ASSIGN_OR_RETURN(pool.free, read_count(dir + "/free_hugepages"));
    return pool;
}

Result<HugepageSource> HugepageSource::create(HugepageSourceOptions options) {
    if (options.page_size != kHugePage2M && options.page_size != kHugePage1G) {
        return Error(EINVAL, "hugepage size " + std::to_string(options.page_size) +
                                 " is not supported; use 2 MiB or 1 GiB");
    }
    if (options.numa_node < -1 || options.numa_node >= kMaxNumaNodes) {
        return Error(EINVAL, "NUMA node " + std::to_string(options.numa_node) +
                                 " is out of range; pass -1 (no binding) or 0.." +
                                 std::to_string(kMaxNumaNodes - 1));
    }
    return HugepageSource(options);
}

HugepageSource::HugepageSource(HugepageSourceOptions options)
    : options_(options),
      name_("hugetlb-" + size_name(options.page_size)),
      fallback_(AnonymousSourceOptions{true, true, options.logger}) {}

Result<RegionBacking> HugepageSource::map(void* address, std::size_t length) {
    return map_on_node(address, length, -1);
}

Result<RegionBacking> HugepageSource::map_on_node(void* address, std::size_t length, int node) {
    if (node < 0) node = options_.numa_node;
    auto mapped = map_hugepages(address, length, node);
    if (mapped.ok() || !options_.allow_fallback || mapped.error().code() != ENOMEM) {
        return mapped;
    }
    ++fallback_regions_;
    if (!warned_fallback_) {
        warned_fallback_ = true;
        if (options_.logger != nullptr) {
            options_.logger->warning(
                "no " + size_name(options_.page_size) + " hugepages for a " + size_name(length) +
                " region (" + dmakit::to_string(mapped.error()) +
                "); falling back to 4 KiB pages, which is slower (more TLB misses and IOMMU "
                "entries). To use hugepages, " +
                reserve_hint(options_.page_size, 2 * (length / options_.page_size)));
        }
    }
    return fallback_.map_on_node(address, length, node);
}

Result<RegionBacking> HugepageSource::map_hugepages(void* address, std::size_t length, int node) {
    const std::size_t pages = length / options_.page_size;
    if (length == 0 || length % options_.page_size != 0) {
        return Error(EINVAL, "region length " + std::to_string(length) +
                                 " is not a multiple of the hugepage size " +
                                 size_name(options_.page_size));
    }
    // Say why before trying: the kernel's ENOMEM does not tell the user what to do.
    auto pool = read_hugepage_pool(options_.page_size, node, options_.sysfs_dir);
    if (!pool.ok()) {
        return Error(ENOMEM, size_name(options_.page_size) + " hugepages are not available (" +
                                 pool.error().message() + ")");
    }
    if (pool->free < pages) {
        return Error(ENOMEM, "a " + size_name(length) + " region needs " + std::to_string(pages) +
                                 " free " + size_name(options_.page_size) + " hugepages, " +
                                 std::to_string(pool->free) + " of " +
                                 std::to_string(pool->total) + " are free; " +
                                 reserve_hint(options_.page_size, pool->total + pages - pool->free));
    }

    const unsigned size_flag = options_.page_size == kHugePage1G ? MFD_HUGE_1GB : MFD_HUGE_2MB;
    UniqueFd fd(::memfd_create("dmakit-region", MFD_CLOEXEC | MFD_HUGETLB | size_flag));
    if (!fd) return system_error(errno, "memfd_create(MFD_HUGETLB)");
    if (::ftruncate(fd.get(), static_cast<off_t>(length)) != 0) {
        return system_error(errno, "sizing a hugetlb memfd to " + size_name(length));
    }

    const bool bind_node = node >= 0;
    // With a node binding the pages must be faulted after mbind(), so no MAP_POPULATE.
    const int flags = MAP_SHARED | MAP_FIXED | (bind_node ? 0 : MAP_POPULATE);
    void* p = ::mmap(address, length, PROT_READ | PROT_WRITE, flags, fd.get(), 0);
    if (p == MAP_FAILED) {
        const int err = errno;
        (void)reset_to_reservation(address, length);
        return system_error(err, "mapping " + std::to_string(pages) + " " +
                                     size_name(options_.page_size) + " hugepages",
                            reserve_hint(options_.page_size, pages));
    }
    if (bind_node) {
        if (auto bound = bind_to_node(address, length, node); !bound.ok()) {
            (void)reset_to_reservation(address, length);
            return std::move(bound).error();
        }
        // Pre-fault: one write per hugepage now rather than on a hot path.
        auto* bytes = static_cast<volatile unsigned char*>(address);
        for (std::size_t off = 0; off < length; off += options_.page_size) bytes[off] = 0;
    }
    RegionBacking backing{options_.page_size, options_.page_size, node, false};
    backing.locked = ::mlock(address, length) == 0;  // hugetlb pages never swap anyway
    return backing;
}

}  // namespace dmakit::mem
