#include <dmakit/drivers/nvme/identify.hpp>

#include <dmakit/drivers/nvme/format.hpp>

#include <algorithm>
#include <bit>
#include <type_traits>
#include <cerrno>
#include <cstring>

namespace dmakit::nvme {

namespace {

using Snapshot = std::array<std::byte, 4096>;

// Little-endian field read from the private snapshot (never from device memory).
template <typename T>
T field(const Snapshot& s, std::size_t offset) {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    std::memcpy(&v, s.data() + offset, sizeof v);
    return v;
}

std::span<const std::byte> bytes(const Snapshot& s, std::size_t first, std::size_t last_inclusive) {
    return std::span<const std::byte>(s).subspan(first, last_inclusive - first + 1);
}

Error bad_field(std::string_view structure, std::string_view field_name, std::uint64_t value, std::string_view why) {
    return Error(EPROTO, std::string(structure) + " " + std::string(field_name) + "=" + std::to_string(value) + " (" +
                             hex(value) + ") " + std::string(why) + "; the device reports impossible data, not using it");
}

}  // namespace

std::string clean_ascii(std::span<const std::byte> field) {
    std::string out;
    out.reserve(field.size());
    for (std::byte b : field) {
        const auto c = static_cast<unsigned char>(b);
        out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
    }
    // Trailing padding is spaces by the spec (§1.5 ASCII string), NULs in practice.
    std::size_t n = out.size();
    while (n > 0) {
        const auto c = static_cast<unsigned char>(field[n - 1]);
        if (c == ' ' || c < 0x20 || c >= 0x7f) {
            --n;
        } else {
            break;
        }
    }
    out.resize(n);
    return out;
}

Result<ControllerInfo> parse_identify_controller(IdentifyBuffer data, std::uint64_t min_page_size) {
    Snapshot s;
    std::memcpy(s.data(), data.data(), s.size());
    constexpr std::string_view what = "Identify Controller";

    ControllerInfo c;
    c.vid = field<std::uint16_t>(s, 0);
    c.ssvid = field<std::uint16_t>(s, 2);
    c.serial = clean_ascii(bytes(s, 4, 23));
    c.model = clean_ascii(bytes(s, 24, 63));
    c.firmware = clean_ascii(bytes(s, 64, 71));
    c.mdts = field<std::uint8_t>(s, 77);
    c.cntlid = field<std::uint16_t>(s, 78);
    c.version = field<std::uint32_t>(s, 80);
    c.oacs = field<std::uint16_t>(s, 256);
    c.acl = field<std::uint8_t>(s, 258);
    c.aerl = field<std::uint8_t>(s, 259);
    c.lpa = field<std::uint8_t>(s, 261);
    c.elpe = field<std::uint8_t>(s, 262);
    c.sqes = field<std::uint8_t>(s, 512);
    c.cqes = field<std::uint8_t>(s, 513);
    c.maxcmd = field<std::uint16_t>(s, 514);
    c.nn = field<std::uint32_t>(s, 516);
    c.oncs = field<std::uint16_t>(s, 520);
    c.vwc = field<std::uint8_t>(s, 525);
    c.sgls = field<std::uint32_t>(s, 536);
    c.subnqn = clean_ascii(bytes(s, 768, 1023));

    // SQES/CQES: the NVM command set requires 64-byte SQEs and 16-byte CQEs
    // (§5.15.2.1); the maximum must not be below the required size.
    const unsigned sq_min = c.sqes & 0xfu, sq_max = c.sqes >> 4;
    const unsigned cq_min = c.cqes & 0xfu, cq_max = c.cqes >> 4;
    if (sq_min != 6) return bad_field(what, "SQES required size (bits 3:0)", sq_min, "is not 6 (64-byte entries)");
    if (sq_max < sq_min) return bad_field(what, "SQES maximum size (bits 7:4)", sq_max, "is below the required 6");
    if (cq_min != 4) return bad_field(what, "CQES required size (bits 3:0)", cq_min, "is not 4 (16-byte entries)");
    if (cq_max < cq_min) return bad_field(what, "CQES maximum size (bits 7:4)", cq_max, "is below the required 4");

    if (min_page_size < 4096 || (min_page_size & (min_page_size - 1)) != 0) {
        return Error(EINVAL, "minimum page size " + std::to_string(min_page_size) +
                                 " is not a power of two of at least 4096 (pass CAP.MPSMIN's page size)");
    }
    if (c.mdts != 0) {
        const unsigned page_shift = static_cast<unsigned>(std::countr_zero(min_page_size));
        const unsigned shift = c.mdts + page_shift;
        if (shift > 32) {
            return bad_field(what, "MDTS", c.mdts,
                             "gives 2^" + std::to_string(shift) + "-byte transfers with " +
                                 std::to_string(min_page_size) +
                                 "-byte pages, above the 4 GiB any command can move");
        }
        c.max_transfer_bytes = std::uint64_t{1} << shift;
    }
    return c;
}

Result<NamespaceInfo> parse_identify_namespace(IdentifyBuffer data, std::uint32_t nsid) {
    Snapshot s;
    std::memcpy(s.data(), data.data(), s.size());
    const std::string what = "Identify Namespace " + std::to_string(nsid);

    NamespaceInfo n;
    n.nsid = nsid;
    n.nsze = field<std::uint64_t>(s, 0);
    n.ncap = field<std::uint64_t>(s, 8);
    n.nuse = field<std::uint64_t>(s, 16);
    n.nsfeat = field<std::uint8_t>(s, 24);
    n.nlbaf = field<std::uint8_t>(s, 25);
    n.flbas = field<std::uint8_t>(s, 26);
    n.mc = field<std::uint8_t>(s, 27);
    n.dps = field<std::uint8_t>(s, 29);
    n.dlfeat = field<std::uint8_t>(s, 33);
    std::memcpy(n.nguid.data(), s.data() + 104, n.nguid.size());
    std::memcpy(n.eui64.data(), s.data() + 120, n.eui64.size());

    // An inactive NSID returns a zero-filled structure (§6.1.5).
    if (n.nsze == 0) {
        return Error(ENOENT, what + ": NSZE=0, the namespace is inactive or not attached to this controller");
    }
    if (n.ncap > n.nsze) return bad_field(what, "NCAP", n.ncap, "exceeds NSZE=" + std::to_string(n.nsze));
    if (n.nuse > n.ncap) return bad_field(what, "NUSE", n.nuse, "exceeds NCAP=" + std::to_string(n.ncap));
    // NVMe 1.4 has 16 LBA format slots (bytes 191:128).
    if (n.nlbaf > 15) return bad_field(what, "NLBAF", n.nlbaf, "exceeds 15 (16 LBA formats)");
    if (n.format_index() > n.nlbaf) {
        return bad_field(what, "FLBAS format index", n.format_index(),
                         "exceeds NLBAF=" + std::to_string(n.nlbaf));
    }

    n.lba_formats.reserve(n.nlbaf + 1u);
    for (unsigned i = 0; i <= n.nlbaf; ++i) {
        const auto raw = field<std::uint32_t>(s, 128 + 4 * i);
        LbaFormat f;
        f.metadata_size = static_cast<std::uint16_t>(raw & 0xffffu);
        f.lbads = static_cast<std::uint8_t>((raw >> 16) & 0xffu);
        f.relative_performance = static_cast<std::uint8_t>((raw >> 24) & 0x3u);
        f.usable = f.lbads >= 9 && f.lbads <= 16 && f.metadata_size <= (1u << f.lbads);
        n.lba_formats.push_back(f);
    }

    const LbaFormat& cur = n.current_format();
    if (cur.lbads < 9 || cur.lbads > 16) {
        return bad_field(what, "LBADS of the formatted LBA format " + std::to_string(n.format_index()), cur.lbads,
                         "is outside 9..16 (512 B..64 KiB blocks)");
    }
    if (!cur.usable) {
        return bad_field(what, "MS of the formatted LBA format " + std::to_string(n.format_index()),
                         cur.metadata_size, "is larger than the " + std::to_string(1u << cur.lbads) + "-byte block");
    }
    if (n.nsze > (~std::uint64_t{0} >> cur.lbads)) {
        return bad_field(what, "NSZE", n.nsze,
                         "times the " + std::to_string(1u << cur.lbads) + "-byte block overflows 64 bits");
    }
    return n;
}

Result<std::vector<std::uint32_t>> parse_active_namespace_list(IdentifyBuffer data, std::uint32_t after_nsid,
                                                               std::uint32_t nn) {
    Snapshot s;
    std::memcpy(s.data(), data.data(), s.size());
    std::vector<std::uint32_t> ids;
    std::uint32_t previous = after_nsid;
    for (std::size_t i = 0; i < 1024; ++i) {
        const auto id = field<std::uint32_t>(s, 4 * i);
        if (id == 0) break;  // end of list
        if (id == 0xffffffffu || id <= previous) {
            return bad_field("Active Namespace ID list", "entry " + std::to_string(i), id,
                             "is not an NSID above the previous one (" + std::to_string(previous) + ")");
        }
        if (nn != 0 && id > nn) {
            return bad_field("Active Namespace ID list", "entry " + std::to_string(i), id,
                             "exceeds NN=" + std::to_string(nn));
        }
        ids.push_back(id);
        previous = id;
    }
    return ids;
}

}  // namespace dmakit::nvme
