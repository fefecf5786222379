// The data path of the software NVMe controller (FakeNvmeBus): decodes a
// Read/Write command's data pointer (PRP entries and lists, NVMe 1.4 §4.3,
// or an SGL with segments and bit buckets, §4.4) as a controller would,
// through the test IOMMU, and moves the bytes between host memory and a
// media image. Written from the spec, independently of the driver's
// builders, so a test that checks data through it checks the builders.
#pragma once

#include <dmakit/drivers/nvme/commands.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

namespace dmakit::nvme::testing {

struct DevicePiece {
    std::uint64_t addr = 0;
    std::uint64_t len = 0;
    bool bit_bucket = false;
};

// `read` copies `len` device bytes at `iova` into `out`; false on an IOMMU fault.
using DeviceRead = std::function<bool(std::uint64_t iova, void* out, std::size_t len)>;

// The pieces of `bytes` of data a command's PRP1/PRP2 describe (page 4 KiB).
inline std::optional<std::vector<DevicePiece>> decode_prp(std::uint64_t prp1, std::uint64_t prp2,
                                                          std::uint64_t bytes, const DeviceRead& read) {
    constexpr std::uint64_t page = 4096;
    std::vector<DevicePiece> out;
    const std::uint64_t first = std::min(bytes, page - (prp1 & (page - 1)));
    out.push_back({prp1, first, false});
    std::uint64_t left = bytes - first;
    if (left == 0) return out;
    if (left <= page) {
        if ((prp2 & (page - 1)) != 0) return std::nullopt;
        out.push_back({prp2, left, false});
        return out;
    }
    std::uint64_t list = prp2;
    if ((list & 7u) != 0) return std::nullopt;
    while (left > 0) {
        // Entries up to the end of this list page; the last one chains when more follow.
        const std::uint64_t slots = (page - (list & (page - 1))) / 8;
        std::vector<std::uint64_t> entries(slots);
        if (!read(list, entries.data(), slots * 8)) return std::nullopt;
        for (std::uint64_t i = 0; i < slots && left > 0; ++i) {
            if (i == slots - 1 && left > page) {
                list = entries[i];
                break;
            }
            if ((entries[i] & (page - 1)) != 0) return std::nullopt;  // PRP Offset Invalid
            const std::uint64_t n = std::min(left, page);
            out.push_back({entries[i], n, false});
            left -= n;
        }
    }
    return out;
}

// The pieces an SGL starting at SGL Descriptor 1 (DPTR) describes.
inline std::optional<std::vector<DevicePiece>> decode_sgl(std::uint64_t dptr_lo, std::uint64_t dptr_hi,
                                                          const DeviceRead& read) {
    struct Desc {
        std::uint64_t addr;
        std::uint32_t len;
        std::uint8_t reserved[3];
        std::uint8_t id;
    };
    static_assert(sizeof(Desc) == 16);
    std::vector<DevicePiece> out;
    Desc d{dptr_lo, static_cast<std::uint32_t>(dptr_hi), {0, 0, 0}, static_cast<std::uint8_t>(dptr_hi >> 56)};
    bool in_last_segment = false;
    for (int hops = 0; hops < 4096; ++hops) {
        const unsigned type = d.id >> 4;
        if ((d.id & 0xfu) != 0) return std::nullopt;  // only the address subtype
        if (type == 0 || type == 1) {  // data block, bit bucket: SGL1 alone
            out.push_back({d.addr, d.len, type == 1});
            return out;
        }
        if (type != 2 && type != 3) return std::nullopt;
        if (in_last_segment || d.len == 0 || d.len % 16 != 0) return std::nullopt;
        in_last_segment = type == 3;
        std::vector<Desc> seg(d.len / 16);
        if (!read(d.addr, seg.data(), d.len)) return std::nullopt;
        for (std::size_t i = 0; i < seg.size(); ++i) {
            const unsigned t = seg[i].id >> 4;
            if (t == 0 || t == 1) {
                out.push_back({seg[i].addr, seg[i].len, t == 1});
                continue;
            }
            // A segment pointer may only be the last descriptor of a segment (§4.4).
            if ((t != 2 && t != 3) || i + 1 != seg.size()) return std::nullopt;
        }
        const Desc& last = seg.back();
        const unsigned lt = last.id >> 4;
        if (lt != 2 && lt != 3) {
            if (!in_last_segment) return std::nullopt;  // a Segment must chain on
            return out;
        }
        d = last;
    }
    return std::nullopt;
}

}  // namespace dmakit::nvme::testing
