#include "hugepages.hpp"

#include <dmakit/support/number_text.hpp>
#include <dmakit/support/text_file.hpp>

#include <algorithm>
#include <cerrno>
#include <filesystem>

namespace dmakit::tool {
namespace fs = std::filesystem;
namespace {

// "hugepages-2048kB" -> 2048
std::optional<std::uint64_t> size_from_dir_name(std::string_view name) {
    constexpr std::string_view prefix = "hugepages-";
    constexpr std::string_view suffix = "kB";
    if (!name.starts_with(prefix) || !name.ends_with(suffix)) return std::nullopt;
    name.remove_prefix(prefix.size());
    name.remove_suffix(suffix.size());
    return parse_integer<std::uint64_t>(name);
}

Result<std::uint64_t> read_count(const std::string& path) {
    DMAKIT_ASSIGN_OR_RETURN(std::string text, read_trimmed(path));
    auto value = parse_integer<std::uint64_t>(text);
    if (!value) return Error(EIO, "unexpected content '" + text + "' in " + path);
    return *value;
}

}  // namespace

std::optional<std::uint64_t> parse_hugepage_size(std::string_view text) {
    if (text == "2M" || text == "2m" || text == "2MB") return 2048;
    if (text == "1G" || text == "1g" || text == "1GB") return 1024 * 1024;
    return std::nullopt;
}

std::string format_hugepage_size(std::uint64_t size_kb) {
    if (size_kb % (1024 * 1024) == 0) return std::to_string(size_kb / (1024 * 1024)) + "G";
    if (size_kb % 1024 == 0) return std::to_string(size_kb / 1024) + "M";
    return std::to_string(size_kb) + "K";
}

std::string shortfall_message(std::uint64_t size_kb, std::optional<int> node,
                              std::uint64_t wanted, std::uint64_t got, std::uint64_t restored) {
    return "asked for " + std::to_string(wanted) + " " + format_hugepage_size(size_kb) +
           " hugepages" + (node ? " on node " + std::to_string(*node) : std::string()) +
           ", the kernel gave " + std::to_string(got) + "; put the pool back to " + std::to_string(restored) +
           " (memory is short or fragmented; ask for " + std::to_string(got) +
           " or fewer, free memory, or reserve at boot with hugepages=N on the kernel command line)";
}

std::uint64_t MemoryBudget::kept_kb() const noexcept {
    return std::max<std::uint64_t>(total_kb / 16, 128 * 1024);
}

std::uint64_t MemoryBudget::spare_kb() const noexcept {
    return available_kb > kept_kb() ? available_kb - kept_kb() : 0;
}

Result<MemoryBudget> read_memory_budget(const std::string& proc_root) {
    const std::string path = proc_root + "/meminfo";
    DMAKIT_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
    // proc(5): "MemTotal:       16318072 kB".
    auto field = [&](std::string_view name) -> std::optional<std::uint64_t> {
        const std::string key = std::string(name) + ":";
        const auto at = text.find(key);
        if (at == std::string::npos || (at != 0 && text[at - 1] != '\n')) return std::nullopt;
        std::string_view rest = std::string_view(text).substr(at + key.size());
        rest.remove_prefix(std::min(rest.find_first_not_of(' '), rest.size()));
        return parse_integer<std::uint64_t>(rest.substr(0, rest.find(' ')));
    };
    auto total = field("MemTotal");
    auto available = field("MemAvailable");
    if (!total || !available) return Error(EIO, "no MemTotal/MemAvailable in " + path + " (Linux 3.14 or later has them)");
    return MemoryBudget{*total, *available};
}

HugepageSysfs::HugepageSysfs(std::string root, std::string proc_root)
    : HugepageSysfs(std::move(root), std::move(proc_root), [](const std::string& path, std::string_view value) {
          return write_text_file(path, value);
      }) {}

std::string HugepageSysfs::pool_dir(std::uint64_t size_kb, std::optional<int> node) const {
    const std::string leaf = "/hugepages/hugepages-" + std::to_string(size_kb) + "kB";
    if (node) return root_ + "/devices/system/node/node" + std::to_string(*node) + leaf;
    return root_ + "/kernel/mm" + leaf;
}

Result<std::vector<HugepagePool>> HugepageSysfs::read() const {
    const std::string folder = root_ + "/kernel/mm/hugepages";
    std::error_code ec;
    fs::directory_iterator it(folder, ec);
    if (ec) {
        return system_error(ec.value(), "list " + folder,
                            "this kernel has no hugepage support (CONFIG_HUGETLBFS)");
    }
    std::vector<HugepagePool> pools;
    for (const auto& entry : it) {
        auto size = size_from_dir_name(entry.path().filename().string());
        if (!size) continue;
        HugepagePool pool;
        pool.size_kb = *size;
        const std::string dir = entry.path().string();
        DMAKIT_ASSIGN_OR_RETURN(pool.total, read_count(dir + "/nr_hugepages"));
        DMAKIT_ASSIGN_OR_RETURN(pool.free, read_count(dir + "/free_hugepages"));
        DMAKIT_ASSIGN_OR_RETURN(pool.reserved, read_count(dir + "/resv_hugepages"));
        DMAKIT_ASSIGN_OR_RETURN(pool.surplus, read_count(dir + "/surplus_hugepages"));
        pools.push_back(std::move(pool));
    }
    std::sort(pools.begin(), pools.end(),
              [](const auto& a, const auto& b) { return a.size_kb < b.size_kb; });

    // Per-node counts exist only on NUMA kernels; their absence is not an error.
    const std::string nodes = root_ + "/devices/system/node";
    fs::directory_iterator node_it(nodes, ec);
    if (ec) return pools;
    for (const auto& entry : node_it) {
        std::string name = entry.path().filename().string();
        if (!name.starts_with("node")) continue;
        auto node = parse_integer<int>(std::string_view(name).substr(4));
        if (!node) continue;
        for (auto& pool : pools) {
            const std::string dir = pool_dir(pool.size_kb, *node);
            if (!fs::exists(dir, ec)) continue;
            NodeHugepages counts;
            counts.node = *node;
            DMAKIT_ASSIGN_OR_RETURN(counts.total, read_count(dir + "/nr_hugepages"));
            DMAKIT_ASSIGN_OR_RETURN(counts.free, read_count(dir + "/free_hugepages"));
            DMAKIT_ASSIGN_OR_RETURN(counts.surplus, read_count(dir + "/surplus_hugepages"));
            pool.nodes.push_back(counts);
        }
    }
    for (auto& pool : pools) {
        std::sort(pool.nodes.begin(), pool.nodes.end(),
                  [](const auto& a, const auto& b) { return a.node < b.node; });
    }
    return pools;
}

Result<std::uint64_t> HugepageSysfs::reserve(std::uint64_t size_kb, std::optional<int> node,
                                             std::uint64_t count) const {
    const std::string dir = pool_dir(size_kb, node);
    std::error_code ec;
    if (!fs::exists(dir, ec)) {
        std::string what = format_hugepage_size(size_kb) + " hugepages are not available";
        if (node) what += " on NUMA node " + std::to_string(*node);
        return Error(ENOENT, what + " (no " + dir + ")" +
                                 (size_kb >= 1024 * 1024 ? "; 1G pages need a CPU with pdpe1gb" : ""));
    }
    const std::string count_path = dir + "/nr_hugepages";
    DMAKIT_ASSIGN_OR_RETURN(std::uint64_t before, read_count(count_path));
    if (count > before) {
        DMAKIT_ASSIGN_OR_RETURN(MemoryBudget budget, read_memory_budget(proc_root_));
        const std::uint64_t most = before + budget.spare_kb() / size_kb;
        if (count > most) {
            return Error(ENOMEM, "cannot reserve " + std::to_string(count) + " " + format_hugepage_size(size_kb) +
                                     " hugepages: this machine can spare at most " + std::to_string(most) +
                                     " (MemAvailable " + std::to_string(budget.available_kb / 1024) + " MiB, " +
                                     std::to_string(budget.kept_kb() / 1024) +
                                     " MiB kept for the system); ask for " + std::to_string(most) + " or fewer");
        }
    }
    // The kernel allocates as many pages as it can and keeps the write successful.
    DMAKIT_TRY(writer_(count_path, std::to_string(count)));
    DMAKIT_ASSIGN_OR_RETURN(std::uint64_t got, read_count(count_path));
    if (got >= count) return got;
    // Fewer than asked: a half-done reservation is not what was asked for.
    auto undone = writer_(count_path, std::to_string(before));
    if (!undone.ok()) {
        return Error(ENOMEM, "asked for " + std::to_string(count) + ", the kernel gave " + std::to_string(got) +
                                 " and putting the pool back to " + std::to_string(before) +
                                 " failed: " + undone.error().message());
    }
    DMAKIT_ASSIGN_OR_RETURN(std::uint64_t restored, read_count(count_path));
    return Error(ENOMEM, shortfall_message(size_kb, node, count, got, restored));
}

}  // namespace dmakit::tool
