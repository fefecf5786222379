// Fuzzes the VFIO GET_INFO reply parsers (lib/dmakit/vfio/info.*): region
// info with its capability chain (sparse mmap areas) and type1 IOMMU info
// (IOVA ranges, DMA available). The kernel is trusted more than a device,
// but the parsers promise to check every offset, so they must hold for any
// bytes: no out-of-bounds read, no endless chain.
#include "fuzz_check.hpp"

#include <dmakit/vfio/info.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

using namespace dmakit::vfio;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    // First byte picks the parser so each keeps its own corpus entries; the
    // reply goes to an exact-size heap copy so ASan sees any overread.
    const bool type1 = (data[0] & 1) != 0;
    std::vector<std::byte> reply(size - 1);
    if (!reply.empty()) std::memcpy(reply.data(), data + 1, reply.size());

    if (!type1) {
        if (auto r = parse_region_info(reply); r.ok()) {
            const auto areas = r->mmap_areas();
            if (!r->mappable()) FUZZ_CHECK(areas.empty());
            if (r->sparse_areas) FUZZ_CHECK(areas.size() <= r->sparse_areas->size());
            // Every window we would mmap lies inside the region.
            for (const auto& a : areas) FUZZ_CHECK(a.size != 0 && a.offset <= r->size && r->size - a.offset >= a.size);
        }
    } else {
        if (auto t = parse_type1_info(reply); t.ok() && t->iova_ranges) {
            FUZZ_CHECK(t->iova_ranges->size() <= reply.size());
        }
    }
    return 0;
}
