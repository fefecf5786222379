// Parsing of Identify data structures (NVMe 1.4 §5.15.2) from raw 4096-byte
// buffers, validated as untrusted input.
//
// The parsers copy the buffer before reading it (the device could rewrite it
// while we look), decode each field once, and reject values that would make
// a later size or index computation wrong, with an Error that names the field
// and its value. Strings are trimmed and cleaned of non-printable bytes so a
// device cannot put terminal escapes into a table.
#pragma once

#include <dmakit/support/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace dmakit::nvme {

using IdentifyBuffer = std::span<const std::byte, 4096>;

// NVMe 1.4 Figure "Identify – Identify Controller Data Structure", the fields the driver uses.
struct ControllerInfo {
    std::uint16_t vid = 0;          // PCI vendor ID, bytes 1:0
    std::uint16_t ssvid = 0;        // PCI subsystem vendor ID, 3:2
    std::string serial;             // SN, 23:4
    std::string model;              // MN, 63:24
    std::string firmware;           // FR, 71:64
    std::uint8_t mdts = 0;          // 77: max transfer 2^MDTS * CAP.MPSMIN, 0 = no limit
    std::uint16_t cntlid = 0;       // 79:78
    std::uint32_t version = 0;      // VER, 83:80 (0 before NVMe 1.2)
    std::uint16_t oacs = 0;         // optional admin command support, 257:256
    std::uint8_t acl = 0;           // abort command limit, 258 (0-based)
    std::uint8_t aerl = 0;          // async event request limit, 259 (0-based)
    std::uint8_t lpa = 0;           // log page attributes, 261
    std::uint8_t elpe = 0;          // error log page entries, 262 (0-based)
    std::uint8_t sqes = 0;          // 512: required 3:0, maximum 7:4 (log2 bytes)
    std::uint8_t cqes = 0;          // 513
    std::uint16_t maxcmd = 0;       // 515:514 (0 = not reported)
    std::uint32_t nn = 0;           // number of namespaces, 519:516
    std::uint16_t oncs = 0;         // optional NVM command support, 521:520
    std::uint8_t vwc = 0;           // volatile write cache, 525
    std::uint32_t sgls = 0;         // 539:536
    std::string subnqn;             // 1023:768

    // Derived: maximum bytes per command for the CAP.MPSMIN page size given
    // to the parser; nullopt when MDTS is 0 (no limit reported).
    std::optional<std::uint64_t> max_transfer_bytes;

    // OACS bits (§5.15.2.1).
    [[nodiscard]] bool supports_format_nvm() const noexcept { return (oacs & (1u << 1)) != 0; }
    [[nodiscard]] bool supports_firmware() const noexcept { return (oacs & (1u << 2)) != 0; }
    [[nodiscard]] bool supports_ns_management() const noexcept { return (oacs & (1u << 3)) != 0; }
    // Doorbell Buffer Config (NVMe 1.3 §5.7): shadow doorbells.
    [[nodiscard]] bool supports_doorbell_buffer_config() const noexcept { return (oacs & (1u << 8)) != 0; }
    // ONCS bits (§5.15.2.1).
    [[nodiscard]] bool supports_compare() const noexcept { return (oncs & (1u << 0)) != 0; }
    [[nodiscard]] bool supports_write_uncorrectable() const noexcept { return (oncs & (1u << 1)) != 0; }
    [[nodiscard]] bool supports_dsm() const noexcept { return (oncs & (1u << 2)) != 0; }
    [[nodiscard]] bool supports_write_zeroes() const noexcept { return (oncs & (1u << 3)) != 0; }
    [[nodiscard]] bool volatile_write_cache() const noexcept { return (vwc & 1u) != 0; }
    [[nodiscard]] std::uint32_t sq_entry_size() const noexcept { return 1u << (sqes & 0xfu); }
    [[nodiscard]] std::uint32_t cq_entry_size() const noexcept { return 1u << (cqes & 0xfu); }
};

// `min_page_size` is CAP.MPSMIN's page size (4096 << MPSMIN); it turns MDTS
// into bytes. Rejects: SQES/CQES required sizes other than 64/16 bytes or
// maxima below them, and an MDTS whose transfer size is above 4 GiB (no NVM
// command can move more: NLB is 16 bits and blocks are at most 64 KiB).
[[nodiscard]] Result<ControllerInfo> parse_identify_controller(IdentifyBuffer data, std::uint64_t min_page_size);

// One LBA format (NVMe 1.4 Figure "LBA Format Data Structure").
struct LbaFormat {
    std::uint16_t metadata_size = 0;  // MS
    std::uint8_t lbads = 0;           // LBA data size, log2 bytes
    std::uint8_t relative_performance = 0;  // RP: 0 best .. 3 degraded
    bool usable = false;  // LBADS in 9..16 and MS at most the block size

    [[nodiscard]] std::uint32_t block_size() const noexcept { return usable ? 1u << lbads : 0; }
    [[nodiscard]] bool operator==(const LbaFormat&) const = default;
};

// NVMe 1.4 Figure "Identify – Identify Namespace Data Structure, NVM Command Set Specific".
struct NamespaceInfo {
    std::uint32_t nsid = 0;
    std::uint64_t nsze = 0;  // size in blocks
    std::uint64_t ncap = 0;  // capacity in blocks
    std::uint64_t nuse = 0;  // utilization in blocks
    std::uint8_t nsfeat = 0;
    std::uint8_t nlbaf = 0;  // number of LBA formats, 0-based
    std::uint8_t flbas = 0;  // formatted LBA size: index 3:0, metadata at end of block bit 4
    std::uint8_t mc = 0;     // metadata capabilities, byte 27
    std::uint8_t dps = 0;    // end-to-end data protection type settings, byte 29
    std::uint8_t dlfeat = 0;
    std::array<std::uint8_t, 16> nguid{};
    std::array<std::uint8_t, 8> eui64{};
    std::vector<LbaFormat> lba_formats;  // nlbaf + 1 entries

    [[nodiscard]] std::uint32_t format_index() const noexcept { return flbas & 0xfu; }
    [[nodiscard]] const LbaFormat& current_format() const noexcept { return lba_formats[format_index()]; }
    [[nodiscard]] std::uint32_t block_size() const noexcept { return current_format().block_size(); }
    [[nodiscard]] std::uint64_t size_bytes() const noexcept { return nsze << current_format().lbads; }
    [[nodiscard]] bool extended_lba() const noexcept { return (flbas & 0x10u) != 0; }
    // Metadata bytes per block of the formatted LBA format (MS); 0: none.
    [[nodiscard]] std::uint32_t metadata_size() const noexcept { return current_format().metadata_size; }
    // FLBAS bit 4 clear with MS > 0: the metadata of a command lives in its
    // own buffer, named by MPTR (NVMe 1.4 §5.15.2.2 FLBAS, §8.2).
    [[nodiscard]] bool separate_metadata() const noexcept { return metadata_size() != 0 && !extended_lba(); }
    // Bytes one block takes in a data buffer: the LBA data, plus its
    // metadata when it is transferred inline (extended LBA, FLBAS bit 4).
    [[nodiscard]] std::uint32_t bytes_per_block() const noexcept {
        return block_size() + (extended_lba() ? metadata_size() : 0);
    }
    // DPS bits 2:0: end-to-end protection information is enabled (§8.3);
    // the controller would check guard tags the driver does not compute.
    [[nodiscard]] bool protection_enabled() const noexcept { return (dps & 0x7u) != 0; }
    // DLFEAT bits 2:0 == 001b: deallocated blocks read as zeroes (§5.15.2.2).
    [[nodiscard]] bool deallocate_reads_zeroes() const noexcept { return (dlfeat & 0x7u) == 1; }
    [[nodiscard]] bool operator==(const NamespaceInfo&) const = default;
};

// Rejects: an all-zero structure (inactive NSID: NSZE 0), NCAP > NSZE,
// NUSE > NCAP, NLBAF > 15, FLBAS index > NLBAF, the formatted LBA format not
// usable (LBADS outside 9..16 or MS larger than a block), and a size in
// bytes that overflows 64 bits.
[[nodiscard]] Result<NamespaceInfo> parse_identify_namespace(IdentifyBuffer data, std::uint32_t nsid);

// Active Namespace ID list (CNS 02h): up to 1024 NSIDs, ascending, ended by
// 0. Rejects 0xFFFFFFFF, NSIDs that do not increase, and (if nn != 0) NSIDs
// above NN. `after_nsid` is the NSID the command was sent with.
[[nodiscard]] Result<std::vector<std::uint32_t>> parse_active_namespace_list(IdentifyBuffer data,
                                                                             std::uint32_t after_nsid,
                                                                             std::uint32_t nn);

// Cleans an ASCII field: interior non-printable bytes become '?', trailing
// spaces, NULs and non-printables are dropped.
[[nodiscard]] std::string clean_ascii(std::span<const std::byte> field);

}  // namespace dmakit::nvme
