// Hugepage pools as sysfs shows them (Documentation/admin-guide/mm/hugetlbpage.rst):
//   ROOT/kernel/mm/hugepages/hugepages-<KB>kB/{nr,free,resv,surplus}_hugepages
//   ROOT/devices/system/node/node<N>/hugepages/hugepages-<KB>kB/{nr,free,surplus}_hugepages
#pragma once

#include <dmakit/support/result.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dmakit::tool {

struct NodeHugepages {
    int node = 0;
    std::uint64_t total = 0;
    std::uint64_t free = 0;
    std::uint64_t surplus = 0;
};

struct HugepagePool {
    std::uint64_t size_kb = 0;
    std::uint64_t total = 0;     // nr_hugepages
    std::uint64_t free = 0;      // free_hugepages
    std::uint64_t reserved = 0;  // resv_hugepages: promised to mappings, not yet faulted
    std::uint64_t surplus = 0;   // surplus_hugepages: overcommitted beyond nr_hugepages
    std::vector<NodeHugepages> nodes;
};

// "2M" -> 2048, "1G" -> 1048576; nullopt for anything else.
[[nodiscard]] std::optional<std::uint64_t> parse_hugepage_size(std::string_view text);
// 2048 -> "2M", 1048576 -> "1G", otherwise "<n>K".
[[nodiscard]] std::string format_hugepage_size(std::uint64_t size_kb);

// The one-line complaint when the kernel holds `got` of `wanted` pages and
// the pool went back to `restored`.
[[nodiscard]] std::string shortfall_message(std::uint64_t size_kb, std::optional<int> node,
                                            std::uint64_t wanted, std::uint64_t got, std::uint64_t restored);

// What a reservation may take: MemAvailable (PROC/meminfo) less what the
// system keeps, max(MemTotal / 16, 128 MiB), so that a typo such as
// --reserve 18446744073709551615 cannot starve the machine.
struct MemoryBudget {
    std::uint64_t total_kb = 0;
    std::uint64_t available_kb = 0;
    [[nodiscard]] std::uint64_t kept_kb() const noexcept;
    [[nodiscard]] std::uint64_t spare_kb() const noexcept;
};
[[nodiscard]] Result<MemoryBudget> read_memory_budget(const std::string& proc_root);

class HugepageSysfs {
public:
    // Writes one sysfs attribute; tests replace it to play a kernel that
    // grants fewer pages than asked.
    using AttributeWriter = std::function<Status(const std::string& path, std::string_view value)>;

    explicit HugepageSysfs(std::string root = "/sys", std::string proc_root = "/proc");
    HugepageSysfs(std::string root, std::string proc_root, AttributeWriter writer)
        : root_(std::move(root)), proc_root_(std::move(proc_root)), writer_(std::move(writer)) {}

    // Every pool the kernel offers, smallest page size first, with per-node counts.
    [[nodiscard]] Result<std::vector<HugepagePool>> read() const;

    // Sets the pool of `size_kb` pages (on `node`, or system-wide) to `count`
    // pages and returns how many the kernel holds afterwards. Refuses (ENOMEM,
    // naming the maximum) to grow the pool beyond MemoryBudget::spare_kb();
    // when the kernel gives fewer pages than asked (memory short or
    // fragmented) it puts the old count back and fails (ENOMEM) saying how
    // many the kernel gave.
    [[nodiscard]] Result<std::uint64_t> reserve(std::uint64_t size_kb, std::optional<int> node,
                                                std::uint64_t count) const;

private:
    [[nodiscard]] std::string pool_dir(std::uint64_t size_kb, std::optional<int> node) const;
    std::string root_;
    std::string proc_root_;
    AttributeWriter writer_;
};

}  // namespace dmakit::tool
