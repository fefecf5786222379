// The C++ side of <dmakit/linux.h>: what its opaque types are.
//
// struct dmakit_kernel is the memory and the devices kernel-shaped code runs
// on: one DmaContext (its page allocator backs kmalloc, kmem_cache and
// alloc_pages, so all of that memory is pool memory a device can reach), a
// Kmalloc over it, the devices, and the bookkeeping the kernel's calls need
// that the C++ API keeps in handles (which coherent buffer a dma_free_coherent
// means, which vmalloc area a vfree). It either owns its PciDomain
// (dmakit_kernel_open) or borrows a context and devices (adopt: tests, and C++
// programs that hand devices to C code).
//
// The kernel's allocation calls carry no context: they use the calling
// thread's current kernel (enter / current). That thread-local pointer is the
// one piece of process state the C API has, because the kernel's signatures
// leave no other place for it.
#pragma once

// The implementation calls the dmakit_* functions; the kernel-named macros
// would rename C++ members (Kmalloc::kmalloc).
#ifndef DMAKIT_LINUX_NO_CALL_MACROS
#define DMAKIT_LINUX_NO_CALL_MACROS
#endif
#include <dmakit/linux.h>

#include <dmakit/dma/coherent.hpp>
#include <dmakit/dma/context.hpp>
#include <dmakit/dma/device.hpp>
#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/dma/pool.hpp>
#include <dmakit/mem/gfp.hpp>
#include <dmakit/mem/kmalloc.hpp>
#include <dmakit/mem/slab.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/support/result.hpp>
#include <dmakit/vfio/device.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

struct device {
    dmakit_kernel* kernel = nullptr;
    dmakit::dma::DmaDevice* dma = nullptr;
    dmakit::vfio::Device* vfio = nullptr;  // null for devices without BARs (tests)
    std::string name;
    std::mutex lock;                        // guards the maps below
    // dma_free_coherent gets (cpu, handle, size): the buffer is found here.
    std::unordered_map<void*, dmakit::dma::CoherentBuffer> coherent;
    std::unordered_map<int, dmakit::vfio::Region> bars;
};

struct kmem_cache {
    dmakit_kernel* kernel = nullptr;
    std::unique_ptr<dmakit::mem::SlabCache> slab;
};

struct dma_pool {
    device* dev = nullptr;
    std::unique_ptr<dmakit::dma::DmaPool> pool;
};

struct dmakit_kernel {
public:
    // Opens the functions into one PciDomain (hugepage pool; IOMMU policy and
    // DMA debug from `options`, which may be null).
    [[nodiscard]] static dmakit::Result<std::unique_ptr<dmakit_kernel>> open(
        std::span<const dmakit::pci::PciAddress> addresses, const dmakit_kernel_options* options);
    // Over a context and devices the caller owns and keeps alive longer.
    [[nodiscard]] static dmakit::Result<std::unique_ptr<dmakit_kernel>> adopt(
        dmakit::dma::DmaContext& context, std::span<dmakit::dma::DmaDevice* const> devices);
    // Frees what the code left behind, each kind counted in one warning.
    ~dmakit_kernel();
    dmakit_kernel(const dmakit_kernel&) = delete;
    dmakit_kernel& operator=(const dmakit_kernel&) = delete;

    // The calling thread's current kernel (null: none), and setting it.
    [[nodiscard]] static dmakit_kernel* current() noexcept;
    static void enter(dmakit_kernel* kernel) noexcept;

    [[nodiscard]] dmakit::dma::DmaContext& context() noexcept { return *context_; }
    [[nodiscard]] dmakit::mem::Kmalloc& kmalloc() noexcept { return *kmalloc_; }
    [[nodiscard]] const dmakit::Logger& logger() const noexcept { return context_->logger(); }
    [[nodiscard]] device* device_at(std::size_t index) noexcept {
        return index < devices_.size() ? devices_[index].get() : nullptr;
    }

    // Logs `message` as a warning unless `flags` has no_warn.
    void warn(dmakit::mem::Gfp flags, const std::string& message) const;

    // vmalloc areas: anonymous mappings, their sizes kept here for vfree.
    [[nodiscard]] void* vmalloc(std::size_t size, dmakit::mem::Gfp flags);
    [[nodiscard]] bool vfree(const void* address);  // false: not a vmalloc area of this kernel

    // Objects the C code still holds at close, for the leak warning.
    std::mutex caches_lock;
    std::vector<kmem_cache*> caches;
    std::vector<dma_pool*> pools;

private:
    dmakit_kernel() = default;
    [[nodiscard]] dmakit::Status finish_setup(std::span<dmakit::dma::DmaDevice* const> devices,
                                              std::span<dmakit::vfio::Device* const> vfio);

    std::unique_ptr<dmakit::dma::PciDomain> owned_domain_;  // null when adopted
    dmakit::dma::DmaContext* context_ = nullptr;
    std::unique_ptr<dmakit::mem::Kmalloc> kmalloc_;
    std::vector<std::unique_ptr<device>> devices_;
    std::mutex vmalloc_lock_;
    std::unordered_map<const void*, std::size_t> vmalloc_areas_;
};

namespace dmakit::linux_api {

// gfp_t bits are mem::Gfp's (static_assert in kernel.cpp).
[[nodiscard]] inline mem::Gfp to_gfp(gfp_t flags) noexcept { return static_cast<mem::Gfp>(flags); }
// The caller's __FILE__/__LINE__ as the site leak tracking records.
[[nodiscard]] inline mem::CallSite call_site(const char* file, int line) noexcept {
    return {file, static_cast<std::uint32_t>(line)};
}

// The calling thread's current kernel (kernel.cpp). constinit and
// initial-exec: a plain TLS load on every C call, no wrapper, no
// __tls_get_addr (the kmalloc_c_pair benchmark row).
extern constinit thread_local dmakit_kernel* current_kernel __attribute__((tls_model("initial-exec")));

// Logs that `call` ran on a thread with no current kernel.
void complain_no_kernel(const char* call) noexcept;

// The current kernel, or null after logging that `call` needs one.
[[nodiscard]] inline dmakit_kernel* current_or_complain(const char* call) noexcept {
    dmakit_kernel* kernel = current_kernel;
    if (kernel == nullptr) [[unlikely]] complain_no_kernel(call);
    return kernel;
}

}  // namespace dmakit::linux_api
