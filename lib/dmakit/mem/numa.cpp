#include <dmakit/mem/numa.hpp>

#include <dmakit/support/number_text.hpp>
#include <dmakit/support/text_file.hpp>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <sys/syscall.h>
#include <unistd.h>

namespace dmakit::mem {

Result<NumaTopology> NumaTopology::from_list(std::string_view list) {
    const std::string quoted = "NUMA node list '" + std::string(list) + "'";
    std::vector<int> nodes;
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        const std::string_view item = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        const std::size_t dash = item.find('-');
        const auto first = parse_integer<int>(item.substr(0, dash));
        const auto last = dash == std::string_view::npos ? first : parse_integer<int>(item.substr(dash + 1));
        if (!first || !last || *first < 0 || *last < *first) {
            return Error(EINVAL, quoted + ": '" + std::string(item) + "' is not a node or a range a-b");
        }
        if (*last >= kMaxNumaNodes) {
            return Error(EINVAL, quoted + ": node " + std::to_string(*last) + " is past the " +
                                     std::to_string(kMaxNumaNodes) + " nodes dmakit supports");
        }
        for (int node = *first; node <= *last; ++node) nodes.push_back(node);
    }
    if (nodes.empty()) return Error(EINVAL, quoted + " names no node");
    std::sort(nodes.begin(), nodes.end());
    nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    return NumaTopology(std::move(nodes));
}

Result<NumaTopology> NumaTopology::from_sysfs(const std::string& sysfs_root) {
    const std::string path = sysfs_root + "/devices/system/node/online";
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return NumaTopology();
    DMAKIT_ASSIGN_OR_RETURN(std::string text, read_trimmed(path));
    auto topology = from_list(text);
    if (!topology.ok()) return std::move(topology).error().with_context(path);
    return topology;
}

bool NumaTopology::has_node(int node) const noexcept {
    return std::binary_search(nodes_.begin(), nodes_.end(), node);
}

Status NumaTopology::check_node(int node, std::string_view who) const {
    if (node == -1 || has_node(node)) return {};
    return Error(EINVAL, std::string(who) + ": NUMA node " + std::to_string(node) +
                             " does not exist; this machine has node(s) " + to_string() +
                             " (pass -1 for no preference)");
}

std::string NumaTopology::to_string() const {
    std::string text;
    for (std::size_t i = 0; i < nodes_.size();) {
        std::size_t j = i;
        while (j + 1 < nodes_.size() && nodes_[j + 1] == nodes_[j] + 1) ++j;
        if (!text.empty()) text += ',';
        text += std::to_string(nodes_[i]);
        if (j > i) text += '-' + std::to_string(nodes_[j]);
        i = j + 1;
    }
    return text;
}

Status bind_to_node(void* address, std::size_t length, int node) {
    if (node < 0 || node >= kMaxNumaNodes) {
        return Error(EINVAL, "NUMA node " + std::to_string(node) + " is out of range 0.." +
                                 std::to_string(kMaxNumaNodes - 1));
    }
    // The raw system call (as libnuma's mbind is): one word of node mask.
    constexpr long kMpolBind = 2;  // MPOL_BIND, include/uapi/linux/mempolicy.h
    const unsigned long mask = 1UL << node;
    if (::syscall(SYS_mbind, address, length, kMpolBind, &mask, sizeof mask * 8, 0) != 0) {
        return system_error(errno, "binding " + std::to_string(length >> 10) +
                                       " KiB to NUMA node " + std::to_string(node),
                            "check that the node exists and has memory: cat "
                            "/sys/devices/system/node/node" + std::to_string(node) + "/meminfo");
    }
    return {};
}

}  // namespace dmakit::mem
