// What the IOMMU lets a device reach, proven with a real device doing the
// DMA: QEMU's NVMe controller (1b36:0010) behind the emulated intel-iommu,
// driven through VFIO (scripts/vm). Each command gets an explicit device
// address (DmaSegment), so the test picks exactly where the device writes
// (NVMe Read) or reads (NVMe Write), and then checks host memory and the disk.
//
// What QEMU 7.2 does with a DMA the IOMMU refuses (hw/nvme, softmmu/physmem.c,
// dma-helpers.c): the data phase maps guest memory through the IOMMU; a
// refused translation falls back to a bounce buffer whose contents are
// dropped (device write) or read as zeroes (device read), and the command
// still completes with a success status. So the memory and the disk are what
// prove isolation, never the status; the guest kernel's DMAR fault log is
// collected as extra evidence. After each refused DMA a good I/O must work.
//
// Inside the guest (DMAKIT_IN_VM=1) a missing controller is a failure
// (bench_devices.hpp).
#include "bench_devices.hpp"

#include <dmakit/drivers/nvme/commands.hpp>
#include <dmakit/drivers/nvme/controller.hpp>
#include <dmakit/drivers/nvme/io_queue.hpp>

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/support/memory_mapping.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace dmakit::nvme {
namespace {

using namespace std::chrono_literals;
using dma::DmaAddr;
using dma::DmaDirection;
using dma::IommuPolicy;

constexpr std::size_t kPage = 4096;
constexpr std::byte kUntouched{0xa5};

// Byte i of LBA `lba` written with `tag`: differs per LBA, offset and tag,
// and is never kUntouched's pattern across a whole block.
std::byte pattern_byte(std::uint64_t lba, std::size_t i, std::uint8_t tag) {
    return std::byte(static_cast<std::uint8_t>(lba * 131 + i * 7 + tag + (i >> 8)));
}
void fill_pattern(std::byte* p, std::size_t block, std::uint64_t lba, std::uint32_t blocks, std::uint8_t tag) {
    for (std::size_t i = 0; i < block * blocks; ++i) p[i] = pattern_byte(lba + i / block, i % block, tag);
}
bool has_pattern(const std::byte* p, std::size_t block, std::uint64_t lba, std::uint32_t blocks, std::uint8_t tag) {
    for (std::size_t i = 0; i < block * blocks; ++i) {
        if (p[i] != pattern_byte(lba + i / block, i % block, tag)) return false;
    }
    return true;
}
// Offset of the first byte that is not `value`, or -1.
long first_not(const std::byte* p, std::size_t n, std::byte value) {
    for (std::size_t i = 0; i < n; ++i) {
        if (p[i] != value) return static_cast<long>(i);
    }
    return -1;
}

// The guest kernel's DMAR fault reports ("DMAR: [DMA Write NO_PASID] Request
// device [..] fault addr 0x... [fault reason 0x05] PTE Write access is not
// set") logged since construction. Evidence only: the kernel rate-limits them.
class DmarFaults {
public:
    DmarFaults() : fd_(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)) {
        if (fd_ >= 0) ::lseek(fd_, 0, SEEK_END);
    }
    ~DmarFaults() {
        if (fd_ >= 0) ::close(fd_);
    }
    DmarFaults(const DmarFaults&) = delete;
    DmarFaults& operator=(const DmarFaults&) = delete;

    // Fault lines since the last call, semicolon-separated ("" when none).
    // The fault interrupt comes after the command completed: wait up to
    // `settle` for the first line.
    std::string take(std::chrono::milliseconds settle = 0ms) {
        const auto until = std::chrono::steady_clock::now() + settle;
        std::string out = drain();
        while (out.empty() && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(10ms);
            out = drain();
        }
        return out;
    }

private:
    std::string drain() {
        std::string out;
        char record[2048];
        for (int guard = 0; fd_ >= 0 && guard < 10000; ++guard) {
            const ssize_t n = ::read(fd_, record, sizeof record - 1);
            if (n < 0 && errno == EPIPE) continue;  // overwritten records; keep reading
            if (n <= 0) break;
            std::string_view line(record, static_cast<std::size_t>(n));
            const auto text = line.find(';');
            if (text != std::string_view::npos) line.remove_prefix(text + 1);
            while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
            if (line.find("DMAR") != std::string_view::npos &&
                (line.find("fault") != std::string_view::npos || line.find("Request device") != std::string_view::npos)) {
                if (!out.empty()) out += "; ";
                out += line;
            }
        }
        return out;
    }

    int fd_;
};

// Anonymous pages outside every pool: "foreign" memory for the DMA API.
struct ForeignPages {
    MemoryMapping memory;
    std::byte* page(std::size_t k) const { return memory.bytes() + k * kPage; }
};
Result<ForeignPages> foreign_pages(std::size_t count) {
    DMAKIT_ASSIGN_OR_RETURN(MemoryMapping m, MemoryMapping::map(nullptr, count * kPage, PROT_READ | PROT_WRITE,
                                                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0,
                                                                "foreign test pages"));
    std::memset(m.data(), static_cast<int>(kUntouched), count * kPage);
    return ForeignPages{std::move(m)};
}

// Where the buffers under test come from.
enum class Memory {
    foreign,  // anonymous mmap: never pool memory
    pool,     // pages of the context's own buddy allocator
};

struct Setup {
    IommuPolicy policy;
    Memory memory;
};
std::string setup_name(const ::testing::TestParamInfo<Setup>& info) {
    return std::string(dma::to_string(info.param.policy)) + "_" +
           (info.param.memory == Memory::foreign ? "foreign" : "pool_pages");
}

class IsolationVm : public ::testing::TestWithParam<Setup> {
protected:
    void SetUp() override {
        const auto found = vmtest::devices_bound_to(vmtest::kBenchNvme);
        DMAKIT_VM_REQUIRE_DEVICES(found, vmtest::kBenchNvme);
        address_ = found[0];
        dma::PciDmaOptions o;
        o.context.policy = GetParam().policy;
        o.context.debug = true;
        o.context.logger = &logger_;
        o.context.pages.region_size = std::size_t{16} << 20;
        auto d = dma::PciDomain::open(*address_, o);
        ASSERT_TRUE(d.ok()) << d.error();
        dev_ = std::move(d).value();
        ControllerOptions co;
        co.logger = &logger_;
        co.io_timeout = 5s;
        co.admin_timeout = 5s;
        auto c = Controller::open(dev_->function(0), co);
        ASSERT_TRUE(c.ok()) << c.error();
        ctrl_ = std::move(c).value();
        ASSERT_FALSE(ctrl_->namespaces().empty());
        nsid_ = ctrl_->namespaces()[0].nsid;
        block_ = ctrl_->namespaces()[0].block_size();
        // Every data phase below is one block inside one 4 KiB page.
        ASSERT_LE(block_, kPage / 2) << "the sub-page checks need an LBA size of at most 2 KiB";
        auto q = ctrl_->create_io_queue(8);
        ASSERT_TRUE(q.ok()) << q.error();
        q_ = *q;
        auto good = dma().alloc_coherent(kPage);
        ASSERT_TRUE(good.ok()) << good.error();
        good_ = std::move(good).value();
        // Known data on the LBAs the tests read, so a read that lands shows.
        for (std::uint64_t lba = kLba; lba < kLba + kLbas; ++lba) {
            fill_pattern(good_.as<std::byte>(), block_, lba, 1, kDiskTag);
            const DmaSegment seg{good_.dma().value(), block_};
            ASSERT_TRUE(q_->write_sync(nsid_, lba, 1, {&seg, 1}).ok());
        }
        (void)faults_.take();
    }

    void TearDown() override {
        ctrl_.reset();  // before the buffers' device goes
        for (void* p : pool_pages_) dev_->context().pages().free_pages(p);
    }

    dma::DmaDevice& dma() { return dev_->function(0).dma(); }

    // `count` pages of the memory kind under test, each filled with kUntouched.
    std::byte* pages(std::size_t count) {
        if (GetParam().memory == Memory::foreign) {
            auto f = foreign_pages(count);
            EXPECT_TRUE(f.ok()) << f.error();
            if (!f.ok()) return nullptr;
            foreign_.push_back(std::move(f).value());
            return foreign_.back().page(0);
        }
        unsigned order = 0;
        while ((std::size_t{1} << order) < count) ++order;
        auto p = dev_->context().pages().try_alloc_pages(order);
        EXPECT_TRUE(p.ok()) << p.error();
        if (!p.ok()) return nullptr;
        pool_pages_.push_back(*p);
        auto* bytes = static_cast<std::byte*>(*p);
        std::memset(bytes, static_cast<int>(kUntouched), count * kPage);
        return bytes;
    }

    // One NVMe Read (the device writes host memory) of LBA `lba` into `addr`.
    Result<IoCompletion> device_writes(std::uint64_t addr, std::uint64_t lba = kLba) {
        const DmaSegment seg{addr, block_};
        return q_->read_sync_completion(nsid_, lba, 1, {&seg, 1});
    }
    // One NVMe Write (the device reads host memory) of `addr` to LBA `lba`.
    Result<IoCompletion> device_reads(std::uint64_t addr, std::uint64_t lba) {
        struct Wait {
            bool done = false;
            IoCompletion c;
        } w;
        const DmaSegment seg{addr, block_};
        auto cid = q_->write(nsid_, lba, 1, {&seg, 1}, +[](void* u, const IoCompletion& c) noexcept {
            static_cast<Wait*>(u)->done = true;
            static_cast<Wait*>(u)->c = c;
        }, &w);
        if (!cid.ok()) return cid.error();
        q_->ring();
        const auto give_up = std::chrono::steady_clock::now() + 15s;
        while (!w.done && std::chrono::steady_clock::now() < give_up) q_->poll();
        if (!w.done) return Error(ETIMEDOUT, "NVMe Write did not complete in 15 s");
        return w.c;
    }

    // What a refused DMA did, for the report: status or timeout, DMAR log.
    std::string outcome(const Result<IoCompletion>& r) {
        std::string s = !r.ok()          ? "no completion: " + dmakit::to_string(r.error())
                        : r->ok()        ? std::string("success status")
                                         : "status " + std::string(status_name(r->status));
        const std::string faults = faults_.take(300ms);
        return s + " | DMAR log: " + (faults.empty() ? "(none)" : faults);
    }
    void report(const char* what, const Result<IoCompletion>& r) {
        const std::string text = outcome(r);
        RecordProperty(what, text);
        std::printf("[%s/%s] %s: %s\n", std::string(dma::to_string(GetParam().policy)).c_str(),
                    GetParam().memory == Memory::foreign ? "foreign" : "pool pages", what, text.c_str());
        std::fflush(stdout);
        // A refused DMA must not leave the controller fatal or the command hung.
        EXPECT_TRUE(r.ok()) << what << ": " << text;
        EXPECT_FALSE(ctrl_->failed()) << what << ": the controller reports a fatal status (CSTS.CFS)";
    }

    // A good Read into the coherent buffer, verified: the controller still works.
    void expect_good_io(const char* after) {
        std::memset(good_.cpu(), 0, kPage);
        const DmaSegment seg{good_.dma().value(), block_};
        auto s = q_->read_sync(nsid_, kLba + 1, 1, {&seg, 1});
        ASSERT_TRUE(s.ok()) << "a good read after " << after << " failed: " << s.error();
        EXPECT_TRUE(has_pattern(good_.as<std::byte>(), block_, kLba + 1, 1, kDiskTag))
            << "a good read after " << after << " returned wrong data";
    }

    // Maps `len` bytes at `cpu` for `dir` so that the IOVA page right after
    // the mapping's page is unmapped: a probe page is mapped first and
    // unmapped after, and the IOVA allocator (highest free block first)
    // places the mapping right below it once no stray 4 KiB holes are left.
    // Holes found on the way are kept mapped (holders_) until the test ends.
    Result<DmaAddr> map_below_unmapped_page(void* cpu, std::size_t len, DmaDirection dir) {
        for (int attempt = 0; attempt < 256; ++attempt) {
            std::byte* probe = pages(1);
            if (probe == nullptr) return Error(ENOMEM, "no probe page");
            DMAKIT_ASSIGN_OR_RETURN(DmaAddr p, dma().map_single(probe, kPage, DmaDirection::from_device));
            auto m = dma().map_single(cpu, len, dir);
            if (!m.ok()) return m.error();
            if ((m->value() & ~(kPage - 1)) + kPage == p.value()) {
                DMAKIT_TRY(dma().unmap_single(p, kPage, DmaDirection::from_device));
                probes_.push_back(probe);
                return *m;
            }
            holders_.push_back({p, kPage, DmaDirection::from_device});
            holders_.push_back({*m, len, dir});
        }
        return Error(EAGAIN, "the IOVA allocator never placed the mapping below the probe");
    }
    void unmap_holders() {
        for (const auto& h : holders_) EXPECT_TRUE(dma().unmap_single(h.addr, h.len, h.dir).ok());
        holders_.clear();
    }
    // Every probe page is untouched (they were mapped once, then unmapped).
    void expect_probes_untouched() {
        for (std::byte* p : probes_) EXPECT_EQ(first_not(p, kPage, kUntouched), -1) << "a probe page was written";
    }

    static constexpr std::uint64_t kLba = 100;
    static constexpr std::uint64_t kLbas = 8;
    static constexpr std::uint8_t kDiskTag = 0x3c;

    struct Held {
        DmaAddr addr;
        std::size_t len;
        DmaDirection dir;
    };
    Logger logger_{LogLevel::warning, [](LogLevel, std::string_view m) {
                       std::fprintf(stderr, "dmakit: %.*s\n", static_cast<int>(m.size()), m.data());
                   }};
    DmarFaults faults_;
    std::optional<pci::PciAddress> address_;
    std::unique_ptr<dma::PciDomain> dev_;
    std::unique_ptr<Controller> ctrl_;
    IoQueue* q_ = nullptr;
    std::uint32_t nsid_ = 0;
    std::size_t block_ = 0;
    dma::CoherentBuffer good_;
    std::vector<ForeignPages> foreign_;
    std::vector<void*> pool_pages_;
    std::vector<Held> holders_;
    std::vector<std::byte*> probes_;
};

// Issue 9 item 1: to_device is read-only for the device.
TEST_P(IsolationVm, ReadIntoToDeviceMappingLeavesMemoryUntouched) {
    std::byte* buf = pages(1);
    ASSERT_NE(buf, nullptr);
    auto addr = dma().map_single(buf, kPage, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    report("read_into_to_device", device_writes(addr->value()));
    EXPECT_EQ(first_not(buf, kPage, kUntouched), -1) << "the device wrote through a to_device (read-only) mapping";
    ASSERT_TRUE(dma().unmap_single(*addr, kPage, DmaDirection::to_device).ok());
    expect_good_io("a read into a to_device mapping");
    // The same read into a from_device mapping of the buffer lands (the check can fail).
    auto writable = dma().map_single(buf, kPage, DmaDirection::from_device);
    ASSERT_TRUE(writable.ok()) << writable.error();
    auto r = device_writes(writable->value(), kLba + 2);
    ASSERT_TRUE(r.ok() && r->ok()) << outcome(r);
    EXPECT_TRUE(has_pattern(buf, block_, kLba + 2, 1, kDiskTag)) << "a read into a from_device mapping did not land";
    ASSERT_TRUE(dma().unmap_single(*writable, kPage, DmaDirection::from_device).ok());
}

// Item 2: after unmap the address leads nowhere.
TEST_P(IsolationVm, ReadToAnAddressAfterItsUnmapIsBlocked) {
    std::byte* buf = pages(1);
    ASSERT_NE(buf, nullptr);
    auto addr = dma().map_single(buf, kPage, DmaDirection::from_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    // While mapped, the same read lands (so the later check can fail).
    ASSERT_TRUE(device_writes(addr->value(), kLba + 2).ok());
    ASSERT_TRUE(has_pattern(buf, block_, kLba + 2, 1, kDiskTag)) << "a read into a live mapping did not land";
    std::memset(buf, static_cast<int>(kUntouched), kPage);
    ASSERT_TRUE(dma().unmap_single(*addr, kPage, DmaDirection::from_device).ok());
    report("read_after_unmap", device_writes(addr->value()));
    EXPECT_EQ(first_not(buf, kPage, kUntouched), -1) << "the device wrote through an unmapped address";
    expect_good_io("a read to an unmapped address");
}

// Item 3: a 64-byte mapping exposes its own 4 KiB page and nothing beyond.
TEST_P(IsolationVm, SubPageMappingExposesItsPageButNotTheNext) {
    std::byte* buf = pages(3);
    ASSERT_NE(buf, nullptr);
    std::byte* mine = buf + kPage + 2048;
    auto addr = map_below_unmapped_page(mine, 64, DmaDirection::from_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    const std::uint64_t page_iova = addr->value() & ~(kPage - 1);
    ASSERT_EQ(addr->value() - page_iova, 2048u) << "the mapping keeps the buffer's offset in its page";

    report("read_to_next_iova_page", device_writes(page_iova + kPage));
    EXPECT_EQ(first_not(buf, 3 * kPage, kUntouched), -1) << "a read to the IOVA page after the mapping landed";
    expect_probes_untouched();
    expect_good_io("a read past a sub-page mapping");

    // Its own page is exposed whole (4 KiB granularity): the start of the
    // page, outside the 64 bytes, and a whole block from the buffer onwards.
    ASSERT_TRUE(device_writes(page_iova, kLba + 3).ok());
    EXPECT_TRUE(has_pattern(buf + kPage, block_, kLba + 3, 1, kDiskTag))
        << "a read to the start of the mapping's own page did not land";
    ASSERT_TRUE(device_writes(addr->value(), kLba + 4).ok());
    EXPECT_TRUE(has_pattern(mine, block_, kLba + 4, 1, kDiskTag)) << "a read into the mapping did not land";
    EXPECT_EQ(first_not(buf, kPage, kUntouched), -1) << "the page before the mapping's page changed";
    EXPECT_EQ(first_not(buf + 2 * kPage, kPage, kUntouched), -1) << "the page after the mapping's page changed";
    EXPECT_TRUE(dma().unmap_single(*addr, 64, DmaDirection::from_device).ok());
    unmap_holders();
}

// Item 4: can the device READ a from_device mapping? dmakit asks for
// write-only (VFIO_DMA_MAP_FLAG_WRITE alone, as Linux maps DMA_FROM_DEVICE),
// and QEMU's VT-d checks the R bit of second-level PTEs (the test below
// shows a read of an unmapped IOVA faults with "PTE Read access is not set").
// But the guest's Linux 6.1 VT-d driver sets bit 0 in every PTE it writes
// (commit eea53c581688, v5.12: "Remove WO permissions on second-level paging
// entries"; bit 0 is first-level Present and second-level Read), so on this
// bench a from_device mapping is read+write. Linux restored write-only in
// 2025 ("iommu/vt-d: Restore WO permissions on second-level paging entries").
// So this is recorded, not asserted; what is asserted is that the check can
// see a read (a to_device mapping's data does land) and that the
// controller keeps working.
TEST_P(IsolationVm, WriteFromFromDeviceMappingIsRecorded) {
    std::byte* buf = pages(1);
    ASSERT_NE(buf, nullptr);
    const std::uint64_t lba = kLba + 5;
    fill_pattern(buf, block_, lba, 1, 0x77);
    auto addr = dma().map_single(buf, kPage, DmaDirection::from_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    report("write_from_from_device", device_reads(addr->value(), lba));
    ASSERT_TRUE(dma().unmap_single(*addr, kPage, DmaDirection::from_device).ok());
    // What reached the disk: the buffer (the device could read it), or
    // zeroes (QEMU's bounce buffer after a refused read).
    std::memset(good_.cpu(), 0, kPage);
    const DmaSegment seg{good_.dma().value(), block_};
    ASSERT_TRUE(q_->read_sync(nsid_, lba, 1, {&seg, 1}).ok());
    const bool read = has_pattern(good_.as<std::byte>(), block_, lba, 1, 0x77);
    const bool zeroes = first_not(good_.as<std::byte>(), block_, std::byte{0}) == -1;
    EXPECT_TRUE(read || zeroes) << "the disk holds neither the buffer nor zeroes";
    const char* seen = read ? "read+write: the device read the from_device mapping"
                            : "write-only: the device could not read the from_device mapping";
    RecordProperty("from_device_permission", seen);
    std::printf("[%s] from_device mapping on this bench: %s\n",
                std::string(dma::to_string(GetParam().policy)).c_str(), seen);
    expect_good_io("a write from a from_device mapping");
    // The same write from a to_device mapping lands (so the check above can see a read).
    fill_pattern(buf, block_, lba, 1, 0x78);
    auto readable = dma().map_single(buf, kPage, DmaDirection::to_device);
    ASSERT_TRUE(readable.ok());
    auto r = device_reads(readable->value(), lba);
    ASSERT_TRUE(r.ok() && r->ok()) << outcome(r);
    ASSERT_TRUE(dma().unmap_single(*readable, kPage, DmaDirection::to_device).ok());
    std::memset(good_.cpu(), 0, kPage);
    ASSERT_TRUE(q_->read_sync(nsid_, lba, 1, {&seg, 1}).ok());
    EXPECT_TRUE(has_pattern(good_.as<std::byte>(), block_, lba, 1, 0x78)) << "a write from a to_device mapping did not land";
}

// Item 2, the other way: a Write (the device reads) from an unmapped address.
TEST_P(IsolationVm, WriteFromAnAddressAfterItsUnmapIsBlocked) {
    std::byte* buf = pages(1);
    ASSERT_NE(buf, nullptr);
    const std::uint64_t lba = kLba + 5;
    fill_pattern(buf, block_, lba, 1, 0x55);
    auto addr = dma().map_single(buf, kPage, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    ASSERT_TRUE(dma().unmap_single(*addr, kPage, DmaDirection::to_device).ok());
    report("write_after_unmap", device_reads(addr->value(), lba));
    std::memset(good_.cpu(), 0, kPage);
    const DmaSegment seg{good_.dma().value(), block_};
    ASSERT_TRUE(q_->read_sync(nsid_, lba, 1, {&seg, 1}).ok());
    EXPECT_FALSE(has_pattern(good_.as<std::byte>(), block_, lba, 1, 0x55)) << "the device read an unmapped address";
    RecordProperty("disk_after_write_after_unmap",
                   first_not(good_.as<std::byte>(), block_, std::byte{0}) == -1 ? "zeroes" : "other");
    expect_good_io("a write from an unmapped address");
}

// Item 6: a refused double unmap changes nothing: the other mapping still works.
TEST_P(IsolationVm, RefusedDoubleUnmapLeavesTheOtherMappingWorking) {
    std::byte* a = pages(1);
    std::byte* b = pages(1);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    auto addr_a = dma().map_single(a, kPage, DmaDirection::from_device);
    auto addr_b = dma().map_single(b, kPage, DmaDirection::from_device);
    ASSERT_TRUE(addr_a.ok() && addr_b.ok());
    ASSERT_TRUE(dma().unmap_single(*addr_a, kPage, DmaDirection::from_device).ok());
    auto again = dma().unmap_single(*addr_a, kPage, DmaDirection::from_device);
    ASSERT_FALSE(again.ok()) << "a double unmap was accepted";
    EXPECT_EQ(again.error().code(), EINVAL) << again.error();
    // With b's address and a's length (a second way to get it wrong).
    auto wrong = dma().unmap_single(*addr_b, 64, DmaDirection::from_device);
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.error().code(), EINVAL) << wrong.error();
    EXPECT_EQ(dma().live_mappings(), 1u);

    auto r = device_writes(addr_b->value(), kLba + 6);
    ASSERT_TRUE(r.ok() && r->ok()) << outcome(r);
    EXPECT_TRUE(has_pattern(b, block_, kLba + 6, 1, kDiskTag)) << "a read into the surviving mapping did not land";
    report("read_after_double_unmap", device_writes(addr_a->value()));
    EXPECT_EQ(first_not(a, kPage, kUntouched), -1) << "the unmapped page was written";
    ASSERT_TRUE(dma().unmap_single(*addr_b, kPage, DmaDirection::from_device).ok());
    expect_good_io("a refused double unmap");
}

INSTANTIATE_TEST_SUITE_P(, IsolationVm,
                         ::testing::Values(Setup{IommuPolicy::pool, Memory::foreign},
                                           Setup{IommuPolicy::strict, Memory::foreign},
                                           Setup{IommuPolicy::strict, Memory::pool}),
                         setup_name);

// ---- registered memory (SPDK's mem_register contract), either policy

class RegisteredVm : public IsolationVm {};

// A registration maps its pages read-write, whatever the direction of the
// maps inside it, and nothing past them; it stays reachable until it ended
// AND the last mapping inside it was unmapped.
TEST_P(RegisteredVm, RegistrationExposesItsPagesReadWriteUntilItEnds) {
    std::byte* buf = pages(3);
    ASSERT_NE(buf, nullptr);
    std::byte* reg_page = buf + kPage;
    auto reg = dev_->context().registrations().register_memory(reg_page, kPage, dma().mask());
    ASSERT_TRUE(reg.ok()) << reg.error();
    const std::uint64_t base = reg->dma().value();
    auto addr = dma().map_single(reg_page + 1024, 64, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    ASSERT_EQ(addr->value(), base + 1024) << "a map inside a registration is a cache hit";

    // Writable although the map says to_device: the registration is read-write.
    auto r = device_writes(addr->value(), kLba + 3);
    ASSERT_TRUE(r.ok() && r->ok()) << outcome(r);
    EXPECT_TRUE(has_pattern(reg_page + 1024, block_, kLba + 3, 1, kDiskTag))
        << "expected a registered page to be device-writable";
    std::memset(reg_page, static_cast<int>(kUntouched), kPage);

    // Ended while a mapping inside it lives: still reachable (the mapping
    // holds it), then unreachable once that mapping is unmapped.
    reg->reset();
    r = device_writes(base, kLba + 4);
    ASSERT_TRUE(r.ok() && r->ok()) << outcome(r);
    EXPECT_TRUE(has_pattern(reg_page, block_, kLba + 4, 1, kDiskTag))
        << "the live mapping inside an ended registration should keep it mapped";
    std::memset(reg_page, static_cast<int>(kUntouched), kPage);
    ASSERT_TRUE(dma().unmap_single(*addr, 64, DmaDirection::to_device).ok());
    report("read_to_ended_registration", device_writes(base));
    EXPECT_EQ(first_not(buf, 3 * kPage, kUntouched), -1) << "an ended registration's pages (or its neighbours) were written";
    expect_good_io("a read to an ended registration");
}

INSTANTIATE_TEST_SUITE_P(, RegisteredVm,
                         ::testing::Values(Setup{IommuPolicy::pool, Memory::foreign},
                                           Setup{IommuPolicy::strict, Memory::foreign}),
                         setup_name);

// ---- strict only: coherent buffers are mapped alone, and only while they live

class StrictCoherentVm : public IsolationVm {};

// Item 5: a coherent buffer's mapping ends with its last page.
TEST_P(StrictCoherentVm, CoherentBufferEndsAtItsLastPage) {
    // Place the buffer below a known-unmapped IOVA page: allocate until its
    // page sits right below a probe that is then unmapped.
    std::vector<dma::CoherentBuffer> kept;
    std::optional<dma::CoherentBuffer> buf;
    for (int attempt = 0; attempt < 256 && !buf; ++attempt) {
        std::byte* probe = pages(1);
        ASSERT_NE(probe, nullptr);
        auto p = dma().map_single(probe, kPage, DmaDirection::from_device);
        ASSERT_TRUE(p.ok()) << p.error();
        auto c = dma().alloc_coherent(kPage);
        ASSERT_TRUE(c.ok()) << c.error();
        if (c->dma().value() + kPage == p->value()) {
            ASSERT_TRUE(dma().unmap_single(*p, kPage, DmaDirection::from_device).ok());
            probes_.push_back(probe);
            buf = std::move(c).value();
        } else {
            holders_.push_back({*p, kPage, DmaDirection::from_device});
            kept.push_back(std::move(c).value());
        }
    }
    ASSERT_TRUE(buf.has_value()) << "the IOVA allocator never placed the buffer below the probe";
    std::memset(buf->cpu(), static_cast<int>(kUntouched), kPage);
    ASSERT_TRUE(device_writes(buf->dma().value(), kLba + 7).ok());
    EXPECT_TRUE(has_pattern(buf->as<std::byte>(), block_, kLba + 7, 1, kDiskTag)) << "a read into the buffer did not land";
    report("read_past_coherent_buffer", device_writes(buf->dma().value() + kPage));
    expect_probes_untouched();
    expect_good_io("a read past a coherent buffer");
    unmap_holders();
}

// Item 5: the IOVA of a freed coherent buffer is unreachable.
TEST_P(StrictCoherentVm, FreedCoherentBufferIsUnreachable) {
    auto c = dma().alloc_coherent(kPage);
    ASSERT_TRUE(c.ok()) << c.error();
    std::byte* cpu = c->as<std::byte>();
    const std::uint64_t iova = c->dma().value();
    ASSERT_TRUE(device_writes(iova, kLba + 2).ok());
    ASSERT_TRUE(has_pattern(cpu, block_, kLba + 2, 1, kDiskTag)) << "a read into a live coherent buffer did not land";
    std::memset(cpu, static_cast<int>(kUntouched), kPage);
    c->reset();
    // The pages are back in the buddy allocator but still mapped in this
    // process, and nothing allocates before the check: the bytes are the
    // freed buffer's.
    report("read_to_freed_coherent", device_writes(iova));
    EXPECT_EQ(first_not(cpu, kPage, kUntouched), -1) << "the device wrote through a freed coherent buffer's address";
    expect_good_io("a read to a freed coherent buffer's address");
}

INSTANTIATE_TEST_SUITE_P(, StrictCoherentVm, ::testing::Values(Setup{IommuPolicy::strict, Memory::pool}), setup_name);

// ---- pool mode: what it does NOT isolate (documented in docs/dma.md)

class PoolModeVm : public IsolationVm {};

// Pool memory is mapped read-write with its whole region: a to_device
// mapping of it does not stop device writes, and neither does its unmap.
TEST_P(PoolModeVm, PoolMemoryStaysWritableWhateverTheDirection) {
    std::byte* buf = pages(1);
    ASSERT_NE(buf, nullptr);
    auto addr = dma().map_single(buf, kPage, DmaDirection::to_device);
    ASSERT_TRUE(addr.ok()) << addr.error();
    auto r = device_writes(addr->value(), kLba + 3);
    ASSERT_TRUE(r.ok() && r->ok()) << outcome(r);
    EXPECT_TRUE(has_pattern(buf, block_, kLba + 3, 1, kDiskTag))
        << "pool mode: expected the whole region to be device-writable";
    ASSERT_TRUE(dma().unmap_single(*addr, kPage, DmaDirection::to_device).ok());
    std::memset(buf, static_cast<int>(kUntouched), kPage);
    r = device_writes(addr->value(), kLba + 4);
    ASSERT_TRUE(r.ok() && r->ok()) << outcome(r);
    EXPECT_TRUE(has_pattern(buf, block_, kLba + 4, 1, kDiskTag))
        << "pool mode: expected pool memory to stay reachable after unmap";
}

INSTANTIATE_TEST_SUITE_P(, PoolModeVm, ::testing::Values(Setup{IommuPolicy::pool, Memory::pool}), setup_name);

}  // namespace
}  // namespace dmakit::nvme
