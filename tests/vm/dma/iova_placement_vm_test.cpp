// No DMA address aliases MMIO, on the real stack: the guest's NVMe controller
// and an e1000e opened through PciDomain, hundreds of mappings of every
// kind, and none may fall inside a BAR of any device or a PCI window of the
// host bridge. The windows are read here, independently of the library's
// pci::read_memory_windows, straight from /proc/iomem and sysfs, so a bug in
// that reader cannot hide itself.
#include "bench_devices.hpp"

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/dma/pool.hpp>
#include <dmakit/dma/scatterlist.hpp>

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace dmakit::dma {
namespace {

struct Window {
    std::uint64_t start;
    std::uint64_t last;
    std::string name;
};

// "%llx-%llx : PCI Bus ..." / "PCI MMCONFIG ..." lines of /proc/iomem.
std::vector<Window> iomem_pci_windows() {
    std::vector<Window> windows;
    std::ifstream in("/proc/iomem");
    std::string line;
    while (std::getline(in, line)) {
        std::uint64_t start = 0;
        std::uint64_t last = 0;
        int name_at = 0;
        if (std::sscanf(line.c_str(), " %" SCNx64 "-%" SCNx64 " : %n", &start, &last, &name_at) != 2 ||
            name_at == 0) {
            continue;
        }
        const std::string name = line.substr(static_cast<std::size_t>(name_at));
        if (name.rfind("PCI Bus", 0) == 0 || name.rfind("PCI MMCONFIG", 0) == 0) {
            windows.push_back({start, last, name});
        }
    }
    return windows;
}

// Every assigned memory resource (IORESOURCE_MEM, 0x200) of every PCI function.
std::vector<Window> sysfs_memory_bars() {
    std::vector<Window> bars;
    for (const auto& entry : std::filesystem::directory_iterator("/sys/bus/pci/devices")) {
        std::ifstream in(entry.path() / "resource");
        std::string line;
        for (int index = 0; std::getline(in, line); ++index) {
            std::uint64_t start = 0;
            std::uint64_t last = 0;
            std::uint64_t flags = 0;
            if (std::sscanf(line.c_str(), "%" SCNx64 " %" SCNx64 " %" SCNx64, &start, &last, &flags) != 3) {
                continue;
            }
            if ((flags & 0x200) == 0 || (start == 0 && last == 0)) continue;
            bars.push_back({start, last,
                            entry.path().filename().string() + " resource " + std::to_string(index)});
        }
    }
    return bars;
}

std::string hex(std::uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "0x%" PRIx64, v);
    return b;
}

class IovaPlacementVm : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        windows_ = iomem_pci_windows();
        host_windows_ = windows_.size();
        for (Window& bar : sysfs_memory_bars()) windows_.push_back(std::move(bar));
        // For the record, once: the guest's PCI windows and BARs.
        std::printf("PCI memory windows of this machine (/proc/iomem, sysfs resource):\n");
        for (const Window& w : windows_) {
            std::printf("  %016" PRIx64 "-%016" PRIx64 " %s\n", w.start, w.last, w.name.c_str());
        }
    }

    void SetUp() override {
        const auto nvmes = vmtest::devices_bound_to(vmtest::kBenchNvme);
        const auto nics = vmtest::devices_bound_to(vmtest::kBenchNic);
        DMAKIT_VM_REQUIRE_DEVICES(nvmes, vmtest::kBenchNvme);
        DMAKIT_VM_REQUIRE_DEVICES(nics, vmtest::kBenchNic);
        nvme_ = nvmes.front();
        nic_ = nics.front();
        // The checks below can only fail if there is something to hit.
        ASSERT_GT(host_windows_, 0u) << "no PCI Bus window in /proc/iomem (not root?)";
        ASSERT_GT(windows_.size(), host_windows_) << "no memory BAR in sysfs";
    }

    // Records a failure when [addr, addr + length) touches a window.
    void check(const char* what, DmaAddr addr, std::size_t length) {
        ASSERT_GT(length, 0u);
        const std::uint64_t first = addr.value();
        const std::uint64_t last = first + (length - 1);
        ++checked_;
        for (const Window& w : windows_) {
            EXPECT_FALSE(first <= w.last && w.start <= last)
                << what << " at " << hex(first) << "-" << hex(last) << " (" << length
                << " bytes) lies in " << w.name << " " << hex(w.start) << "-" << hex(w.last);
        }
    }

    // Hundreds of mappings of every kind through `dev`, all alive at once
    // (so they spread over the IOVA space), each checked, then released.
    void map_everything(PciFunction& dev) {
        DmaDevice& dma = dev.dma();
        const std::size_t before = checked_;

        // The domain itself: no usable range may touch a window.
        for (const auto& range : dev.context().domain().usable_ranges()) {
            check("usable IOVA range", DmaAddr(range.start), range.last - range.start + 1);
        }

        std::vector<CoherentBuffer> coherent;
        for (int round = 0; round < 4; ++round) {
            for (std::size_t size = 64; size <= (std::size_t{2} << 20); size *= 4) {
                auto buffer = dma.alloc_coherent(size + static_cast<std::size_t>(round) * 100);
                ASSERT_TRUE(buffer.ok()) << buffer.error();
                check("alloc_coherent", buffer->dma(), buffer->size());
                coherent.push_back(std::move(buffer).value());
            }
        }
        for (std::size_t mib : {std::size_t{4}, std::size_t{8}, std::size_t{16}, std::size_t{32}}) {
            auto buffer = dma.alloc_coherent(mib << 20);
            ASSERT_TRUE(buffer.ok()) << mib << " MiB: " << buffer.error();
            check("alloc_coherent (MiB)", buffer->dma(), buffer->size());
            coherent.push_back(std::move(buffer).value());
        }

        struct Streaming {
            DmaAddr addr;
            std::size_t length;
            DmaDirection dir;
            bool page;
        };
        std::vector<Streaming> streaming;
        // Pool memory: O(1) translations inside the coherent buffers.
        for (CoherentBuffer& buffer : coherent) {
            const std::size_t length = std::min<std::size_t>(buffer.size(), 4096);
            auto addr = dma.map_single(buffer.cpu(), length, DmaDirection::to_device);
            ASSERT_TRUE(addr.ok()) << addr.error();
            check("map_single (pool)", *addr, length);
            streaming.push_back({*addr, length, DmaDirection::to_device, false});
        }
        // Foreign memory of many sizes and offsets: the heap, page-aligned pages.
        std::vector<std::unique_ptr<unsigned char[]>> heap;
        for (std::size_t i = 0; i < 120; ++i) {
            const std::size_t length = (std::size_t{1} << (6 + i % 16)) + i * 7;  // 64 B .. 2 MiB
            heap.push_back(std::make_unique<unsigned char[]>(length + 64));
            const DmaDirection dir = i % 2 ? DmaDirection::from_device : DmaDirection::bidirectional;
            auto addr = dma.map_single(heap.back().get() + i % 64, length, dir);
            ASSERT_TRUE(addr.ok()) << length << " bytes: " << addr.error();
            check("map_single (foreign)", *addr, length);
            streaming.push_back({*addr, length, dir, false});
        }
        std::vector<void*> pages;
        for (std::size_t i = 0; i < 60; ++i) {
            void* page = std::aligned_alloc(4096, 4 * 4096);
            ASSERT_NE(page, nullptr);
            pages.push_back(page);
            const std::size_t offset = (i * 512) % 4096;
            const std::size_t length = 4096 - offset + (i % 3) * 4096;
            auto addr = dma.map_page(page, offset, length, DmaDirection::to_device);
            ASSERT_TRUE(addr.ok()) << addr.error();
            check("map_page (foreign)", *addr, length);
            streaming.push_back({*addr, length, DmaDirection::to_device, true});
        }
        // Scatter lists mixing pool and foreign entries.
        std::vector<ScatterList> lists(20);
        std::vector<std::unique_ptr<unsigned char[]>> sg_memory;
        for (std::size_t i = 0; i < lists.size(); ++i) {
            for (std::size_t e = 0; e < 8; ++e) {
                if (e % 2 == 0) {
                    CoherentBuffer& buffer = coherent[(i + e) % coherent.size()];
                    lists[i].add(buffer.cpu(), std::min<std::size_t>(buffer.size(), 2048));
                } else {
                    sg_memory.push_back(std::make_unique<unsigned char[]>(9000));
                    lists[i].add(sg_memory.back().get() + e, 9000 - e);
                }
            }
            auto count = dma.map_sg(lists[i], DmaDirection::bidirectional);
            ASSERT_TRUE(count.ok()) << count.error();
            for (const DmaSegment& segment : lists[i].segments()) {
                check("map_sg segment", segment.addr, segment.length);
            }
        }
        // Large buffers from 4 KiB pages.
        std::vector<LargeBuffer> large;
        for (std::size_t size : {std::size_t{64} << 10, std::size_t{1} << 20, std::size_t{3} << 20,
                                 std::size_t{12} << 20}) {
            auto buffer = dma.alloc_large(size);
            ASSERT_TRUE(buffer.ok()) << buffer.error();
            check("alloc_large", buffer->dma(), buffer->size());
            large.push_back(std::move(buffer).value());
        }
        // DmaPool blocks (PRP-list and descriptor shaped).
        auto prp = DmaPool::create("prp", dma, 4096, 4096, 4096);
        ASSERT_TRUE(prp.ok()) << prp.error();
        auto desc = DmaPool::create("desc", dma, 256, 64, 0);
        ASSERT_TRUE(desc.ok()) << desc.error();
        std::vector<DmaPool::Block> prp_blocks;
        std::vector<DmaPool::Block> desc_blocks;
        for (int i = 0; i < 200; ++i) {
            auto a = (*prp)->alloc();
            ASSERT_TRUE(a.ok()) << a.error();
            check("DmaPool block (4 KiB)", a->dma, 4096);
            prp_blocks.push_back(*a);
            auto b = (*desc)->alloc();
            ASSERT_TRUE(b.ok()) << b.error();
            check("DmaPool block (256 B)", b->dma, 256);
            desc_blocks.push_back(*b);
        }

        EXPECT_GE(checked_ - before, 800u) << "fewer mappings checked than intended";

        for (auto& block : prp_blocks) ASSERT_TRUE((*prp)->free(block.cpu).ok());
        for (auto& block : desc_blocks) ASSERT_TRUE((*desc)->free(block.cpu).ok());
        for (auto& list : lists) ASSERT_TRUE(dma.unmap_sg(list, DmaDirection::bidirectional).ok());
        for (const Streaming& s : streaming) {
            Status undone = s.page ? dma.unmap_page(s.addr, s.length, s.dir)
                                   : dma.unmap_single(s.addr, s.length, s.dir);
            ASSERT_TRUE(undone.ok()) << undone.error();
        }
        for (void* page : pages) std::free(page);
    }

    [[nodiscard]] static Result<std::unique_ptr<PciDomain>> open(const pci::PciAddress& address) {
        PciDmaOptions options;
        // Small regions: many of them, so many pool placements are checked.
        options.context.pages.region_size = std::size_t{8} << 20;
        return PciDomain::open(address, options);
    }

    static std::vector<Window> windows_;
    static std::size_t host_windows_;
    std::size_t checked_ = 0;
    std::optional<pci::PciAddress> nvme_;
    std::optional<pci::PciAddress> nic_;
};

std::vector<Window> IovaPlacementVm::windows_;
std::size_t IovaPlacementVm::host_windows_ = 0;

TEST_F(IovaPlacementVm, NoNvmeMappingLiesInAPciWindow) {
    auto dev = open(*nvme_);
    ASSERT_TRUE(dev.ok()) << dev.error();
    map_everything((*dev)->function(0));
}

TEST_F(IovaPlacementVm, NoE1000eMappingLiesInAPciWindowEvenWithA32BitMask) {
    auto dev = open(*nic_);
    ASSERT_TRUE(dev.ok()) << dev.error();
    // Below 4 GiB is where the BARs and the 32-bit window are.
    ASSERT_TRUE((*dev)->function(0).dma().set_mask_and_coherent(dma_bit_mask(32)).ok());
    map_everything((*dev)->function(0));
}

TEST_F(IovaPlacementVm, BothDevicesOpenAtOnceStayOffTheWindows) {
    auto nvme = open(*nvme_);
    ASSERT_TRUE(nvme.ok()) << nvme.error();
    auto nic = open(*nic_);
    ASSERT_TRUE(nic.ok()) << nic.error();
    map_everything((*nvme)->function(0));
    map_everything((*nic)->function(0));
}

}  // namespace
}  // namespace dmakit::dma
