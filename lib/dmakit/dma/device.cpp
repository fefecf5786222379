#include <dmakit/dma/device.hpp>

#include <dmakit/internal/mapping_table.hpp>
#include <dmakit/support/mmio.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <sys/mman.h>
#include <utility>

namespace dmakit::dma {
namespace {

constexpr std::size_t kPage = 4096;

std::string bytes_text(std::size_t n) { return std::to_string(n) + " bytes"; }

// The IOMMU permission a direction implies (Linux dma-iommu's
// dma_info_to_prot): the device reads what goes to it and writes what comes
// from it. VFIO type1 takes write-only as asked, but Linux's VT-d driver
// from 5.12 until a 2025 fix also grants read in every second-level entry,
// so from_device is read+write there (docs/dma.md, vm_dma_isolation).
iommu::Access access_for(DmaDirection dir) noexcept {
    switch (dir) {
        case DmaDirection::to_device: return iommu::Access::read;
        case DmaDirection::from_device: return iommu::Access::write;
        case DmaDirection::bidirectional: break;
    }
    return iommu::Access::read_write;
}

}  // namespace

DmaDevice::DmaDevice(DmaContext& context, std::string name)
    : context_(context),
      name_(std::move(name)),
      live_(std::make_unique<LiveMappings>()),
      leaks_(context.leak_tracker()) {
    if (leaks_ != nullptr) leak_owner_ = leaks_->register_owner(name_);
}

std::size_t DmaDevice::live_mappings() const { return live_->size(); }

DmaDevice::~DmaDevice() {
    if (DmaDebug* debug = context_.debug()) debug->check_device_close(name_);
    const auto leaked = live_->snapshot();
    for (const LiveMapping& mapping : leaked) {
        auto status = release_backing(mapping);
        if (!status.ok()) context_.logger().warning(name_ + ": " + dmakit::to_string(status.error()));
    }
    if (!leaked.empty()) {
        context_.logger().warning(name_ + ": " + std::to_string(leaked.size()) +
                                  " streaming mapping(s) were still live when the device closed; "
                                  "they were unmapped (unmap what you map)");
    }
    // Their records stay in the leak report, marked released.
    if (leaks_ != nullptr) leaks_->owner_gone(leak_owner_);
}

// ---- masks ---------------------------------------------------------------

Status DmaDevice::check_mask_against_pool(std::uint64_t mask, const char* which) const {
    bool reachable = false;
    for (const auto& range : context_.domain().usable_ranges()) {
        if (range.start <= mask && range.last >= range.start) reachable = true;
    }
    if (!reachable) {
        return Error(EIO, name_ + ": " + which + " " + iommu::to_hex(mask) +
                              " is below every usable device address of the IOMMU domain");
    }
    if (strict()) return {};  // no pool window: every mapping is placed below the mask at map time
    std::uint64_t top = context_.pool_dma_top();
    if (top > mask) {
        return Error(EIO, name_ + ": " + which + " " + iommu::to_hex(mask) +
                              " cannot be met: pool memory is already mapped up to " +
                              iommu::to_hex(top) +
                              "; create the DmaContext with pool_dma_mask <= the device's mask");
    }
    if (context_.config().pool_dma_mask > mask) {
        return Error(EIO, name_ + ": " + which + " " + iommu::to_hex(mask) +
                              " is narrower than the context's pool window (pool_dma_mask " +
                              iommu::to_hex(context_.config().pool_dma_mask) +
                              "); create the DmaContext with pool_dma_mask <= the device's mask");
    }
    return {};
}

Status DmaDevice::set_mask(std::uint64_t mask) {
    DMAKIT_TRY(check_mask_against_pool(mask, "DMA mask"));
    mask_.store(mask, std::memory_order_relaxed);
    return {};
}

Status DmaDevice::set_coherent_mask(std::uint64_t mask) {
    DMAKIT_TRY(check_mask_against_pool(mask, "coherent DMA mask"));
    coherent_mask_.store(mask, std::memory_order_relaxed);
    return {};
}

Status DmaDevice::set_mask_and_coherent(std::uint64_t mask) {
    DMAKIT_TRY(set_mask(mask));
    return set_coherent_mask(mask);
}

// ---- NUMA ----------------------------------------------------------------

Status DmaDevice::set_numa_node(int node) {
    DMAKIT_TRY(context_.pages().topology().check_node(node, name_));
    numa_node_.store(node, std::memory_order_relaxed);
    return {};
}

// ---- coherent ------------------------------------------------------------

Result<CoherentBuffer> DmaDevice::alloc_coherent(std::size_t size, mem::Gfp flags,
                                                 mem::CallSite site) {
    auto buffer = allocate_coherent(size, flags, site);
    if (!buffer.ok() && !has(flags, mem::Gfp::no_warn)) context_.logger().warning(dmakit::to_string(buffer.error()));
    return buffer;
}

Result<CoherentBuffer> DmaDevice::allocate_coherent(std::size_t size, mem::Gfp flags,
                                                    mem::CallSite site) {
    using mem::Gfp;
    if (size == 0) return Error(EINVAL, name_ + ": alloc_coherent of 0 bytes");
    // Under the strict policy every coherent buffer is an IOMMU map of its
    // own: a system call an atomic allocation may not make.
    if (strict() && !has(flags, Gfp::may_grow)) {
        return Error(ENOMEM, name_ + ": atomic alloc_coherent (no Gfp::may_grow) is impossible "
                                     "under IommuPolicy::strict, where each buffer needs its own "
                                     "IOMMU map (a system call); allocate with gfp_kernel, or "
                                     "use IommuPolicy::pool");
    }
    if (size > (std::size_t{1} << (mem::kMaxOrder + 12))) {
        return Error(EINVAL, name_ + ": alloc_coherent of " + bytes_text(size) +
                                 " is larger than the largest block (1 GiB); use alloc_large");
    }
    const std::size_t pages = (size + kPage - 1) / kPage;
    const auto order = static_cast<unsigned>(std::bit_width(std::bit_ceil(pages)) - 1);
    // The page allocator logs nothing: this call does, once. DMA32 is the
    // pool's zone under the pool policy; under strict the IOMMU map below
    // places it. Coherent memory is zeroed below in any case.
    const Gfp page_flags = (flags & Gfp::may_grow) | Gfp::no_warn |
                           (strict() ? Gfp::none : (flags & Gfp::dma32));
    auto block = context_.pages().try_alloc_pages(order, page_flags, numa_node(), site);
    if (!block.ok()) {
        Error error = std::move(block).error().with_context(name_ + ": alloc_coherent of " + bytes_text(size));
        if (has(flags, Gfp::dma32) && error.code() == ENOMEM) {
            const char* first = has(flags, Gfp::may_grow)
                                    ? "free device addresses below 4 GiB (unmap what lies there)"
                                    : "allocate with gfp_kernel (the pool then grows a region "
                                      "below 4 GiB)";
            return Error(ENOMEM, error.message() + "; for DMA32 memory, " + first +
                                     ", or create the DmaContext with pool_dma_mask = "
                                     "dma_bit_mask(32) so that all pool memory lies below 4 GiB");
        }
        return error;
    }
    void* cpu = *block;
    std::optional<DmaAddr> dma;
    if (strict()) {
        // Its own read-write mapping, below the coherent mask, torn down at free.
        iommu::MapOptions options;
        options.dma_mask = coherent_mask();
        if (has(flags, Gfp::dma32)) options.dma_mask = std::min(options.dma_mask, dma_bit_mask(32));
        auto mapped = context_.domain().map(cpu, pages * kPage, iommu::Access::read_write, options);
        if (!mapped.ok()) {
            context_.pages().free_pages(cpu);
            return std::move(mapped).error().with_context(name_ + ": alloc_coherent of " +
                                                          bytes_text(size));
        }
        dma = DmaAddr(mapped->iova);
    } else {
        dma = context_.pool_dma_address(cpu);
        if (!dma) {
            context_.pages().free_pages(cpu);
            return Error(EIO, name_ + ": pool memory has no device address (region not mapped)");
        }
        if (dma->value() + (size - 1) > coherent_mask()) {
            context_.pages().free_pages(cpu);
            return Error(EIO, name_ + ": pool memory at " + iommu::to_hex(dma->value()) +
                                  " is above the coherent mask " + iommu::to_hex(coherent_mask()));
        }
    }
    std::memset(cpu, 0, size);
    if (leaks_ != nullptr) leaks_->retag(cpu, mem::AllocKind::dma_coherent);
    if (DmaDebug* debug = context_.debug()) {
        debug->record_map(MappingKind::coherent, name_, *dma, size, DmaDirection::bidirectional, site);
    }
    return CoherentBuffer(this, cpu, *dma, size);
}

void DmaDevice::free_coherent(void* cpu, DmaAddr dma, std::size_t size) noexcept {
    if (DmaDebug* debug = context_.debug()) {
        (void)debug->record_unmap(MappingKind::coherent, name_, dma, size,
                                  DmaDirection::bidirectional, std::source_location::current());
    }
    if (strict()) {
        // Unmapped before the pages can be reused. If the kernel refuses, the
        // pages stay out of the allocator: the device may still reach them.
        auto status = context_.domain().unmap(dma.value());
        if (!status.ok()) {
            context_.logger().warning(name_ + ": freeing a coherent buffer: " +
                                      dmakit::to_string(status.error()) + "; its pages are not reused");
            return;
        }
    }
    context_.pages().free_pages(cpu);
}

CoherentBuffer& CoherentBuffer::operator=(CoherentBuffer&& other) noexcept {
    if (this != &other) {
        reset();
        device_ = std::exchange(other.device_, nullptr);
        cpu_ = std::exchange(other.cpu_, nullptr);
        dma_ = std::exchange(other.dma_, DmaAddr());
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

void CoherentBuffer::reset() noexcept {
    if (cpu_ != nullptr && device_ != nullptr) device_->free_coherent(cpu_, dma_, size_);
    device_ = nullptr;
    cpu_ = nullptr;
    size_ = 0;
}

// ---- streaming -----------------------------------------------------------

Result<LiveMapping> DmaDevice::map_exact(void* cpu, std::size_t length, DmaDirection dir,
                                         std::uint64_t mask) {
    // Exactly the 4 KiB pages that cover the buffer: the device reaches
    // nothing else of the process, and only the way `dir` allows.
    const auto start = reinterpret_cast<std::uintptr_t>(cpu);
    const std::uintptr_t first_page = start & ~(kPage - 1);
    const std::uintptr_t end_page = (start + length + kPage - 1) & ~(kPage - 1);
    if (end_page < start) {
        return Error(EOVERFLOW, name_ + ": buffer at " + iommu::to_hex(start) + " of " +
                                    bytes_text(length) + " overflows the address space");
    }
    iommu::MapOptions options;
    options.dma_mask = mask;
    auto mapped = context_.domain().map(reinterpret_cast<const void*>(first_page),
                                        end_page - first_page, access_for(dir), options);
    if (!mapped.ok()) return std::move(mapped).error().with_context(name_);
    LiveMapping mapping;
    mapping.addr = DmaAddr(mapped->iova + (start - first_page));
    mapping.handle = mapped->iova;
    mapping.backing = MappingBacking::exact;
    return mapping;
}

Result<DmaAddr> DmaDevice::map_any(void* cpu, std::size_t length, MappingKind kind,
                                   DmaDirection dir, mem::CallSite site) {
    if (length == 0) return Error(EINVAL, name_ + ": cannot map 0 bytes for DMA");
    const auto start = reinterpret_cast<std::uintptr_t>(cpu);
    if (cpu == nullptr || start + length < start) {
        return Error(EOVERFLOW, name_ + ": buffer at " + iommu::to_hex(start) + " of " +
                                    bytes_text(length) + " overflows the address space");
    }
    const std::uint64_t mask = mask_.load(std::memory_order_relaxed);
    LiveMapping mapping;
    const mem::Region* region = context_.pages().region_of(cpu);
    if (region != nullptr && !strict()) {
        // Pool memory: mapped once with its region, translated in O(1).
        const auto offset = static_cast<std::size_t>(static_cast<std::byte*>(cpu) - region->cpu_base());
        const auto base = region->dma_base();
        if (!base || length > region->length() - offset) {
            return Error(EINVAL, name_ + ": buffer of " + bytes_text(length) +
                                     " runs past the end of its pool region");
        }
        mapping.addr = DmaAddr(*base + offset);
        if (mapping.addr.value() + (length - 1) > mask) {
            return Error(EIO, name_ + ": pool memory at " + iommu::to_hex(mapping.addr.value()) +
                                  " is above the DMA mask " + iommu::to_hex(mask));
        }
    } else if (auto hit = region == nullptr ? context_.registrations().acquire(cpu, length, mask)
                                             : std::nullopt) {
        mapping.addr = hit->addr;
        mapping.handle = hit->extent;
        mapping.backing = MappingBacking::registered;
    } else {
        DMAKIT_ASSIGN_OR_RETURN(mapping, map_exact(cpu, length, dir, mask));
    }
    mapping.length = length;
    mapping.dir = dir;
    mapping.kind = kind;
    live_->insert(mapping);
    if (leaks_ != nullptr) leaks_->record_mapping(leak_owner_, mapping.addr.value(), length, site);
    if (DmaDebug* debug = context_.debug()) debug->record_map(kind, name_, mapping.addr, length, dir, site);
    return mapping.addr;
}

Status DmaDevice::release_backing(const LiveMapping& mapping) {
    switch (mapping.backing) {
        case MappingBacking::pool: return {};  // stays mapped with its region
        case MappingBacking::registered: return context_.registrations().release(mapping.handle);
        case MappingBacking::exact: return context_.domain().unmap(mapping.handle);
    }
    return {};
}

Error DmaDevice::refusal(const char* call, DmaAddr addr, std::size_t length, DmaDirection dir) const {
    std::string text = name_ + ": " + call + " of " + iommu::to_hex(addr.value()) + " (" +
                       bytes_text(length) + ", " + std::string(to_string(dir)) + ") refused: ";
    if (auto there = live_->find_start(addr, dir)) {
        text += "the live mapping at that address is " + bytes_text(there->length) + ", " +
                std::string(to_string(there->dir)) + "; unmap with the length and direction it "
                "was mapped with";
    } else {
        text += "no live mapping of this device starts there (unmapped already, never mapped, "
                "or not the address map returned)";
    }
    return Error(EINVAL, text + "; nothing was changed");
}

Status DmaDevice::unmap_any(DmaAddr addr, std::size_t length, MappingKind kind, DmaDirection dir,
                            mem::CallSite site) {
    auto removed = live_->remove(addr, length, dir);
    if (!removed) {
        if (DmaDebug* debug = context_.debug()) debug->explain_refused_unmap(kind, name_, addr, length, dir, site);
        return refusal("unmap", addr, length, dir);
    }
    if (DmaDebug* debug = context_.debug()) (void)debug->record_unmap(kind, name_, addr, length, dir, site);
    if (leaks_ != nullptr) leaks_->forget_mapping(leak_owner_, addr.value());
    auto status = release_backing(*removed);
    if (!status.ok()) return std::move(status).error().with_context(name_ + ": unmap");
    return {};
}

Result<DmaAddr> DmaDevice::map_single(void* cpu, std::size_t length, DmaDirection dir,
                                      mem::CallSite site) {
    return map_any(cpu, length, MappingKind::single, dir, site);
}

Status DmaDevice::unmap_single(DmaAddr addr, std::size_t length, DmaDirection dir,
                               mem::CallSite site) {
    return unmap_any(addr, length, MappingKind::single, dir, site);
}

Result<StreamingMapping> DmaDevice::map(void* cpu, std::size_t length, DmaDirection dir,
                                       mem::CallSite site) {
    DMAKIT_ASSIGN_OR_RETURN(DmaAddr addr, map_any(cpu, length, MappingKind::single, dir, site));
    return StreamingMapping(this, cpu, addr, length, dir, site);
}

Result<MappedScatterList> DmaDevice::map(ScatterList&& list, DmaDirection dir, mem::CallSite site) {
    DMAKIT_TRY(map_sg(list, dir, site));  // all or nothing: on failure `list` is as it was
    return MappedScatterList(this, std::move(list), dir, site);
}

Result<DmaAddr> DmaDevice::map_page(void* page, std::size_t offset, std::size_t length,
                                    DmaDirection dir, mem::CallSite site) {
    if (page == nullptr) return Error(EINVAL, name_ + ": map_page of a null page");
    return map_any(static_cast<std::byte*>(page) + offset, length, MappingKind::page, dir, site);
}

Status DmaDevice::unmap_page(DmaAddr addr, std::size_t length, DmaDirection dir,
                             mem::CallSite site) {
    return unmap_any(addr, length, MappingKind::page, dir, site);
}

Result<std::size_t> DmaDevice::map_sg(ScatterList& list, DmaDirection dir, mem::CallSite site) {
    if (list.mapped_) return Error(EBUSY, name_ + ": scatter list is already mapped");
    if (list.entries_.empty()) return Error(EINVAL, name_ + ": map_sg of an empty scatter list");
    std::vector<DmaSegment> pieces;
    pieces.reserve(list.entries_.size());
    list.entry_addresses_.clear();
    for (const ScatterEntry& entry : list.entries_) {
        auto addr = map_any(entry.cpu, entry.length, MappingKind::sg, dir, site);
        if (!addr.ok()) {
            // All or nothing: give back what this call mapped.
            for (std::size_t i = 0; i < list.entry_addresses_.size(); ++i) {
                (void)unmap_any(list.entry_addresses_[i], list.entries_[i].length, MappingKind::sg,
                                dir, site);
            }
            list.entry_addresses_.clear();
            return std::move(addr).error().with_context(
                "map_sg entry " + std::to_string(pieces.size()) + " of " +
                std::to_string(list.entries_.size()));
        }
        list.entry_addresses_.push_back(*addr);
        pieces.push_back({*addr, entry.length});
    }
    list.segments_ = shape_segments(pieces, limits_);
    list.mapped_ = true;
    return list.segments_.size();
}

Status DmaDevice::unmap_sg(ScatterList& list, DmaDirection dir, mem::CallSite site) {
    if (!list.mapped_) return Error(EINVAL, name_ + ": unmap_sg of a scatter list that is not mapped");
    Status first_error;
    // Entries added after map_sg were never mapped: unmap what was.
    for (std::size_t i = 0; i < list.entry_addresses_.size(); ++i) {
        auto status = unmap_any(list.entry_addresses_[i], list.entries_[i].length, MappingKind::sg,
                                dir, site);
        if (!status.ok() && first_error.ok()) first_error = std::move(status);
    }
    list.entry_addresses_.clear();
    list.segments_.clear();
    list.mapped_ = false;
    return first_error;
}

// ---- sync ----------------------------------------------------------------

Status DmaDevice::check_sync(DmaAddr addr, std::size_t offset, std::size_t length, DmaDirection dir,
                             bool for_cpu, mem::CallSite site) {
    const char* call = for_cpu ? "sync_for_cpu" : "sync_for_device";
    const DmaAddr target = addr + offset;
    auto fail = [&](DmaDebug::Problem problem, std::string why) -> Status {
        std::string what = std::string(call) + " of " + iommu::to_hex(target.value()) + " (" +
                           bytes_text(length) + ", " + std::string(to_string(dir)) + ") refused: " + why;
        if (DmaDebug* debug = context_.debug()) debug->report_sync(problem, name_, what, site);
        return Error(EINVAL, name_ + ": " + what + "; nothing was changed");
    };
    if (offset > ~std::uint64_t{0} - addr.value()) {
        return fail(DmaDebug::Problem::sync_out_of_range, "the offset overflows");
    }
    auto mapping = live_->find_start(addr, dir, offset + length);
    if (!mapping) mapping = live_->find_containing(target, length == 0 ? 1 : length);
    if (!mapping) {
        if (length != 0 && (mapping = live_->find_containing(target, 1))) {
            return fail(DmaDebug::Problem::sync_out_of_range,
                        "it runs past the end of the " + bytes_text(mapping->length) +
                            " mapping at " + iommu::to_hex(mapping->addr.value()));
        }
        return fail(DmaDebug::Problem::sync_never_mapped, "no live mapping of this device holds it");
    }
    // A sync names the direction the mapping was made with; a bidirectional
    // mapping accepts any (kernel/dma/debug.c check_sync).
    if (mapping->dir != DmaDirection::bidirectional && dir != mapping->dir) {
        return fail(DmaDebug::Problem::sync_wrong_direction,
                    "the mapping was made " + std::string(to_string(mapping->dir)));
    }
    const std::uint64_t inside = target.value() - mapping->addr.value();
    if (inside > mapping->length || length > mapping->length - inside) {
        return fail(DmaDebug::Problem::sync_out_of_range,
                    "it runs past the end of the " + bytes_text(mapping->length) + " mapping at " +
                        iommu::to_hex(mapping->addr.value()));
    }
    return {};
}

Status DmaDevice::sync_single_for_cpu(DmaAddr addr, std::size_t length, DmaDirection dir,
                                      mem::CallSite site) {
    return sync_single_range_for_cpu(addr, 0, length, dir, site);
}

Status DmaDevice::sync_single_for_device(DmaAddr addr, std::size_t length, DmaDirection dir,
                                         mem::CallSite site) {
    return sync_single_range_for_device(addr, 0, length, dir, site);
}

Status DmaDevice::sync_single_range_for_cpu(DmaAddr addr, std::size_t offset, std::size_t length,
                                            DmaDirection dir, mem::CallSite site) {
    DMAKIT_TRY(check_sync(addr, offset, length, dir, true, site));
    // The device's writes were announced by something the CPU already read
    // (a completion entry, a descriptor's done bit); reads of the buffer must
    // not be hoisted above that. On x86 loads are not reordered with loads,
    // so this is a compiler barrier (dma_rmb; an atomic_thread_fence would
    // be the same on x86, but GCC's ThreadSanitizer build rejects it).
    mmio::dma_rmb();
    return {};
}

Status DmaDevice::sync_single_range_for_device(DmaAddr addr, std::size_t offset, std::size_t length,
                                               DmaDirection dir, mem::CallSite site) {
    DMAKIT_TRY(check_sync(addr, offset, length, dir, false, site));
    // The CPU's writes must be visible before whatever tells the device to
    // look (a doorbell write). x86 keeps stores in order, so this is a
    // compiler barrier too (dma_wmb); the doorbell accessor adds what MMIO
    // needs.
    mmio::dma_wmb();
    return {};
}

Status DmaDevice::sync_sg_for_cpu(const ScatterList& list, DmaDirection dir, mem::CallSite site) {
    if (!list.mapped_) return Error(EINVAL, name_ + ": sync_sg_for_cpu of a scatter list that is not mapped");
    for (std::size_t i = 0; i < list.entry_addresses_.size(); ++i) {
        DMAKIT_TRY(check_sync(list.entry_addresses_[i], 0, list.entries_[i].length, dir, true, site));
    }
    mmio::dma_rmb();
    return {};
}

Status DmaDevice::sync_sg_for_device(const ScatterList& list, DmaDirection dir,
                                     mem::CallSite site) {
    if (!list.mapped_) return Error(EINVAL, name_ + ": sync_sg_for_device of a scatter list that is not mapped");
    for (std::size_t i = 0; i < list.entry_addresses_.size(); ++i) {
        DMAKIT_TRY(check_sync(list.entry_addresses_[i], 0, list.entries_[i].length, dir, false, site));
    }
    mmio::dma_wmb();
    return {};
}

// ---- large buffers -------------------------------------------------------

Result<LargeBuffer> DmaDevice::alloc_large(std::size_t size, mem::CallSite site) {
    if (size == 0) return Error(EINVAL, name_ + ": alloc_large of 0 bytes");
    const std::size_t length = (size + kPage - 1) & ~(kPage - 1);
    if (length < size) return Error(EOVERFLOW, name_ + ": alloc_large size overflows");
    auto memory = MemoryMapping::map(nullptr, length, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0,
                                     "large DMA buffer");
    if (!memory.ok()) return std::move(memory).error().with_context(name_);
    // Locked so the pages cannot move while the device holds their address;
    // the IOMMU map pins them too, so a failure here (RLIMIT_MEMLOCK) is not fatal.
    (void)::mlock(memory->data(), length);
    iommu::MapOptions options;
    options.dma_mask = mask();
    auto mapped = context_.domain().map(memory->data(), length, iommu::Access::read_write, options);
    if (!mapped.ok()) return std::move(mapped).error().with_context(name_ + ": alloc_large");
    LargeBuffer buffer;
    buffer.device_ = this;
    buffer.memory_ = std::move(memory).value();
    buffer.dma_ = DmaAddr(mapped->iova);
    buffer.size_ = size;
    if (DmaDebug* debug = context_.debug()) {
        debug->record_map(MappingKind::coherent, name_, buffer.dma_, size, DmaDirection::bidirectional, site);
    }
    return buffer;
}

void DmaDevice::free_large(LargeBuffer& buffer) noexcept {
    if (DmaDebug* debug = context_.debug()) {
        (void)debug->record_unmap(MappingKind::coherent, name_, buffer.dma_, buffer.size_,
                                  DmaDirection::bidirectional, std::source_location::current());
    }
    auto status = context_.domain().unmap(buffer.dma_.value());
    if (!status.ok()) context_.logger().warning(name_ + ": unmapping a large buffer: " + dmakit::to_string(status.error()));
}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& other) noexcept {
    if (this != &other) {
        reset();
        device_ = std::exchange(other.device_, nullptr);
        memory_ = std::move(other.memory_);
        dma_ = std::exchange(other.dma_, DmaAddr());
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

void LargeBuffer::reset() noexcept {
    // Unmap from the device before the memory can be reused.
    if (device_ != nullptr && memory_.valid()) device_->free_large(*this);
    memory_.reset();
    device_ = nullptr;
    size_ = 0;
}

}  // namespace dmakit::dma
