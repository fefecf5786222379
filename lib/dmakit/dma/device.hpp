// DmaDevice: one device's view of the DMA API (struct device + dma_map_ops).
//
// The calls are the kernel's (include/linux/dma-mapping.h) with C++ types:
// results are [[nodiscard]] Result values instead of DMA_MAPPING_ERROR, device
// addresses are DmaAddr, buffers are move-only handles. Memory comes from the
// DmaContext the device belongs to, and what the device can reach depends on
// the context's IommuPolicy (types.hpp, docs/dma.md):
//   - pool memory under IommuPolicy::pool (buffers from alloc_coherent,
//     DmaPool, the context's allocators): its pool region is mapped
//     read-write once, so map_single/unmap_single cost a lookup, no system call;
//   - memory inside a live explicit registration (register_memory): a cache
//     hit on that registration, no system call;
//   - anything else (foreign memory, and every buffer under
//     IommuPolicy::strict): exactly the 4 KiB pages that cover the buffer are
//     mapped, with the permission the direction implies (to_device: the
//     device may only read; from_device: only write; bidirectional: both),
//     and unmapped at unmap — Linux's default strict IOMMU mode.
// Coherent buffers under IommuPolicy::strict get their own read-write IOMMU
// mapping, torn down when they are freed.
//
// Every live streaming mapping is known by (device address, length,
// direction) in every build (LiveMappings, the library's own table): an unmap
// or sync that matches none is refused with EINVAL and changes nothing. With debug on, the
// refusal is also explained (debug.hpp).
//
// Ownership rule for streaming mappings (Documentation/core-api/dma-api.rst):
// between map and unmap the buffer belongs to the device. To look at it in
// between, the CPU takes it back with sync_*_for_cpu and hands it over again
// with sync_*_for_device. On x86 the hardware keeps caches coherent, so the
// syncs are ordering points only: for_cpu is an acquire fence (reads of the
// buffer happen after the completion that announced it), for_device a
// release fence (the CPU's writes are visible before the doorbell that tells
// the device to look).
//
// Thread-safe: a device may be used from several threads at once.
#pragma once

#include <dmakit/dma/coherent.hpp>
#include <dmakit/dma/context.hpp>
#include <dmakit/dma/large_buffer.hpp>
#include <dmakit/dma/mapped_scatter_list.hpp>
#include <dmakit/dma/scatterlist.hpp>
#include <dmakit/dma/segments.hpp>
#include <dmakit/dma/streaming_mapping.hpp>
#include <dmakit/dma/types.hpp>
#include <dmakit/mem/call_site.hpp>
#include <dmakit/mem/gfp.hpp>
#include <dmakit/support/result.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <source_location>
#include <string>

namespace dmakit::dma {

// The library's own (not installed): every live streaming mapping of a device.
class LiveMappings;
struct LiveMapping;

class DmaDevice {
public:
    // Every call takes the caller's site (file:line) for DMA-API debug and
    // leak tracking; C code passes mem::CallSite{__FILE__, __LINE__}.
    //
    // `name` identifies the device in messages and debug reports (its PCI
    // address). The context must outlive the device.
    DmaDevice(DmaContext& context, std::string name);
    // Streaming mappings still live are unmapped (the device must not reach
    // memory through a closed handle) and counted in a warning; with debug on
    // each is reported with the call site that made it.
    ~DmaDevice();
    DmaDevice(const DmaDevice&) = delete;
    DmaDevice& operator=(const DmaDevice&) = delete;

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] DmaContext& context() noexcept { return context_; }

    // dma_set_mask / dma_set_coherent_mask: the highest address the device
    // can generate for streaming / coherent DMA (dma_bit_mask(n)). EIO when
    // no usable device address lies below the mask, or pool memory is
    // already mapped above it (the message says how to configure the pool).
    [[nodiscard]] Status set_mask(std::uint64_t mask);
    [[nodiscard]] Status set_coherent_mask(std::uint64_t mask);
    [[nodiscard]] Status set_mask_and_coherent(std::uint64_t mask);
    [[nodiscard]] std::uint64_t mask() const noexcept { return mask_.load(std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t coherent_mask() const noexcept {
        return coherent_mask_.load(std::memory_order_relaxed);
    }
    // dma_set_max_seg_size / dma_set_seg_boundary, used by map_sg.
    void set_segment_limits(SegmentLimits limits) noexcept { limits_ = limits; }
    [[nodiscard]] const SegmentLimits& segment_limits() const noexcept { return limits_; }

    // dev_to_node / set_dev_node: the NUMA node the device sits on (-1: no
    // preference). PciDomain sets it from sysfs (bus/pci/devices/ADDR/
    // numa_node); set_numa_node overrides it, EINVAL for a node that does
    // not exist. Coherent buffers and DmaPool slabs come from this node.
    [[nodiscard]] int numa_node() const noexcept { return numa_node_.load(std::memory_order_relaxed); }
    [[nodiscard]] Status set_numa_node(int node);

    // dma_alloc_coherent: zeroed memory of at least `size` bytes from the
    // page allocator, aligned to its power-of-two size, below the coherent
    // mask, from the device's NUMA node when it has one. Flags (mem/gfp.hpp):
    // without Gfp::may_grow only pool memory already there (never a system
    // call; under IommuPolicy::strict that is refused, since each buffer
    // needs its own map); Gfp::dma32 puts it below 4 GiB device address;
    // a failure is logged unless Gfp::no_warn. Always zeroed.
    [[nodiscard]] Result<CoherentBuffer> alloc_coherent(
        std::size_t size, mem::Gfp flags = mem::gfp_kernel,
        mem::CallSite site = std::source_location::current());

    // dma_map_single / dma_unmap_single for any memory.
    [[nodiscard]] Result<DmaAddr> map_single(
        void* cpu, std::size_t length, DmaDirection dir,
        mem::CallSite site = std::source_location::current());
    [[nodiscard]] Status unmap_single(DmaAddr addr, std::size_t length, DmaDirection dir,
                                      mem::CallSite site = std::source_location::current());

    // dma_map_page / dma_unmap_page: like map_single for [page + offset, +length).
    [[nodiscard]] Result<DmaAddr> map_page(
        void* page, std::size_t offset, std::size_t length, DmaDirection dir,
        mem::CallSite site = std::source_location::current());
    [[nodiscard]] Status unmap_page(DmaAddr addr, std::size_t length, DmaDirection dir,
                                    mem::CallSite site = std::source_location::current());

    // dma_map_sg / dma_unmap_sg: maps every entry (all or nothing) and fills
    // list.segments(); returns their count.
    [[nodiscard]] Result<std::size_t> map_sg(
        ScatterList& list, DmaDirection dir,
        mem::CallSite site = std::source_location::current());
    [[nodiscard]] Status unmap_sg(ScatterList& list, DmaDirection dir,
                                  mem::CallSite site = std::source_location::current());

    // The same mappings as handles that unmap themselves (streaming_mapping.hpp,
    // mapped_scatter_list.hpp): map_single of [cpu, +length), and map_sg of a
    // list the handle then owns (on failure `list` is left as it was). For
    // code where a mapping lives in a scope or an object; hot paths that keep
    // addresses in rings use the raw calls above.
    [[nodiscard]] Result<StreamingMapping> map(
        void* cpu, std::size_t length, DmaDirection dir,
        mem::CallSite site = std::source_location::current());
    [[nodiscard]] Result<MappedScatterList> map(
        ScatterList&& list, DmaDirection dir,
        mem::CallSite site = std::source_location::current());

    // dma_sync_single_for_cpu / _for_device: `addr` is what map_* returned,
    // `length` at most the mapping's length, `dir` the mapping's direction
    // (a bidirectional mapping accepts any). Anything else is refused with
    // EINVAL. An inner address is accepted too but found by a scan; use the
    // _range forms (dma_sync_single_range_for_*) to stay O(1).
    [[nodiscard]] Status sync_single_for_cpu(DmaAddr addr, std::size_t length, DmaDirection dir,
                                             mem::CallSite site = std::source_location::current());
    [[nodiscard]] Status sync_single_for_device(DmaAddr addr, std::size_t length, DmaDirection dir,
                                                mem::CallSite site = std::source_location::current());
    [[nodiscard]] Status sync_single_range_for_cpu(
        DmaAddr addr, std::size_t offset, std::size_t length, DmaDirection dir,
        mem::CallSite site = std::source_location::current());
    [[nodiscard]] Status sync_single_range_for_device(
        DmaAddr addr, std::size_t offset, std::size_t length, DmaDirection dir,
        mem::CallSite site = std::source_location::current());
    [[nodiscard]] Status sync_sg_for_cpu(const ScatterList& list, DmaDirection dir,
                                         mem::CallSite site = std::source_location::current());
    [[nodiscard]] Status sync_sg_for_device(const ScatterList& list, DmaDirection dir,
                                            mem::CallSite site = std::source_location::current());

    // Streaming mappings live now (map_* not yet unmapped).
    [[nodiscard]] std::size_t live_mappings() const;

    // A large buffer from 4 KiB pages, contiguous for the device and the CPU
    // but not physically (see large_buffer.hpp). Zeroed.
    [[nodiscard]] Result<LargeBuffer> alloc_large(
        std::size_t size, mem::CallSite site = std::source_location::current());

private:
    friend class CoherentBuffer;
    friend class LargeBuffer;

    [[nodiscard]] Result<CoherentBuffer> allocate_coherent(std::size_t size, mem::Gfp flags,
                                                           mem::CallSite site);
    [[nodiscard]] Result<DmaAddr> map_any(void* cpu, std::size_t length, MappingKind kind,
                                          DmaDirection dir, mem::CallSite site);
    [[nodiscard]] Status unmap_any(DmaAddr addr, std::size_t length, MappingKind kind,
                                   DmaDirection dir, mem::CallSite site);
    [[nodiscard]] Result<LiveMapping> map_exact(void* cpu, std::size_t length, DmaDirection dir,
                                                std::uint64_t mask);
    [[nodiscard]] Status release_backing(const LiveMapping& mapping);
    [[nodiscard]] Error refusal(const char* call, DmaAddr addr, std::size_t length,
                                DmaDirection dir) const;
    [[nodiscard]] Status check_sync(DmaAddr addr, std::size_t offset, std::size_t length,
                                    DmaDirection dir, bool for_cpu, mem::CallSite site);
    [[nodiscard]] Status check_mask_against_pool(std::uint64_t mask, const char* which) const;
    [[nodiscard]] bool strict() const noexcept {
        return context_.config().policy == IommuPolicy::strict;
    }
    void free_coherent(void* cpu, DmaAddr dma, std::size_t size) noexcept;
    void free_large(LargeBuffer& buffer) noexcept;

    DmaContext& context_;
    std::string name_;
    std::atomic<std::uint64_t> mask_{dma_bit_mask(32)};  // the kernel's default
    std::atomic<std::uint64_t> coherent_mask_{dma_bit_mask(32)};
    std::atomic<int> numa_node_{-1};
    SegmentLimits limits_;
    std::unique_ptr<LiveMappings> live_;  // the library's own (not installed)
    mem::LeakTracker* leaks_;  // null unless leak tracking is on
    std::uint32_t leak_owner_ = 0;
};

}  // namespace dmakit::dma
