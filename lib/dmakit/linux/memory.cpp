// The kernel's allocation calls over the current kernel's allocators:
// kmalloc & co on its Kmalloc, kmem_cache on SlabCache, alloc_pages on the
// buddy allocator (struct page * is the block's address), vmalloc on
// anonymous mappings. Every failure returns what the kernel returns (NULL)
// and logs dmakit's message unless __GFP_NOWARN.
#include "kernel.hpp"

#include <dmakit/mem/buddy.hpp>

#include <cstring>
#include <string>

namespace {

using dmakit::mem::Gfp;
using dmakit::linux_api::current_or_complain;
using dmakit::linux_api::call_site;
using dmakit::linux_api::to_gfp;

std::string site(const char* file, int line) {
    return file != nullptr ? std::string(" at ") + file + ":" + std::to_string(line) : std::string();
}

// The C layer logs its own failures (with the caller's file:line), so the
// C++ allocators are asked not to.
Gfp quiet(Gfp flags) { return flags | Gfp::no_warn; }

// The one place an object of `size` bytes is taken for the C layer: the
// inline fast path first; only a miss asks try_kmalloc, which either gets
// one after all or says why not. The flags go through: an atomic request
// never grows the pool, zero zeroes.
void* kmalloc_in(dmakit_kernel& kernel, std::size_t size, Gfp flags, const char* call, const char* file, int line) {
    if (size == 0) [[unlikely]] return ZERO_SIZE_PTR;
    void* object = kernel.kmalloc().kmalloc(size, quiet(flags), call_site(file, line));
    if (object == nullptr) [[unlikely]] {
        auto retry = kernel.kmalloc().try_kmalloc(size, quiet(flags), call_site(file, line));
        if (!retry.ok()) {
            kernel.warn(flags, std::string(call) + "(" + std::to_string(size) + ")" + site(file, line) + ": " +
                                   dmakit::to_string(retry.error()));
            return nullptr;
        }
        object = *retry;
    }
    return object;
}

// The buddy block `page` stands for, when it is one of `order`.
bool is_block_of_order(dmakit_kernel& kernel, const void* page, unsigned order) {
    return kernel.context().pages().block_size(page) == (PAGE_SIZE << order);
}

}  // namespace

extern "C" {

void* dmakit_kmalloc(size_t size, gfp_t flags, const char* file, int line) {
    dmakit_kernel* kernel = current_or_complain("kmalloc");
    if (kernel == nullptr) return nullptr;
    return kmalloc_in(*kernel, size, to_gfp(flags), "kmalloc", file, line);
}

void* dmakit_kcalloc(size_t n, size_t size, gfp_t flags, const char* file, int line) {
    dmakit_kernel* kernel = current_or_complain("kcalloc");
    if (kernel == nullptr) return nullptr;
    size_t bytes = 0;
    if (__builtin_mul_overflow(n, size, &bytes)) {
        kernel->warn(to_gfp(flags), "kcalloc(" + std::to_string(n) + ", " + std::to_string(size) + ")" +
                                        site(file, line) + ": the product overflows; nothing allocated");
        return nullptr;
    }
    return kmalloc_in(*kernel, bytes, to_gfp(flags) | Gfp::zero, "kcalloc", file, line);
}

void* dmakit_krealloc(const void* p, size_t size, gfp_t flags, const char* file, int line) {
    dmakit_kernel* kernel = current_or_complain("krealloc");
    if (kernel == nullptr) return nullptr;
    if (ZERO_OR_NULL_PTR(p)) return kmalloc_in(*kernel, size, to_gfp(flags), "krealloc", file, line);
    if (size == 0) {
        kfree(p);
        return ZERO_SIZE_PTR;
    }
    const std::size_t old_size = kernel->kmalloc().ksize(p);
    if (old_size == 0) {
        kernel->warn(to_gfp(flags), "krealloc" + site(file, line) + ": " +
                                        std::to_string(reinterpret_cast<std::uintptr_t>(p)) +
                                        " is not a kmalloc object of this kernel; nothing changed");
        return nullptr;
    }
    if (size <= old_size) return const_cast<void*>(p);  // fits where it is, as the kernel's
    void* grown = kmalloc_in(*kernel, size, to_gfp(flags & ~__GFP_ZERO), "krealloc", file, line);
    if (grown == nullptr) return nullptr;  // the old object stays valid
    std::memcpy(grown, p, old_size);
    if (dmakit::mem::has(to_gfp(flags), Gfp::zero)) std::memset(static_cast<char*>(grown) + old_size, 0, size - old_size);
    kernel->kmalloc().kfree(const_cast<void*>(p));
    return grown;
}

void kfree(const void* p) {
    if (ZERO_OR_NULL_PTR(p)) return;
    dmakit_kernel* kernel = current_or_complain("kfree");
    if (kernel == nullptr) return;
    kernel->kmalloc().kfree(const_cast<void*>(p));  // refuses foreign pointers and double frees, logged
}

size_t ksize(const void* p) {
    if (ZERO_OR_NULL_PTR(p)) return 0;
    dmakit_kernel* kernel = current_or_complain("ksize");
    return kernel != nullptr ? kernel->kmalloc().ksize(p) : 0;
}

struct kmem_cache* dmakit_kmem_cache_create(const char* name, unsigned int size, unsigned int align,
                                            unsigned int flags, void (*ctor)(void*), const char* file, int line) {
    dmakit_kernel* kernel = current_or_complain("kmem_cache_create");
    if (kernel == nullptr) return nullptr;
    dmakit::mem::SlabCacheOptions options;
    std::size_t alignment = align != 0 ? align : 8;
    if ((flags & SLAB_HWCACHE_ALIGN) != 0 && alignment < 64) alignment = 64;
    options.align = alignment;
    if (ctor != nullptr) options.ctor = [ctor](void* object) { ctor(object); };
    auto slab = dmakit::mem::SlabCache::create(kernel->context().pages(), name != nullptr ? name : "kmem_cache",
                                               size, std::move(options));
    if (!slab.ok()) {
        kernel->logger().warning(std::string("kmem_cache_create(\"") + (name != nullptr ? name : "") + "\", " +
                                 std::to_string(size) + ", align " + std::to_string(align) + ")" + site(file, line) +
                                 ": " + dmakit::to_string(slab.error()));
        return nullptr;
    }
    auto* cache = new kmem_cache{kernel, std::move(*slab)};
    std::lock_guard hold(kernel->caches_lock);
    kernel->caches.push_back(cache);
    return cache;
}

void* dmakit_kmem_cache_alloc(struct kmem_cache* cache, gfp_t flags, const char* file, int line) {
    if (cache == nullptr) return nullptr;
    auto object = cache->slab->try_alloc(quiet(to_gfp(flags)), call_site(file, line));
    if (!object.ok()) {
        cache->kernel->warn(to_gfp(flags), "kmem_cache_alloc(" + cache->slab->name() + ")" + site(file, line) +
                                               ": " + dmakit::to_string(object.error()));
        return nullptr;
    }
    return *object;  // zeroed by the cache when the flags say so
}

void kmem_cache_free(struct kmem_cache* cache, void* object) {
    if (cache == nullptr || object == nullptr) return;
    cache->slab->free(object);  // refuses what is not a live object of this cache, logged
}

void kmem_cache_destroy(struct kmem_cache* cache) {
    if (cache == nullptr) return;
    dmakit_kernel* kernel = cache->kernel;
    {
        std::lock_guard hold(kernel->caches_lock);
        std::erase(kernel->caches, cache);
    }
    const auto info = cache->slab->info();
    if (info.active_objects != 0) {
        // The kernel says "Objects remaining ... on __kmem_cache_shutdown()".
        kernel->logger().warning("kmem_cache_destroy(" + cache->slab->name() + "): " +
                                 std::to_string(info.active_objects) +
                                 " object(s) still allocated; freed with the cache (a leak in the caller)");
    }
    delete cache;
}

struct page* dmakit_alloc_pages(gfp_t flags, unsigned int order, const char* file, int line) {
    dmakit_kernel* kernel = current_or_complain("alloc_pages");
    if (kernel == nullptr) return nullptr;
    auto block = kernel->context().pages().try_alloc_pages(order, quiet(to_gfp(flags)), -1, call_site(file, line));
    if (!block.ok()) {
        kernel->warn(to_gfp(flags), "alloc_pages(order " + std::to_string(order) + ")" + site(file, line) + ": " +
                                        dmakit::to_string(block.error()));
        return nullptr;
    }
    return static_cast<struct page*>(*block);
}

void __free_pages(struct page* page, unsigned int order) {
    if (page == nullptr) return;
    dmakit_kernel* kernel = current_or_complain("__free_pages");
    if (kernel == nullptr) return;
    if (!is_block_of_order(*kernel, page, order)) {
        kernel->logger().warning("__free_pages(order " + std::to_string(order) +
                                 "): not a block of that order from alloc_pages (a double free, a wrong order, "
                                 "or foreign memory); nothing freed");
        return;
    }
    kernel->context().pages().free_pages(page);
}

void* page_address(const struct page* page) { return const_cast<struct page*>(page); }

struct page* virt_to_page(const void* address) {
    dmakit_kernel* kernel = current_or_complain("virt_to_page");
    if (kernel == nullptr || address == nullptr) return nullptr;
    return kernel->context().pages().block_size(address) != 0
               ? static_cast<struct page*>(const_cast<void*>(address))
               : nullptr;
}

void free_pages(unsigned long address, unsigned int order) {
    __free_pages(reinterpret_cast<struct page*>(address), order);
}

void* dmakit_vmalloc(unsigned long size, gfp_t flags, const char* file, int line) {
    dmakit_kernel* kernel = current_or_complain("vmalloc");
    if (kernel == nullptr) return nullptr;
    void* area = kernel->vmalloc(size, to_gfp(flags));
    if (area == nullptr && size != 0) {
        kernel->warn(to_gfp(flags), "vmalloc(" + std::to_string(size) + ")" + site(file, line) + " failed");
    }
    return area;
}

void vfree(const void* address) {
    if (address == nullptr) return;
    dmakit_kernel* kernel = current_or_complain("vfree");
    if (kernel == nullptr) return;
    if (!kernel->vfree(address)) {
        kernel->logger().warning("vfree: not a vmalloc area of this kernel (a double free, or memory from "
                                 "another allocator: kfree/kvfree?); nothing freed");
    }
}

void* dmakit_kvmalloc(size_t size, gfp_t flags, const char* file, int line) {
    dmakit_kernel* kernel = current_or_complain("kvmalloc");
    if (kernel == nullptr) return nullptr;
    // kmalloc first (pool memory, no system call when it fits), then vmalloc.
    void* object = kmalloc_in(*kernel, size, to_gfp(flags) | Gfp::no_warn, "kvmalloc", file, line);
    if (object != nullptr) return object;
    return dmakit_vmalloc(size, flags, file, line);
}

void kvfree(const void* address) {
    if (ZERO_OR_NULL_PTR(address)) return;
    dmakit_kernel* kernel = current_or_complain("kvfree");
    if (kernel == nullptr) return;
    if (kernel->context().pages().region_of(address) != nullptr) {
        kernel->kmalloc().kfree(const_cast<void*>(address));
    } else if (!kernel->vfree(address)) {
        kernel->logger().warning("kvfree: neither a kmalloc object nor a vmalloc area of this kernel; nothing freed");
    }
}

}  // extern "C"
