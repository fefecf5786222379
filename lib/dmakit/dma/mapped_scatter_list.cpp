#include <dmakit/dma/mapped_scatter_list.hpp>

#include <dmakit/dma/device.hpp>
#include <dmakit/internal/handle_failure.hpp>
#include <dmakit/support/error.hpp>

#include <utility>

namespace dmakit::dma {
namespace {

Error empty_error(const char* call) { return empty_handle_error("MappedScatterList", call, "unmapped"); }

}  // namespace

MappedScatterList& MappedScatterList::operator=(MappedScatterList&& other) noexcept {
    if (this != &other) {
        reset();
        device_ = std::exchange(other.device_, nullptr);
        list_ = std::exchange(other.list_, ScatterList());
        dir_ = other.dir_;
        site_ = other.site_;
    }
    return *this;
}

Status MappedScatterList::sync_for_cpu(mem::CallSite site) const {
    if (!valid()) return empty_error("sync_for_cpu");
    return device_->sync_sg_for_cpu(list_, dir_, site);
}

Status MappedScatterList::sync_for_device(mem::CallSite site) const {
    if (!valid()) return empty_error("sync_for_device");
    return device_->sync_sg_for_device(list_, dir_, site);
}

Status MappedScatterList::unmap(mem::CallSite site) {
    if (!valid()) return empty_error("unmap");
    DmaDevice* device = device_;
    ScatterList list = release();  // empty first: whatever happens, never unmapped twice
    return device->unmap_sg(list, dir_, site);
}

ScatterList MappedScatterList::release() noexcept {
    device_ = nullptr;
    return std::exchange(list_, ScatterList());
}

void MappedScatterList::reset() noexcept {
    if (!valid()) return;
    const mem::CallSite made_at = site_;
    end_in_destructor(*device_, "MappedScatterList", "unmap", made_at, [&] { return unmap(made_at); });
}

}  // namespace dmakit::dma
