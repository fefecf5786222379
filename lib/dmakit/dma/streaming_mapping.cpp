#include <dmakit/dma/streaming_mapping.hpp>

#include <dmakit/dma/device.hpp>
#include <dmakit/internal/handle_failure.hpp>
#include <dmakit/support/error.hpp>

#include <utility>

namespace dmakit::dma {

StreamingMapping& StreamingMapping::operator=(StreamingMapping&& other) noexcept {
    if (this != &other) {
        reset();
        device_ = std::exchange(other.device_, nullptr);
        cpu_ = std::exchange(other.cpu_, nullptr);
        dma_ = std::exchange(other.dma_, DmaAddr());
        size_ = std::exchange(other.size_, 0);
        dir_ = other.dir_;
        site_ = other.site_;
    }
    return *this;
}

namespace {

Error empty_error(const char* call) { return empty_handle_error("StreamingMapping", call, "unmapped"); }

}  // namespace

Status StreamingMapping::sync_for_cpu(mem::CallSite site) const {
    if (!valid()) return empty_error("sync_for_cpu");
    return device_->sync_single_for_cpu(dma_, size_, dir_, site);
}

Status StreamingMapping::sync_for_device(mem::CallSite site) const {
    if (!valid()) return empty_error("sync_for_device");
    return device_->sync_single_for_device(dma_, size_, dir_, site);
}

Status StreamingMapping::sync_range_for_cpu(std::size_t offset, std::size_t length,
                                            mem::CallSite site) const {
    if (!valid()) return empty_error("sync_range_for_cpu");
    return device_->sync_single_range_for_cpu(dma_, offset, length, dir_, site);
}

Status StreamingMapping::sync_range_for_device(std::size_t offset, std::size_t length,
                                               mem::CallSite site) const {
    if (!valid()) return empty_error("sync_range_for_device");
    return device_->sync_single_range_for_device(dma_, offset, length, dir_, site);
}

Status StreamingMapping::unmap(mem::CallSite site) {
    if (!valid()) return empty_error("unmap");
    DmaDevice* device = device_;
    const Raw raw = release();  // empty first: whatever happens, never unmapped twice
    return device->unmap_single(raw.addr, raw.length, raw.dir, site);
}

StreamingMapping::Raw StreamingMapping::release() noexcept {
    device_ = nullptr;
    cpu_ = nullptr;
    return {std::exchange(dma_, DmaAddr()), std::exchange(size_, 0), dir_};
}

void StreamingMapping::reset() noexcept {
    if (!valid()) return;
    const mem::CallSite made_at = site_;
    end_in_destructor(*device_, "StreamingMapping", "unmap", made_at, [&] { return unmap(made_at); });
}

}  // namespace dmakit::dma
