#include <dmakit/mem/kmalloc.hpp>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace dmakit::mem {

Result<std::unique_ptr<Kmalloc>> Kmalloc::create(BuddyAllocator& buddy, KmallocOptions options) {
    auto kmalloc = std::unique_ptr<Kmalloc>(new Kmalloc(buddy));
    for (std::size_t i = 0; i < kClassSizes.size(); ++i) {
        const std::size_t size = kClassSizes[i];
        SlabCacheOptions cache_options;
        // Natural alignment: the largest power of two dividing the size.
        cache_options.align = std::min<std::size_t>(size & (~size + 1), kPageSize);
        cache_options.debug = options.debug;
        cache_options.debug_options = options.debug_options;
        cache_options.tracked_as = AllocKind::kmalloc;
        DMAKIT_ASSIGN_OR_RETURN(kmalloc->caches_[i],
                                SlabCache::create(buddy, "kmalloc-" + std::to_string(size), size,
                                                  std::move(cache_options)));
    }
    return kmalloc;
}

void* Kmalloc::kzalloc(std::size_t size, Gfp flags, CallSite site) noexcept {
    return kmalloc(size, flags | Gfp::zero, site);
}

void* Kmalloc::alloc_large(std::size_t size, Gfp flags, CallSite site) noexcept {
    void* block = buddy_.alloc_pages(order_for_bytes(size), flags, site);
    if (block != nullptr) {
        if (LeakTracker* leaks = buddy_.leak_tracker()) leaks->retag(block, AllocKind::kmalloc);
    }
    return block;
}

Result<void*> Kmalloc::try_kmalloc(std::size_t size, Gfp flags, CallSite site) {
    if (size == 0) return Error(EINVAL, "kmalloc of zero bytes");
    if (size <= kMaxSlabSize) return caches_[class_index(size)]->try_alloc(flags, site);
    if (size > order_bytes(kMaxOrder)) {
        return Error(EINVAL, "kmalloc of " + std::to_string(size) +
                                 " bytes is past the largest block (1 GiB)");
    }
    auto block = buddy_.try_alloc_pages(order_for_bytes(size), flags, -1, site);
    if (block.ok()) {
        if (LeakTracker* leaks = buddy_.leak_tracker()) leaks->retag(*block, AllocKind::kmalloc);
    }
    return block;
}

void Kmalloc::kfree(void* object) noexcept {
    if (object == nullptr) return;
    if (const PageDesc* desc = buddy_.desc_of(object)) {
        if (Slab* slab = desc->slab) {
            slab->cache->free(object);
            return;
        }
    }
    buddy_.free_pages(object);  // refuses (and reports) anything else
}

Status Kmalloc::try_kfree(void* object) {
    if (object == nullptr) return {};
    if (const PageDesc* desc = buddy_.desc_of(object)) {
        if (Slab* slab = desc->slab) return slab->cache->try_free(object);
    }
    return buddy_.try_free_pages(object);
}

std::size_t Kmalloc::ksize(const void* object) const noexcept {
    const PageDesc* desc = buddy_.desc_of(object);
    if (object == nullptr || desc == nullptr) return 0;
    if (const Slab* slab = desc->slab) {
        std::uint32_t index;
        return slab->cache->slab_of(object, &index) != nullptr ? slab->cache->object_size() : 0;
    }
    return buddy_.block_size(object);
}

std::vector<SlabInfo> Kmalloc::slabinfo() const {
    std::vector<SlabInfo> result;
    for (const auto& cache : caches_) result.push_back(cache->info());
    return result;
}

std::string Kmalloc::format_slabinfo() const {
    std::ostringstream out;
    out << "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> "
           ": slabdata <active_slabs> <num_slabs>\n";
    for (const SlabInfo& info : slabinfo()) {
        out << info.name;
        for (std::size_t pad = info.name.size(); pad < 17; ++pad) out << ' ';
        out << ' ' << info.active_objects << ' ' << info.total_objects << ' ' << info.stride << ' '
            << (info.pages_per_slab * kPageSize / info.stride) << ' ' << info.pages_per_slab
            << " : slabdata " << info.slabs << ' ' << info.slabs << '\n';
    }
    return out.str();
}

void Kmalloc::drain_thread_caches() noexcept {
    for (auto& cache : caches_) cache->drain_thread_cache();
}

}  // namespace dmakit::mem
