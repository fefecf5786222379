// NumaTopology: the machine's NUMA nodes, as the kernel lists them in
// /sys/devices/system/node/online ("0-1,3"; Documentation/ABI/stable/
// sysfs-devices-node).
//
// The page allocator keeps free lists per node and refuses a node that does
// not exist; the DMA layer takes a device's node from sysfs (dev_to_node).
// The topology is injected (BuddyOptions::topology), so tests can give a
// one-node host a fake two-node machine.
#pragma once

#include <dmakit/support/result.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dmakit::mem {

// Nodes 0 .. kMaxNumaNodes - 1 have free lists of their own; the kernel's
// default MAX_NUMNODES on x86 distributions is far larger, real machines
// rarely have more than 8.
inline constexpr int kMaxNumaNodes = 16;

class NumaTopology {
public:
    // A machine without NUMA: node 0 only.
    NumaTopology() : nodes_{0} {}

    // Parses a node list such as "0", "0-1" or "0-1,3". EINVAL for anything
    // else, for nodes past kMaxNumaNodes - 1, or for an empty list.
    [[nodiscard]] static Result<NumaTopology> from_list(std::string_view list);
    // Reads ROOT/devices/system/node/online. A missing file (a kernel built
    // without CONFIG_NUMA) means one node.
    [[nodiscard]] static Result<NumaTopology> from_sysfs(const std::string& sysfs_root = "/sys");

    [[nodiscard]] const std::vector<int>& nodes() const noexcept { return nodes_; }
    [[nodiscard]] bool multi_node() const noexcept { return nodes_.size() > 1; }
    [[nodiscard]] bool has_node(int node) const noexcept;
    // -1 (no preference) or an existing node; else EINVAL naming the nodes
    // there are. `who` starts the message.
    [[nodiscard]] Status check_node(int node, std::string_view who) const;
    // "0-1,3"
    [[nodiscard]] std::string to_string() const;

private:
    explicit NumaTopology(std::vector<int> nodes) : nodes_(std::move(nodes)) {}
    std::vector<int> nodes_;  // sorted, distinct
};

// Binds [address, address + length) to `node` (mbind MPOL_BIND, before the
// pages are faulted in), so its pages come from that node. EINVAL with the
// kernel's reason when the node has no memory or does not exist.
[[nodiscard]] Status bind_to_node(void* address, std::size_t length, int node);

}  // namespace dmakit::mem
