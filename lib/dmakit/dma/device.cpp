#include <dmakit/dma/device.hpp>

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

}  // namespace

DmaDevice::DmaDevice(DmaContext& context, std::string name)
    : context_(context), name_(std::move(name)) {}

DmaDevice::~DmaDevice() {
    if (DmaDebug* debug = context_.debug()) debug->check_device_close(name_);
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

// ---- coherent ------------------------------------------------------------

Result<CoherentBuffer> DmaDevice::alloc_coherent(std::size_t size, std::source_location site) {
    if (size == 0) return Error(EINVAL, name_ + ": alloc_coherent of 0 bytes");
    if (size > (std::size_t{1} << (mem::kMaxOrder + 12))) {
        return Error(EINVAL, name_ + ": alloc_coherent of " + bytes_text(size) +
                                 " is larger than the largest block (1 GiB); use alloc_large");
    }
    const std::size_t pages = (size + kPage - 1) / kPage;
    const auto order = static_cast<unsigned>(std::bit_width(std::bit_ceil(pages)) - 1);
    auto block = context_.pages().try_alloc_pages(order);
    if (!block.ok()) {
        return std::move(block).error().with_context(name_ + ": alloc_coherent of " + bytes_text(size));
    }
    void* cpu = *block;
    auto dma = context_.pool_dma_address(cpu);
    if (!dma) {
        context_.pages().free_pages(cpu);
        return Error(EIO, name_ + ": pool memory has no device address (region not mapped)");
    }
    if (dma->value() + (size - 1) > coherent_mask()) {
        context_.pages().free_pages(cpu);
        return Error(EIO, name_ + ": pool memory at " + iommu::to_hex(dma->value()) +
                              " is above the coherent mask " + iommu::to_hex(coherent_mask()));
    }
    std::memset(cpu, 0, size);
    if (DmaDebug* debug = context_.debug()) {
        debug->record_map(MappingKind::coherent, name_, *dma, size, DmaDirection::bidirectional, site);
    }
    return CoherentBuffer(this, cpu, *dma, size);
}

void DmaDevice::free_coherent(void* cpu, DmaAddr dma, std::size_t size) noexcept {
    if (DmaDebug* debug = context_.debug()) {
        debug->check_unmap(MappingKind::coherent, name_, dma, size, DmaDirection::bidirectional,
                           std::source_location::current());
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

Result<DmaAddr> DmaDevice::map_any(void* cpu, std::size_t length, MappingKind kind,
                                   DmaDirection dir, std::source_location site) {
    if (length == 0) return Error(EINVAL, name_ + ": cannot map 0 bytes for DMA");
    const auto start = reinterpret_cast<std::uintptr_t>(cpu);
    if (cpu == nullptr || start + length < start) {
        return Error(EOVERFLOW, name_ + ": buffer at " + iommu::to_hex(start) + " of " +
                                    bytes_text(length) + " overflows the address space");
    }
    const std::uint64_t mask = mask_.load(std::memory_order_relaxed);
    DmaAddr addr;
    if (const mem::Region* region = context_.pages().region_of(cpu)) {
        // Pool memory: mapped once with its region, translated in O(1).
        const auto offset = static_cast<std::size_t>(static_cast<std::byte*>(cpu) - region->cpu_base());
        const auto base = region->dma_base();
        if (!base || length > region->length() - offset) {
            return Error(EINVAL, name_ + ": buffer of " + bytes_text(length) +
                                     " runs past the end of its pool region");
        }
        addr = DmaAddr(*base + offset);
        if (addr.value() + (length - 1) > mask) {
            return Error(EIO, name_ + ": pool memory at " + iommu::to_hex(addr.value()) +
                                  " is above the DMA mask " + iommu::to_hex(mask));
        }
    } else {
        auto acquired = context_.registrations().acquire(cpu, length, mask);
        if (!acquired.ok()) return std::move(acquired).error().with_context(name_);
        addr = *acquired;
    }
    if (DmaDebug* debug = context_.debug()) debug->record_map(kind, name_, addr, length, dir, site);
    return addr;
}

Status DmaDevice::unmap_any(DmaAddr addr, std::size_t length, MappingKind kind, DmaDirection dir,
                            std::source_location site) {
    if (DmaDebug* debug = context_.debug()) debug->check_unmap(kind, name_, addr, length, dir, site);
    if (context_.is_pool_dma_address(addr)) return {};  // stays mapped with its region
    auto status = context_.registrations().release(addr);
    if (!status.ok()) return std::move(status).error().with_context(name_ + ": unmap");
    return {};
}

Result<DmaAddr> DmaDevice::map_single(void* cpu, std::size_t length, DmaDirection dir,
                                      std::source_location site) {
    return map_any(cpu, length, MappingKind::single, dir, site);
}

Status DmaDevice::unmap_single(DmaAddr addr, std::size_t length, DmaDirection dir,
                               std::source_location site) {
    return unmap_any(addr, length, MappingKind::single, dir, site);
}

Result<DmaAddr> DmaDevice::map_page(void* page, std::size_t offset, std::size_t length,
                                    DmaDirection dir, std::source_location site) {
    if (page == nullptr) return Error(EINVAL, name_ + ": map_page of a null page");
    return map_any(static_cast<std::byte*>(page) + offset, length, MappingKind::page, dir, site);
}

Status DmaDevice::unmap_page(DmaAddr addr, std::size_t length, DmaDirection dir,
                             std::source_location site) {
    return unmap_any(addr, length, MappingKind::page, dir, site);
}

Result<std::size_t> DmaDevice::map_sg(ScatterList& list, DmaDirection dir, std::source_location site) {
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

Status DmaDevice::unmap_sg(ScatterList& list, DmaDirection dir, std::source_location site) {
    if (!list.mapped_) return Error(EINVAL, name_ + ": unmap_sg of a scatter list that is not mapped");
    Status first_error;
    for (std::size_t i = 0; i < list.entries_.size(); ++i) {
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

void DmaDevice::sync_single_for_cpu(DmaAddr addr, std::size_t length, DmaDirection dir,
                                    std::source_location site) {
    if (DmaDebug* debug = context_.debug()) debug->check_sync(name_, addr, length, dir, true, site);
    // The device's writes were announced by something the CPU already read
    // (a completion entry, a descriptor's done bit); reads of the buffer must
    // not be hoisted above that. On x86 loads are not reordered with loads,
    // so this is a compiler barrier.
    std::atomic_thread_fence(std::memory_order_acquire);
}

void DmaDevice::sync_single_for_device(DmaAddr addr, std::size_t length, DmaDirection dir,
                                       std::source_location site) {
    if (DmaDebug* debug = context_.debug()) debug->check_sync(name_, addr, length, dir, false, site);
    // The CPU's writes must be visible before whatever tells the device to
    // look (a doorbell write). x86 keeps stores in order, so this is a
    // compiler barrier too; the doorbell accessor adds what MMIO needs.
    std::atomic_thread_fence(std::memory_order_release);
}

void DmaDevice::sync_sg_for_cpu(const ScatterList& list, DmaDirection dir, std::source_location site) {
    if (DmaDebug* debug = context_.debug()) {
        for (std::size_t i = 0; i < list.entry_addresses_.size(); ++i) {
            debug->check_sync(name_, list.entry_addresses_[i], list.entries_[i].length, dir, true, site);
        }
    }
    std::atomic_thread_fence(std::memory_order_acquire);
}

void DmaDevice::sync_sg_for_device(const ScatterList& list, DmaDirection dir,
                                   std::source_location site) {
    if (DmaDebug* debug = context_.debug()) {
        for (std::size_t i = 0; i < list.entry_addresses_.size(); ++i) {
            debug->check_sync(name_, list.entry_addresses_[i], list.entries_[i].length, dir, false, site);
        }
    }
    std::atomic_thread_fence(std::memory_order_release);
}

// ---- large buffers -------------------------------------------------------

Result<LargeBuffer> DmaDevice::alloc_large(std::size_t size, std::source_location site) {
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
        debug->check_unmap(MappingKind::coherent, name_, buffer.dma_, buffer.size_,
                           DmaDirection::bidirectional, std::source_location::current());
    }
    auto status = context_.domain().unmap(buffer.dma_.value());
    if (!status.ok()) context_.logger().warning(name_ + ": unmapping a large buffer: " + status.error().message());
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
