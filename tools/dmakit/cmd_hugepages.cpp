// dmakit hugepages: show the hugepage pools per size and NUMA node, and reserve pages.
#include "cli.hpp"
#include "hugepages.hpp"
#include <dmakit/support/json_writer.hpp>
#include "table.hpp"

#include <dmakit/support/number_text.hpp>

#include <cstdint>

namespace dmakit::tool {
namespace {

constexpr std::string_view hugepages_help =
    "usage: dmakit hugepages [--reserve N] [--size 2M|1G] [--node N] [--json]\n"
    "\n"
    "Show total, free, reserved and surplus hugepages per page size, and per\n"
    "NUMA node. --size and --node narrow what is shown.\n"
    "\n"
    "  --reserve N   set the pool to N pages (default size 2M; system-wide, or on\n"
    "                the node given with --node); needs root. Refuses more than\n"
    "                MemAvailable less max(MemTotal/16, 128 MiB), naming the most\n"
    "                it allows; if the kernel gives fewer pages than asked, puts\n"
    "                the old count back and says how many it gave\n"
    "  --size S      page size: 2M or 1G\n"
    "  --node N      NUMA node (0..1023)\n"
    "  --json        print JSON instead of a table\n";

void print_json(const std::vector<HugepagePool>& pools, std::ostream& out) {
    JsonWriter json(out);
    json.begin_array();
    for (const auto& pool : pools) {
        json.begin_object();
        json.key("size").value(format_hugepage_size(pool.size_kb));
        json.key("size_kb").value(pool.size_kb);
        json.key("total").value(pool.total);
        json.key("free").value(pool.free);
        json.key("reserved").value(pool.reserved);
        json.key("surplus").value(pool.surplus);
        json.key("nodes").begin_array();
        for (const auto& node : pool.nodes) {
            json.begin_object();
            json.key("node").value(node.node);
            json.key("total").value(node.total);
            json.key("free").value(node.free);
            json.key("surplus").value(node.surplus);
            json.end_object();
        }
        json.end_array();
        json.end_object();
    }
    json.end_array();
}

void print_table(const std::vector<HugepagePool>& pools, std::ostream& out) {
    // resv_hugepages is kept system-wide only, hence '-' on node rows.
    Table table({"SIZE", "NODE", "TOTAL", "FREE", "RESERVED", "SURPLUS"});
    for (const auto& pool : pools) {
        const std::string size = format_hugepage_size(pool.size_kb);
        table.add_row({size, "all", std::to_string(pool.total), std::to_string(pool.free),
                       std::to_string(pool.reserved), std::to_string(pool.surplus)});
        for (const auto& node : pool.nodes) {
            table.add_row({size, std::to_string(node.node), std::to_string(node.total),
                           std::to_string(node.free), "-", std::to_string(node.surplus)});
        }
    }
    table.print(out);
}

// Keeps the pools of `size_kb` (if given) and, within them, `node` (if given).
std::vector<HugepagePool> select(std::vector<HugepagePool> pools, std::optional<std::uint64_t> size_kb,
                                 std::optional<int> node) {
    std::vector<HugepagePool> kept;
    for (auto& pool : pools) {
        if (size_kb && pool.size_kb != *size_kb) continue;
        if (node) {
            std::erase_if(pool.nodes, [&](const NodeHugepages& n) { return n.node != *node; });
        }
        kept.push_back(std::move(pool));
    }
    return kept;
}

}  // namespace

int run_hugepages(const GlobalOptions& options, ArgReader args, const Io& io) {
    constexpr std::string_view command = "hugepages";
    std::optional<std::uint64_t> reserve;
    std::optional<std::uint64_t> size_kb;
    std::optional<int> node;
    bool json = false;
    while (!args.done()) {
        std::string value;
        std::string error;
        if (args.help()) {
            io.out << hugepages_help;
            return exit_ok;
        }
        if (args.flag("--json")) {
            json = true;
        } else if (args.option("--reserve", value, error)) {
            if (!error.empty()) return usage_error(io, error, command);
            auto count = parse_option_number<std::uint64_t>("--reserve", value, 0, UINT64_MAX);
            if (!count.ok()) return usage_error(io, count.error().message(), command);
            reserve = *count;
        } else if (args.option("--size", value, error)) {
            if (!error.empty()) return usage_error(io, error, command);
            size_kb = parse_hugepage_size(value);
            if (!size_kb) return usage_error(io, "--size wants 2M or 1G, not '" + value + "'", command);
        } else if (args.option("--node", value, error)) {
            if (!error.empty()) return usage_error(io, error, command);
            // MAX_NUMNODES is at most 1 << 10 (CONFIG_NODES_SHIFT <= 10).
            auto number = parse_option_number<int>("--node", value, 0, 1023);
            if (!number.ok()) return usage_error(io, number.error().message(), command);
            node = *number;
        } else {
            return usage_error(io, "unexpected argument '" + args.peek() + "' for hugepages", command);
        }
    }

    HugepageSysfs sysfs(options.sysfs_root, options.proc_root);
    if (reserve) {
        auto got = sysfs.reserve(size_kb.value_or(2048), node, *reserve);
        if (!got.ok()) return fail(io, got.error());
    }

    auto pools = sysfs.read();
    if (!pools.ok()) return fail(io, pools.error());
    auto shown = select(std::move(*pools), size_kb, node);
    if (json) {
        print_json(shown, io.out);
    } else {
        print_table(shown, io.out);
    }
    return exit_ok;
}

}  // namespace dmakit::tool
