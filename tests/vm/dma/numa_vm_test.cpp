// NUMA placement on the real stack. Not part of the default vm suite: it
// needs a guest with two NUMA nodes and one more NVMe controller behind a
// PCIe expander bridge on node 1 (docs/testing.md, "NUMA geometry"):
//   scripts/vm --hugepages 256 --qemu-arg ... -- build/tests/vm/dma/vm_numa
// It checks that PciDomain takes the device's node from sysfs, that
// coherent memory and DmaPool blocks land there (the page's node as the
// kernel reports it, get_mempolicy MPOL_F_ADDR), that the controller works
// through the IOMMU with that memory, and the override and its refusal.
#include "bench_devices.hpp"

#include <dmakit/drivers/nvme/controller.hpp>

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/dma/pool.hpp>
#include <dmakit/mem/numa.hpp>
#include <dmakit/pci/sysfs.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <sys/syscall.h>
#include <unistd.h>

namespace dmakit::dma {
namespace {

using namespace std::chrono_literals;

// The node the page at `p` sits on (get_mempolicy with MPOL_F_NODE | MPOL_F_ADDR).
int node_of_page(const void* p) {
    constexpr unsigned long kFlags = 1 | 2;  // MPOL_F_NODE | MPOL_F_ADDR
    int node = -1;
    if (::syscall(SYS_get_mempolicy, &node, nullptr, 0, p, kFlags) != 0) return -2;
    return node;
}

TEST(NumaVm, ADeviceOnNode1GetsItsDmaMemoryFromNode1) {
    auto topology = mem::NumaTopology::from_sysfs();
    ASSERT_TRUE(topology.ok()) << topology.error();
    ASSERT_TRUE(topology->multi_node())
        << "the guest has node(s) " << topology->to_string()
        << "; boot it with the NUMA geometry of docs/testing.md";
    const pci::Sysfs sysfs;
    std::optional<pci::PciAddress> on_node1;
    for (const auto& address : vmtest::devices_bound_to(vmtest::kBenchNvme)) {
        auto node = sysfs.numa_node(address);
        std::printf("NVMe %s: numa_node %d\n", address.to_string().c_str(),
                    node.ok() && node->has_value() ? **node : -1);
        if (node.ok() && node->has_value() && **node == 1) on_node1 = address;
    }
    ASSERT_TRUE(on_node1) << "no NVMe controller on node 1 bound to vfio-pci (pxb-pcie,numa_node=1)";

    PciDmaOptions options;
    options.context.pages.region_size = std::size_t{16} << 20;
    auto domain = PciDomain::open(*on_node1, options);
    ASSERT_TRUE(domain.ok()) << domain.error();
    DmaDevice& device = (*domain)->function(0).dma();
    EXPECT_EQ(device.numa_node(), 1) << "PciDomain did not take the node from sysfs";

    auto buffer = device.alloc_coherent(64 * 1024);
    ASSERT_TRUE(buffer.ok()) << buffer.error();
    EXPECT_EQ((*domain)->context().pages().region_of(buffer->cpu())->numa_node(), 1);
    EXPECT_EQ(node_of_page(buffer->cpu()), 1);
    auto pool = DmaPool::create("numa", device, 512, 0, 4096);
    ASSERT_TRUE(pool.ok());
    auto block = (*pool)->alloc();
    ASSERT_TRUE(block.ok()) << block.error();
    EXPECT_EQ(node_of_page(block->cpu), 1);

    // The controller works through the IOMMU on node-1 memory (its queues
    // and identify data come from alloc_coherent).
    {
        nvme::ControllerOptions co;
        co.admin_timeout = 10s;
        co.io_timeout = 10s;
        auto controller = nvme::Controller::open((*domain)->function(0), co);
        ASSERT_TRUE(controller.ok()) << controller.error();
        EXPECT_FALSE((*controller)->namespaces().empty());
    }

    // Overridable: node 0 on request; a node that does not exist is refused.
    ASSERT_TRUE(device.set_numa_node(0).ok());
    auto on0 = device.alloc_coherent(64 * 1024);
    ASSERT_TRUE(on0.ok()) << on0.error();
    EXPECT_EQ(node_of_page(on0->cpu()), 0);
    auto bad = device.set_numa_node(5);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code(), EINVAL);
    std::printf("%s\n%s", dmakit::to_string(bad.error()).c_str(),
                (*domain)->context().pages().format_buddyinfo().c_str());
    EXPECT_NE((*domain)->context().pages().format_buddyinfo().find("Node 1, zone"), std::string::npos);
    EXPECT_TRUE((*pool)->free(block->cpu).ok());
}

}  // namespace
}  // namespace dmakit::dma
