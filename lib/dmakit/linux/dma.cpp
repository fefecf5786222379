// The kernel's DMA API (include/linux/dma-mapping.h, dmapool.h) over each
// struct device's DmaDevice. Isolation is DmaDevice's: a streaming mapping
// gives the device exactly the bytes asked for with the direction's
// permission, and a misuse (double unmap, wrong length or direction) is
// refused and logged without touching other mappings.
#include "kernel.hpp"

#include <cstring>
#include <optional>
#include <string>

namespace {

using dmakit::dma::DmaAddr;
using dmakit::dma::DmaDirection;
using dmakit::mem::Gfp;
using dmakit::linux_api::to_gfp;

std::optional<DmaDirection> direction_of(enum dma_data_direction dir) {
    switch (dir) {
        case DMA_BIDIRECTIONAL: return DmaDirection::bidirectional;
        case DMA_TO_DEVICE: return DmaDirection::to_device;
        case DMA_FROM_DEVICE: return DmaDirection::from_device;
        default: return std::nullopt;  // DMA_NONE and garbage: the kernel BUG()s
    }
}

void complain(const device* dev, const std::string& message) { dev->kernel->logger().warning(dev->name + ": " + message); }

// Logs a failed Status of `call`; true when it succeeded.
bool checked(const device* dev, const char* call, const dmakit::Status& status) {
    if (status.ok()) return true;
    complain(dev, std::string(call) + ": " + dmakit::to_string(status.error()));
    return false;
}

std::optional<DmaDirection> direction_or_complain(const device* dev, const char* call, enum dma_data_direction dir) {
    auto d = direction_of(dir);
    if (!d) complain(dev, std::string(call) + ": direction " + std::to_string(static_cast<int>(dir)) +
                              " is not DMA_TO_DEVICE, DMA_FROM_DEVICE or DMA_BIDIRECTIONAL; nothing mapped");
    return d;
}

int set_mask_with(device* dev, const char* call, u64 mask, dmakit::Status (dmakit::dma::DmaDevice::*set)(std::uint64_t)) {
    if (dev == nullptr) return -EINVAL;
    auto status = (dev->dma->*set)(mask);
    if (status.ok()) return 0;
    complain(dev, std::string(call) + ": " + dmakit::to_string(status.error()));
    return -status.error().code();
}

}  // namespace

extern "C" {

int dma_set_mask(struct device* dev, u64 mask) {
    return set_mask_with(dev, "dma_set_mask", mask, &dmakit::dma::DmaDevice::set_mask);
}
int dma_set_coherent_mask(struct device* dev, u64 mask) {
    return set_mask_with(dev, "dma_set_coherent_mask", mask, &dmakit::dma::DmaDevice::set_coherent_mask);
}
int dma_set_mask_and_coherent(struct device* dev, u64 mask) {
    return set_mask_with(dev, "dma_set_mask_and_coherent", mask, &dmakit::dma::DmaDevice::set_mask_and_coherent);
}

void* dmakit_dma_alloc_coherent(struct device* dev, size_t size, dma_addr_t* handle, gfp_t flags, const char* file,
                                int line) {
    if (dev == nullptr || handle == nullptr) return nullptr;
    auto buffer = dev->dma->alloc_coherent(size, to_gfp(flags) | Gfp::no_warn,
                                           dmakit::linux_api::call_site(file, line));
    if (!buffer.ok()) {
        dev->kernel->warn(to_gfp(flags), dev->name + ": dma_alloc_coherent(" + std::to_string(size) + ") at " +
                                             (file != nullptr ? file : "?") + ":" + std::to_string(line) + ": " +
                                             dmakit::to_string(buffer.error()));
        return nullptr;
    }
    void* cpu = buffer->cpu();
    *handle = buffer->dma().value();
    std::lock_guard hold(dev->lock);
    dev->coherent.emplace(cpu, std::move(*buffer));
    return cpu;
}

void dma_free_coherent(struct device* dev, size_t size, void* cpu, dma_addr_t handle) {
    if (dev == nullptr || cpu == nullptr) return;
    std::lock_guard hold(dev->lock);
    auto it = dev->coherent.find(cpu);
    if (it == dev->coherent.end()) {
        complain(dev, "dma_free_coherent: not a live coherent buffer of this device (a double free, or memory "
                      "from another call); nothing freed");
        return;
    }
    if (it->second.dma().value() != handle || size > it->second.size()) {
        complain(dev, "dma_free_coherent: the handle or size does not match what dma_alloc_coherent gave (" +
                          std::to_string(it->second.size()) + " bytes); nothing freed");
        return;
    }
    dev->coherent.erase(it);  // the CoherentBuffer gives the memory back
}

dma_addr_t dma_map_single(struct device* dev, void* cpu, size_t size, enum dma_data_direction dir) {
    if (dev == nullptr) return DMA_MAPPING_ERROR;
    auto d = direction_or_complain(dev, "dma_map_single", dir);
    if (!d) return DMA_MAPPING_ERROR;
    auto addr = dev->dma->map_single(cpu, size, *d);
    if (!addr.ok()) {
        complain(dev, "dma_map_single: " + dmakit::to_string(addr.error()));
        return DMA_MAPPING_ERROR;
    }
    return addr->value();
}

void dma_unmap_single(struct device* dev, dma_addr_t addr, size_t size, enum dma_data_direction dir) {
    if (dev == nullptr) return;
    auto d = direction_or_complain(dev, "dma_unmap_single", dir);
    if (d) (void)checked(dev, "dma_unmap_single", dev->dma->unmap_single(DmaAddr(addr), size, *d));
}

dma_addr_t dma_map_page(struct device* dev, struct page* page, size_t offset, size_t size,
                        enum dma_data_direction dir) {
    if (dev == nullptr) return DMA_MAPPING_ERROR;
    auto d = direction_or_complain(dev, "dma_map_page", dir);
    if (!d) return DMA_MAPPING_ERROR;
    auto addr = dev->dma->map_page(page_address(page), offset, size, *d);
    if (!addr.ok()) {
        complain(dev, "dma_map_page: " + dmakit::to_string(addr.error()));
        return DMA_MAPPING_ERROR;
    }
    return addr->value();
}

void dma_unmap_page(struct device* dev, dma_addr_t addr, size_t size, enum dma_data_direction dir) {
    if (dev == nullptr) return;
    auto d = direction_or_complain(dev, "dma_unmap_page", dir);
    if (d) (void)checked(dev, "dma_unmap_page", dev->dma->unmap_page(DmaAddr(addr), size, *d));
}

void dma_sync_single_for_cpu(struct device* dev, dma_addr_t addr, size_t size, enum dma_data_direction dir) {
    if (dev == nullptr) return;
    auto d = direction_or_complain(dev, "dma_sync_single_for_cpu", dir);
    if (d) (void)checked(dev, "dma_sync_single_for_cpu", dev->dma->sync_single_for_cpu(DmaAddr(addr), size, *d));
}

void dma_sync_single_for_device(struct device* dev, dma_addr_t addr, size_t size, enum dma_data_direction dir) {
    if (dev == nullptr) return;
    auto d = direction_or_complain(dev, "dma_sync_single_for_device", dir);
    if (d) (void)checked(dev, "dma_sync_single_for_device", dev->dma->sync_single_for_device(DmaAddr(addr), size, *d));
}

// Each entry is mapped on its own (the kernel may merge entries; not merging
// is within its contract: the return value says how many segments there are).
int dma_map_sg(struct device* dev, struct scatterlist* sg, int nents, enum dma_data_direction dir) {
    if (dev == nullptr || sg == nullptr || nents <= 0) return 0;
    auto d = direction_or_complain(dev, "dma_map_sg", dir);
    if (!d) return 0;
    for (int i = 0; i < nents; ++i) {
        auto addr = dev->dma->map_single(sg[i].dmakit_cpu, sg[i].length, *d);
        if (!addr.ok()) {
            complain(dev, "dma_map_sg: entry " + std::to_string(i) + " of " + std::to_string(nents) + ": " +
                              dmakit::to_string(addr.error()) + "; nothing stays mapped");
            for (int j = 0; j < i; ++j) {
                (void)checked(dev, "dma_map_sg (undo)",
                              dev->dma->unmap_single(DmaAddr(sg[j].dma_address), sg[j].length, *d));
                sg[j].dma_address = DMA_MAPPING_ERROR;
                sg[j].dma_length = 0;
            }
            return 0;
        }
        sg[i].dma_address = addr->value();
        sg[i].dma_length = sg[i].length;
    }
    return nents;
}

void dma_unmap_sg(struct device* dev, struct scatterlist* sg, int nents, enum dma_data_direction dir) {
    if (dev == nullptr || sg == nullptr || nents <= 0) return;
    auto d = direction_or_complain(dev, "dma_unmap_sg", dir);
    if (!d) return;
    for (int i = 0; i < nents; ++i) {
        if (checked(dev, "dma_unmap_sg", dev->dma->unmap_single(DmaAddr(sg[i].dma_address), sg[i].length, *d))) {
            sg[i].dma_length = 0;
        }
    }
}

void dma_sync_sg_for_cpu(struct device* dev, struct scatterlist* sg, int nents, enum dma_data_direction dir) {
    for (int i = 0; sg != nullptr && i < nents; ++i) dma_sync_single_for_cpu(dev, sg[i].dma_address, sg[i].length, dir);
}

void dma_sync_sg_for_device(struct device* dev, struct scatterlist* sg, int nents, enum dma_data_direction dir) {
    for (int i = 0; sg != nullptr && i < nents; ++i) {
        dma_sync_single_for_device(dev, sg[i].dma_address, sg[i].length, dir);
    }
}

struct dma_pool* dma_pool_create(const char* name, struct device* dev, size_t size, size_t align, size_t boundary) {
    if (dev == nullptr) return nullptr;
    auto pool = dmakit::dma::DmaPool::create(name != nullptr ? name : "dma_pool", *dev->dma, size, align, boundary);
    if (!pool.ok()) {
        complain(dev, "dma_pool_create: " + dmakit::to_string(pool.error()));
        return nullptr;
    }
    auto* made = new dma_pool{dev, std::move(*pool)};
    std::lock_guard hold(dev->kernel->caches_lock);
    dev->kernel->pools.push_back(made);
    return made;
}

void* dma_pool_alloc(struct dma_pool* pool, gfp_t flags, dma_addr_t* handle) {
    if (pool == nullptr || handle == nullptr) return nullptr;
    auto block = pool->pool->alloc(to_gfp(flags) | Gfp::no_warn);  // zeroes when the flags say so
    if (!block.ok()) {
        pool->dev->kernel->warn(to_gfp(flags), pool->dev->name + ": dma_pool_alloc(" + pool->pool->name() +
                                                   "): " + dmakit::to_string(block.error()));
        return nullptr;
    }
    *handle = block->dma.value();
    return block->cpu;
}

void dma_pool_free(struct dma_pool* pool, void* cpu, dma_addr_t handle) {
    (void)handle;  // the block is found by its CPU address; DmaPool checks it is a live block
    if (pool == nullptr || cpu == nullptr) return;
    (void)checked(pool->dev, "dma_pool_free", pool->pool->free(cpu));
}

void dma_pool_destroy(struct dma_pool* pool) {
    if (pool == nullptr) return;
    {
        std::lock_guard hold(pool->dev->kernel->caches_lock);
        std::erase(pool->dev->kernel->pools, pool);
    }
    const auto info = pool->pool->info();
    if (info.active_objects != 0) {
        complain(pool->dev, "dma_pool_destroy(" + pool->pool->name() + "): " + std::to_string(info.active_objects) +
                                " block(s) still allocated; freed with the pool (a leak in the caller)");
    }
    delete pool;
}

}  // extern "C"
