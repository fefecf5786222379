// PciDomain: PCI functions opened through VFIO in ONE IOMMU domain, with the
// DMA API ready to use. The one call a program makes to start; every driver
// then takes a PciFunction&, the same handle for NVMe and NICs.
//
//     auto domain = dma::PciDomain::open(std::array{nvme_bdf, nic_bdf});
//     auto ctrl = nvme::Controller::open((*domain)->function(0), {});
//     auto ring = (*domain)->function(1).dma().alloc_coherent(4096);
// (compiled as written in tests/unit/header_examples/header_examples.cpp)
//
// examples/hello_device/hello_device.cpp is a whole program around it, and
// docs/writing-a-driver.md walks through it line by line.
//
// open() runs the VFIO sequence once: one container; each function's IOMMU
// group attached once (functions sharing a group share it); the type1
// IommuDomain with the machine's PCI windows reserved; one DmaContext whose
// pool is backed by hugepages (4 KiB pages when none are reserved, with one
// warning); one vfio::Device and one DmaDevice per function, on the NUMA
// node sysfs gives it (DmaDevice::set_numa_node overrides); bus mastering
// on. Every pool buffer then has one device address for every function, so a
// frame received by one port can be sent by another, or written to disk by
// the NVMe controller, without a copy — as the kernel does for devices
// behind one IOMMU domain. Every failure is an Error that says what to do: a
// function on another driver names `dmakit bind BDF`, a group that is not
// viable names the member in the way, /dev/vfio/N without permission says so,
// a locked-memory limit too small for the pool says how to raise it (checked
// before anything is pinned: check_memlock_for_pool).
//
// A program that only reads registers opens with
// PciDmaOptions::registers_only: the container, the groups and the devices
// (BARs, config space, reset, interrupts) and nothing of the DMA half — no
// IOMMU domain, no pool, no hugepages, nothing pinned, Bus Master Enable left
// as it was (a device that cannot master cannot DMA: PCIe 4.0 §7.5.1.1.3).
//
// Independent domains (each its own mappings) are separate PciDomains.
#pragma once

#include <dmakit/dma/context.hpp>
#include <dmakit/dma/device.hpp>
#include <dmakit/iommu/domain.hpp>
#include <dmakit/mem/hugepage_source.hpp>
#include <dmakit/pci/address.hpp>
#include <dmakit/vfio/container.hpp>
#include <dmakit/vfio/device.hpp>

#include <cassert>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dmakit::dma {

struct PciDmaOptions {
    DmaContextConfig context;          // debug, pool window, region size, IOMMU policy
    mem::HugepageSourceOptions pages;  // page size, NUMA node, 4 KiB fallback
    // Mapping budget cap, and IOVA ranges to keep free; open() appends the
    // machine's PCI memory windows to `reserved` (reserve_pci_windows below).
    iommu::DomainConfig domain;
    vfio::VfioPaths paths;             // /dev/vfio and /sys (tests)
    std::string iomem = "/proc/iomem"; // host bridge windows (tests: a fake file)
    std::string proc = "/proc";        // RLIMIT_MEMLOCK and capabilities (tests: a fake tree)
    bool enable_bus_master = true;
    // Open the functions for register access only: no IOMMU domain, no DMA
    // context or pool (so no hugepages taken and no memory pinned, whatever
    // RLIMIT_MEMLOCK is), Bus Master Enable left as the kernel left it
    // (enable_bus_master is ignored). PciFunction::has_dma() is then false;
    // drivers refuse such a function (PciFunction::require_dma). For tools
    // that identify a device or read its registers.
    bool registers_only = false;
};

// Appends every PCI memory window of the machine (host bridge windows, ECAM,
// BARs; from options.iomem and options.paths.sysfs) to options.domain.reserved,
// so that no IOVA of the domain aliases MMIO. PciDomain::open calls it before
// the domain is created. Warnings go to options.context.logger (stderr when null).
[[nodiscard]] Status reserve_pci_windows(PciDmaOptions& options);

// Refuses (ENOMEM, saying how to raise it) a locked-memory limit that cannot
// hold what the pool pins first: one region (context.pages.region_size)
// under the pool policy, 2 MiB under strict. CAP_IPC_LOCK (root) passes.
// PciDomain::open calls it before anything is mapped.
[[nodiscard]] Status check_memlock_for_pool(const PciDmaOptions& options);

class PciDomain;

// One function of a PciDomain: what a driver needs of it. Owned by the
// domain, valid as long as it.
class PciFunction {
public:
    PciFunction(const PciFunction&) = delete;
    PciFunction& operator=(const PciFunction&) = delete;

    [[nodiscard]] const pci::PciAddress& address() const noexcept { return device_.address(); }
    [[nodiscard]] vfio::Device& vfio() noexcept { return device_; }
    // False when the domain was opened with PciDmaOptions::registers_only.
    [[nodiscard]] bool has_dma() const noexcept { return dma_ != nullptr; }
    // EINVAL naming the function, `user` ("the NVMe driver") and the fix when
    // it has no DMA; a driver calls it before it touches dma() or context().
    [[nodiscard]] Status require_dma(std::string_view user) const;
    // Only when has_dma() (asserted in debug builds, like Result::value()).
    [[nodiscard]] DmaDevice& dma() noexcept {
        assert(has_dma());
        return *dma_;
    }
    // The domain's one context (shared by every function); only when has_dma().
    [[nodiscard]] DmaContext& context() noexcept { return dma().context(); }

private:
    friend class PciDomain;
    explicit PciFunction(vfio::Device device) : device_(std::move(device)) {}

    vfio::Device device_;
    std::unique_ptr<DmaDevice> dma_;
};

class PciDomain {
public:
    // Functions must be distinct (the same one twice is EINVAL, naming it).
    [[nodiscard]] static Result<std::unique_ptr<PciDomain>> open(std::span<const pci::PciAddress> addresses,
                                                                 PciDmaOptions options = {});
    [[nodiscard]] static Result<std::unique_ptr<PciDomain>> open(const pci::PciAddress& address,
                                                                 PciDmaOptions options = {}) {
        return open(std::span(&address, 1), std::move(options));
    }
    // Closes in the safe order: every DmaDevice (unmapping what is still
    // mapped), the context (unmapping the pool), the devices (vfio-pci resets
    // each), the groups, the container.
    ~PciDomain();
    PciDomain(const PciDomain&) = delete;
    PciDomain& operator=(const PciDomain&) = delete;

    [[nodiscard]] std::size_t size() const noexcept { return functions_.size(); }
    // The i-th function, in the order open() was given them.
    [[nodiscard]] PciFunction& function(std::size_t i) noexcept { return *functions_[i]; }
    // The function at `address`, or null.
    [[nodiscard]] PciFunction* find(const pci::PciAddress& address) noexcept;
    // False when opened with PciDmaOptions::registers_only.
    [[nodiscard]] bool has_dma() const noexcept { return context_ != nullptr; }
    // Only when has_dma() (asserted in debug builds).
    [[nodiscard]] DmaContext& context() noexcept {
        assert(has_dma());
        return *context_;
    }

private:
    explicit PciDomain(vfio::Container container) : container_(std::move(container)) {}

    // Destroyed bottom-up in ~PciDomain.
    vfio::Container container_;
    std::vector<vfio::Group> groups_;
    std::vector<std::unique_ptr<PciFunction>> functions_;
    std::unique_ptr<DmaContext> context_;
};

}  // namespace dmakit::dma
