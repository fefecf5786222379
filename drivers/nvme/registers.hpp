// NVMe controller registers (BAR0): offsets, field decoders and encoders.
//
// Pure value logic, no MMIO: the controller glue reads the raw values through
// the support layer's MMIO accessors and hands them here. Every value read
// from the device is checked (validate_cap) before it sizes anything.
// References are to the NVM Express Base Specification 1.4 (NVMe 1.4).
#pragma once

#include <dmakit/support/result.hpp>

#include <cstdint>
#include <string>

namespace dmakit::nvme {

// NVMe 1.4 §3.1 Register Definition, byte offsets into BAR0.
namespace reg {
inline constexpr std::uint32_t cap = 0x00;    // §3.1.1  Controller Capabilities (64-bit)
inline constexpr std::uint32_t vs = 0x08;     // §3.1.2  Version
inline constexpr std::uint32_t intms = 0x0c;  // §3.1.3  Interrupt Mask Set
inline constexpr std::uint32_t intmc = 0x10;  // §3.1.4  Interrupt Mask Clear
inline constexpr std::uint32_t cc = 0x14;     // §3.1.5  Controller Configuration
inline constexpr std::uint32_t csts = 0x1c;   // §3.1.6  Controller Status
inline constexpr std::uint32_t nssr = 0x20;   // §3.1.7  NVM Subsystem Reset
inline constexpr std::uint32_t aqa = 0x24;    // §3.1.8  Admin Queue Attributes
inline constexpr std::uint32_t asq = 0x28;    // §3.1.9  Admin SQ Base Address (64-bit)
inline constexpr std::uint32_t acq = 0x30;    // §3.1.10 Admin CQ Base Address (64-bit)
inline constexpr std::uint32_t doorbell_base = 0x1000;  // §3.1.24/§3.1.25
}  // namespace reg

// Smallest BAR0 that holds the registers and the admin queue's doorbells.
inline constexpr std::uint64_t min_bar0_size = 0x1000 + 8;
// CAP..ACQ: the registers used before any doorbell; the doorbells (whose
// place depends on CAP.DSTRD) are checked one by one with mapped_doorbells.
inline constexpr std::uint64_t register_block_size = reg::acq + 8;

namespace detail {
constexpr std::uint64_t bits(std::uint64_t v, unsigned lo, unsigned width) noexcept {
    return (v >> lo) & ((std::uint64_t{1} << width) - 1);
}
}  // namespace detail

// NVMe 1.4 §3.1.1 CAP — Controller Capabilities.
struct Cap {
    std::uint64_t raw = 0;

    // MQES is 0-based; the result is the maximum entries per I/O queue (2..65536).
    [[nodiscard]] constexpr std::uint32_t max_queue_entries() const noexcept {
        return static_cast<std::uint32_t>(detail::bits(raw, 0, 16)) + 1;
    }
    // CQR: I/O queues must be physically contiguous.
    [[nodiscard]] constexpr bool contiguous_queues_required() const noexcept {
        return detail::bits(raw, 16, 1) != 0;
    }
    // AMS: bit 0 = weighted round robin with urgent, bit 1 = vendor specific.
    [[nodiscard]] constexpr std::uint32_t arbitration_mechanisms() const noexcept {
        return static_cast<std::uint32_t>(detail::bits(raw, 17, 2));
    }
    // TO: worst-case time for CSTS.RDY to change after CC.EN changes, 500 ms units.
    [[nodiscard]] constexpr std::uint32_t timeout_units() const noexcept {
        return static_cast<std::uint32_t>(detail::bits(raw, 24, 8));
    }
    [[nodiscard]] constexpr std::uint32_t timeout_ms() const noexcept { return timeout_units() * 500; }
    // DSTRD: doorbell stride is 2^(2 + DSTRD) bytes.
    [[nodiscard]] constexpr std::uint32_t doorbell_stride_shift() const noexcept {
        return static_cast<std::uint32_t>(detail::bits(raw, 32, 4));
    }
    [[nodiscard]] constexpr std::uint32_t doorbell_stride_bytes() const noexcept {
        return 4u << doorbell_stride_shift();
    }
    [[nodiscard]] constexpr bool nssr_supported() const noexcept { return detail::bits(raw, 36, 1) != 0; }
    // CSS: bit 0 = NVM command set, bit 7 = no I/O command set (admin only).
    [[nodiscard]] constexpr std::uint32_t command_sets() const noexcept {
        return static_cast<std::uint32_t>(detail::bits(raw, 37, 8));
    }
    [[nodiscard]] constexpr bool nvm_command_set() const noexcept { return (command_sets() & 1u) != 0; }
    [[nodiscard]] constexpr bool boot_partitions() const noexcept { return detail::bits(raw, 45, 1) != 0; }
    // MPSMIN/MPSMAX: memory page size is 2^(12 + MPS).
    [[nodiscard]] constexpr std::uint32_t mpsmin() const noexcept {
        return static_cast<std::uint32_t>(detail::bits(raw, 48, 4));
    }
    [[nodiscard]] constexpr std::uint32_t mpsmax() const noexcept {
        return static_cast<std::uint32_t>(detail::bits(raw, 52, 4));
    }
    [[nodiscard]] constexpr std::uint64_t min_page_size() const noexcept { return std::uint64_t{1} << (12 + mpsmin()); }
    [[nodiscard]] constexpr std::uint64_t max_page_size() const noexcept { return std::uint64_t{1} << (12 + mpsmax()); }
    [[nodiscard]] constexpr bool pmr_supported() const noexcept { return detail::bits(raw, 56, 1) != 0; }
    [[nodiscard]] constexpr bool cmb_supported() const noexcept { return detail::bits(raw, 57, 1) != 0; }
};

// Checks CAP values the driver will size things with: MPSMIN <= MPSMAX, the
// NVM command set present, MQES >= 1 (queues of at least 2 entries), a
// non-zero TO. Errors name the field and its value.
[[nodiscard]] Status validate_cap(Cap cap);

// Picks the controller memory page size (CC.MPS) for a host page size: the
// host page if the controller supports it, else an error saying the range.
[[nodiscard]] Result<std::uint32_t> choose_page_size(Cap cap, std::uint32_t host_page_size);

// NVMe 1.4 §3.1.2 VS — Version.
struct Version {
    std::uint32_t raw = 0;
    [[nodiscard]] constexpr std::uint32_t major() const noexcept { return raw >> 16; }
    [[nodiscard]] constexpr std::uint32_t minor() const noexcept { return (raw >> 8) & 0xffu; }
    [[nodiscard]] constexpr std::uint32_t tertiary() const noexcept { return raw & 0xffu; }
};

// NVMe 1.4 §3.1.5 CC — Controller Configuration.
enum class ShutdownNotification : std::uint32_t { none = 0, normal = 1, abrupt = 2 };

struct ControllerConfig {
    bool enable = false;                       // EN, bit 0
    std::uint32_t command_set = 0;             // CSS, bits 6:4 (000b = NVM command set)
    std::uint32_t mps = 0;                     // MPS, bits 10:7: page size 2^(12 + MPS)
    std::uint32_t arbitration = 0;             // AMS, bits 13:11 (000b = round robin)
    ShutdownNotification shutdown = ShutdownNotification::none;  // SHN, bits 15:14
    std::uint32_t io_sq_entry_shift = 6;       // IOSQES, bits 19:16: 2^6 = 64-byte SQEs
    std::uint32_t io_cq_entry_shift = 4;       // IOCQES, bits 23:20: 2^4 = 16-byte CQEs

    [[nodiscard]] constexpr std::uint32_t encode() const noexcept {
        return (enable ? 1u : 0u) | (command_set & 0x7u) << 4 | (mps & 0xfu) << 7 |
               (arbitration & 0x7u) << 11 | (static_cast<std::uint32_t>(shutdown) & 0x3u) << 14 |
               (io_sq_entry_shift & 0xfu) << 16 | (io_cq_entry_shift & 0xfu) << 20;
    }
    [[nodiscard]] static constexpr ControllerConfig decode(std::uint32_t v) noexcept {
        ControllerConfig c;
        c.enable = (v & 1u) != 0;
        c.command_set = (v >> 4) & 0x7u;
        c.mps = (v >> 7) & 0xfu;
        c.arbitration = (v >> 11) & 0x7u;
        c.shutdown = static_cast<ShutdownNotification>((v >> 14) & 0x3u);
        c.io_sq_entry_shift = (v >> 16) & 0xfu;
        c.io_cq_entry_shift = (v >> 20) & 0xfu;
        return c;
    }
};

// NVMe 1.4 §3.1.6 CSTS — Controller Status.
enum class ShutdownStatus : std::uint32_t { normal = 0, occurring = 1, complete = 2, reserved = 3 };

struct Csts {
    std::uint32_t raw = 0;
    [[nodiscard]] constexpr bool ready() const noexcept { return (raw & 1u) != 0; }          // RDY
    [[nodiscard]] constexpr bool fatal() const noexcept { return (raw & 2u) != 0; }          // CFS
    [[nodiscard]] constexpr ShutdownStatus shutdown() const noexcept {                       // SHST
        return static_cast<ShutdownStatus>((raw >> 2) & 0x3u);
    }
    [[nodiscard]] constexpr bool subsystem_reset_occurred() const noexcept { return (raw & 0x10u) != 0; }  // NSSRO
    [[nodiscard]] constexpr bool processing_paused() const noexcept { return (raw & 0x20u) != 0; }         // PP
    // A read of all ones means the device fell off the bus (surprise removal,
    // failed reset), not a controller that is ready and fatal at once.
    [[nodiscard]] constexpr bool device_gone() const noexcept { return raw == 0xffffffffu; }
};

// CSTS for a message: "CSTS 0x1 (RDY 1, CFS 0, SHST 0)". With CFS set it
// adds what to do (§3.1.6, §10.5: the host resets the controller); all ones
// is named as a device that is gone.
[[nodiscard]] std::string csts_text(Csts c);

// NVMe 1.4 §3.1.8 AQA: ASQS bits 11:0 and ACQS bits 27:16, both 0-based.
// The admin queues hold 2..4096 entries.
inline constexpr std::uint32_t max_admin_queue_entries = 4096;
[[nodiscard]] Result<std::uint32_t> encode_aqa(std::uint32_t sq_entries, std::uint32_t cq_entries);

// NVMe 1.4 §3.1.24 SQyTDBL at 0x1000 + (2y) * (4 << DSTRD),
//          §3.1.25 CQyHDBL at 0x1000 + (2y + 1) * (4 << DSTRD).
[[nodiscard]] constexpr std::uint64_t sq_tail_doorbell(std::uint32_t qid, std::uint32_t dstrd) noexcept {
    return reg::doorbell_base + (2ull * qid) * (4ull << dstrd);
}
[[nodiscard]] constexpr std::uint64_t cq_head_doorbell(std::uint32_t qid, std::uint32_t dstrd) noexcept {
    return reg::doorbell_base + (2ull * qid + 1) * (4ull << dstrd);
}

// Checks that queue `qid`'s doorbells lie inside a BAR0 of `bar_size` bytes,
// so a large DSTRD can never make the glue write outside the mapping.
[[nodiscard]] Status check_doorbells_in_bar(std::uint32_t qid, std::uint32_t dstrd, std::uint64_t bar_size);

struct DoorbellOffsets {
    std::uint64_t sq_tail = 0;
    std::uint64_t cq_head = 0;
};

// The error mapped_doorbells returns.
[[nodiscard]] Error doorbell_not_mapped(std::uint32_t qid, std::uint32_t dstrd, std::uint64_t offset);

// Queue `qid`'s doorbell offsets, once both 4-byte registers are known to lie
// in an mmapped part of BAR0 (`mapped(offset, 4)`): VFIO may map only part of
// a BAR (the MSI-X table is often left out), and a write outside the mapping
// would fault or land elsewhere. ERANGE names the offset, DSTRD and what to do.
template <typename IsMapped>
[[nodiscard]] Result<DoorbellOffsets> mapped_doorbells(std::uint32_t qid, std::uint32_t dstrd, IsMapped&& mapped) {
    const DoorbellOffsets d{sq_tail_doorbell(qid, dstrd), cq_head_doorbell(qid, dstrd)};
    for (const std::uint64_t offset : {d.sq_tail, d.cq_head}) {
        if (!mapped(offset, std::uint64_t{4})) return doorbell_not_mapped(qid, dstrd, offset);
    }
    return d;
}

}  // namespace dmakit::nvme
