// struct dmakit_kernel and the C entry points that are not allocation or
// DMA: open/close, the current kernel, devices and their BARs, printk, sleep.
#include "kernel.hpp"

#include <dmakit/pci/address.hpp>
#include <dmakit/support/memory_mapping.hpp>

#include <sys/mman.h>
#include <time.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

static_assert(static_cast<unsigned>(dmakit::mem::Gfp::may_grow) == ___GFP_GROW);
static_assert(static_cast<unsigned>(dmakit::mem::Gfp::zero) == __GFP_ZERO);
static_assert(static_cast<unsigned>(dmakit::mem::Gfp::no_warn) == __GFP_NOWARN);
static_assert(static_cast<unsigned>(dmakit::mem::Gfp::dma32) == __GFP_DMA32);

namespace {

// A Logger for the calls that fail before any kernel exists.
const dmakit::Logger& fallback_logger() {
    static const dmakit::Logger logger;  // stderr; immutable after construction
    return logger;
}

}  // namespace

namespace dmakit::linux_api {

// The calling thread's current kernel (see kernel.hpp for why it exists).
constinit thread_local dmakit_kernel* current_kernel __attribute__((tls_model("initial-exec"))) = nullptr;

void complain_no_kernel(const char* call) noexcept {
    fallback_logger().error(std::string(call) +
                            ": no dmakit kernel on this thread; call dmakit_kernel_open() first, or "
                            "dmakit_kernel_enter(kernel) on a thread the kernel did not open on");
}

}  // namespace dmakit::linux_api

using dmakit::linux_api::current_kernel;

dmakit::Result<std::unique_ptr<dmakit_kernel>> dmakit_kernel::open(
    std::span<const dmakit::pci::PciAddress> addresses, const dmakit_kernel_options* options) {
    dmakit::dma::PciDmaOptions pci_options;
    if (options != nullptr) {
        pci_options.context.policy = options->iommu_strict != 0 ? dmakit::dma::IommuPolicy::strict
                                                                 : dmakit::dma::IommuPolicy::pool;
        pci_options.context.debug = options->dma_debug != 0;
        if (options->numa_node >= 0) pci_options.pages.numa_node = options->numa_node;
    }
    DMAKIT_ASSIGN_OR_RETURN(auto domain, dmakit::dma::PciDomain::open(addresses, std::move(pci_options)));
    std::unique_ptr<dmakit_kernel> kernel(new dmakit_kernel());
    kernel->context_ = &domain->function(0).context();
    std::vector<dmakit::dma::DmaDevice*> dma;
    std::vector<dmakit::vfio::Device*> vfio;
    for (std::size_t i = 0; i < domain->size(); ++i) {
        dma.push_back(&domain->function(i).dma());
        vfio.push_back(&domain->function(i).vfio());
    }
    kernel->owned_domain_ = std::move(domain);
    DMAKIT_TRY(kernel->finish_setup(dma, vfio));
    return kernel;
}

dmakit::Result<std::unique_ptr<dmakit_kernel>> dmakit_kernel::adopt(
    dmakit::dma::DmaContext& context, std::span<dmakit::dma::DmaDevice* const> devices) {
    std::unique_ptr<dmakit_kernel> kernel(new dmakit_kernel());
    kernel->context_ = &context;
    const std::vector<dmakit::vfio::Device*> no_vfio(devices.size(), nullptr);
    DMAKIT_TRY(kernel->finish_setup(devices, no_vfio));
    return kernel;
}

dmakit::Status dmakit_kernel::finish_setup(std::span<dmakit::dma::DmaDevice* const> dma,
                                           std::span<dmakit::vfio::Device* const> vfio) {
    DMAKIT_ASSIGN_OR_RETURN(kmalloc_, dmakit::mem::Kmalloc::create(context_->pages()));
    for (std::size_t i = 0; i < dma.size(); ++i) {
        auto dev = std::make_unique<device>();
        dev->kernel = this;
        dev->dma = dma[i];
        dev->vfio = vfio[i];
        dev->name = dma[i]->name();
        devices_.push_back(std::move(dev));
    }
    return {};
}

dmakit_kernel::~dmakit_kernel() {
    if (current_kernel == this) current_kernel = nullptr;
    // What the C code did not give back: freed here (devices must not keep
    // reaching it), and said once per kind so the leak is seen.
    std::size_t pools_left = pools.size(), caches_left = caches.size(), coherent_left = 0;
    for (dma_pool* pool : pools) delete pool;
    for (kmem_cache* cache : caches) delete cache;
    for (auto& dev : devices_) {
        std::lock_guard hold(dev->lock);
        coherent_left += dev->coherent.size();
        dev->coherent.clear();
        dev->bars.clear();
    }
    std::size_t vmalloc_left = vmalloc_areas_.size();
    for (const auto& [address, size] : vmalloc_areas_) ::munmap(const_cast<void*>(address), size);
    if (pools_left + caches_left + coherent_left + vmalloc_left != 0) {
        logger().warning("dmakit_kernel_close: the code left " + std::to_string(caches_left) + " kmem_cache(s), " +
                         std::to_string(pools_left) + " dma_pool(s), " + std::to_string(coherent_left) +
                         " coherent buffer(s) and " + std::to_string(vmalloc_left) +
                         " vmalloc area(s); freed now (a leak in the kernel)");
    }
    kmalloc_.reset();
    devices_.clear();
}

dmakit_kernel* dmakit_kernel::current() noexcept { return current_kernel; }
void dmakit_kernel::enter(dmakit_kernel* kernel) noexcept { current_kernel = kernel; }

void dmakit_kernel::warn(dmakit::mem::Gfp flags, const std::string& message) const {
    if (!dmakit::mem::has(flags, dmakit::mem::Gfp::no_warn)) logger().warning(message);
}

void* dmakit_kernel::vmalloc(std::size_t size, dmakit::mem::Gfp flags) {
    if (size == 0) return nullptr;
    if (!dmakit::mem::has(flags, dmakit::mem::Gfp::may_grow)) {
        // vmalloc always maps fresh memory: a system call the atomic contract forbids.
        warn(flags, "vmalloc(" + std::to_string(size) + ") without GFP_KERNEL: vmalloc maps new memory "
                    "(a system call); use GFP_KERNEL, or kmalloc for atomic context");
        return nullptr;
    }
    const std::size_t bytes = (size + PAGE_SIZE - 1) & PAGE_MASK;
    void* area = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) {
        warn(flags, "vmalloc(" + std::to_string(size) + "): mmap failed: " + std::strerror(errno));
        return nullptr;
    }
    std::lock_guard hold(vmalloc_lock_);
    vmalloc_areas_.emplace(area, bytes);  // fresh anonymous memory is zeroed: vzalloc needs nothing more
    return area;
}

bool dmakit_kernel::vfree(const void* address) {
    std::size_t bytes = 0;
    {
        std::lock_guard hold(vmalloc_lock_);
        auto it = vmalloc_areas_.find(address);
        if (it == vmalloc_areas_.end()) return false;
        bytes = it->second;
        vmalloc_areas_.erase(it);
    }
    ::munmap(const_cast<void*>(address), bytes);
    return true;
}

extern "C" {

struct dmakit_kernel* dmakit_kernel_open(const char* const* bdfs, int count,
                                         const struct dmakit_kernel_options* options) {
    if (bdfs == nullptr || count <= 0) {
        fallback_logger().error("dmakit_kernel_open: give at least one PCI address (\"0000:00:04.0\")");
        return nullptr;
    }
    std::vector<dmakit::pci::PciAddress> addresses;
    for (int i = 0; i < count; ++i) {
        auto address = bdfs[i] != nullptr ? dmakit::pci::PciAddress::parse(bdfs[i])
                                           : dmakit::Result<dmakit::pci::PciAddress>(
                                                 dmakit::Error(EINVAL, "a null PCI address"));
        if (!address.ok()) {
            fallback_logger().error("dmakit_kernel_open: " + dmakit::to_string(address.error()));
            return nullptr;
        }
        addresses.push_back(*address);
    }
    auto kernel = dmakit_kernel::open(addresses, options);
    if (!kernel.ok()) {
        fallback_logger().error("dmakit_kernel_open: " + dmakit::to_string(kernel.error()));
        return nullptr;
    }
    dmakit_kernel* opened = kernel->release();
    current_kernel = opened;
    return opened;
}

void dmakit_kernel_close(struct dmakit_kernel* kernel) { delete kernel; }
void dmakit_kernel_enter(struct dmakit_kernel* kernel) { current_kernel = kernel; }
struct dmakit_kernel* dmakit_kernel_current(void) { return current_kernel; }

struct device* dmakit_kernel_device(struct dmakit_kernel* kernel, int index) {
    if (kernel == nullptr || index < 0) return nullptr;
    return kernel->device_at(static_cast<std::size_t>(index));
}

void __iomem* dmakit_iomap_bar(struct device* dev, int bar, size_t* length) {
    if (dev == nullptr || bar < 0 || bar > 5) return nullptr;
    if (dev->vfio == nullptr) {
        dev->kernel->logger().error(dev->name + ": dmakit_iomap_bar: this device has no BARs (not a VFIO device)");
        return nullptr;
    }
    std::lock_guard hold(dev->lock);
    auto it = dev->bars.find(bar);
    if (it == dev->bars.end()) {
        auto region = dev->vfio->map_bar(static_cast<unsigned>(bar));
        if (!region.ok()) {
            dev->kernel->logger().error(dev->name + ": BAR" + std::to_string(bar) + ": " + dmakit::to_string(region.error()));
            return nullptr;
        }
        if (region->base() == nullptr) {
            dev->kernel->logger().error(dev->name + ": BAR" + std::to_string(bar) +
                                        " cannot be mapped (not memory, or VFIO gave no mmap area)");
            return nullptr;
        }
        it = dev->bars.emplace(bar, std::move(*region)).first;
    }
    if (length != nullptr) *length = it->second.size();
    return const_cast<std::byte*>(it->second.base());
}

const char* dev_name(const struct device* dev) { return dev != nullptr ? dev->name.c_str() : "(no device)"; }

// The DmaDevice's node: sysfs numa_node when PciDomain opened it, or what
// set_numa_node chose (NUMA_NO_NODE, -1, when none).
int dev_to_node(struct device* dev) { return dev != nullptr ? dev->dma->numa_node() : NUMA_NO_NODE; }

void dmakit_printk(int level, const struct device* dev, const char* format, ...) {
    char text[1024];
    va_list args;
    va_start(args, format);
    std::vsnprintf(text, sizeof text, format, args);
    va_end(args);
    std::string message = text;
    while (!message.empty() && message.back() == '\n') message.pop_back();
    if (dev != nullptr) message = dev->name + ": " + message;
    const dmakit_kernel* kernel = dev != nullptr ? dev->kernel : current_kernel;
    const dmakit::Logger& logger = kernel != nullptr ? kernel->logger() : fallback_logger();
    // KERN_ERR 3, KERN_WARNING 4, KERN_INFO 6, KERN_DEBUG 7
    logger.log(level <= 3   ? dmakit::LogLevel::error
               : level == 4 ? dmakit::LogLevel::warning
               : level <= 6 ? dmakit::LogLevel::info
                            : dmakit::LogLevel::debug,
               message);
}

void msleep(unsigned int ms) {
    timespec t{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000L};
    while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

void udelay(unsigned long us) {
    timespec t{static_cast<time_t>(us / 1000000), static_cast<long>(us % 1000000) * 1000L};
    while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

}  // extern "C"
