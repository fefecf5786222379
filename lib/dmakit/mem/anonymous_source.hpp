// AnonymousSource: 4 KiB anonymous memory, pre-faulted and (if allowed) locked.
//
// The fallback when no hugepages can be had, and the source unit tests use.
// Every 4 KiB page is its own physical page, so contiguous_bytes is 4 KiB and
// an IOMMU is needed to give a device a bigger contiguous view.
#pragma once

#include <dmakit/mem/page_source.hpp>

namespace dmakit {
class Logger;
}

namespace dmakit::mem {

struct AnonymousSourceOptions {
    bool lock = true;            // mlock; a failure is reported once, not fatal
    bool populate = true;        // pre-fault with MAP_POPULATE
    const Logger* logger = nullptr;  // for the one mlock warning; null: silent
};

class AnonymousSource final : public PageSource {
public:
    explicit AnonymousSource(AnonymousSourceOptions options = {}) : options_(options) {}

    [[nodiscard]] Result<RegionBacking> map(void* address, std::size_t length) override;
    // Bound with mbind before the pages are faulted in.
    [[nodiscard]] Result<RegionBacking> map_on_node(void* address, std::size_t length,
                                                    int node) override;
    [[nodiscard]] std::size_t alignment() const noexcept override;
    [[nodiscard]] std::string_view name() const noexcept override { return "anonymous-4k"; }

private:
    [[nodiscard]] Result<RegionBacking> map_bound(void* address, std::size_t length, int node);

    AnonymousSourceOptions options_;
    bool warned_lock_ = false;
};

}  // namespace dmakit::mem
