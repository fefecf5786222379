// NVMe command formats: submission/completion entries, opcodes, command
// builders and completion status decoding.
//
// Builders only fill in fields; where the data lives is given as a DataPointer
// (PRP1/PRP2, built by prp.hpp from device addresses). Counts are passed
// 1-based as people think of them and encoded 0-based where the spec says so;
// builders that take counts return Result so an impossible count is an error,
// never a silently truncated field. References: NVMe Base Specification 1.4.
#pragma once

#include <dmakit/support/result.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dmakit::nvme {

static_assert(std::endian::native == std::endian::little,
              "NVMe structures are little endian; this code reads them in place");

// Where a command's data lives: PRP Entry 1 and 2 (NVMe 1.4 §4.2, §4.3).
struct DataPointer {
    std::uint64_t prp1 = 0;
    std::uint64_t prp2 = 0;
};

// NVMe 1.4 §4.2 Submission Queue Entry — Command Format (64 bytes).
struct SubmissionEntry {
    std::uint32_t cdw0 = 0;   // OPC 7:0, FUSE 9:8, PSDT 15:14, CID 31:16
    std::uint32_t nsid = 0;
    std::uint32_t cdw2 = 0;
    std::uint32_t cdw3 = 0;
    std::uint64_t mptr = 0;   // metadata pointer
    std::uint64_t prp1 = 0;   // DPTR: PRP Entry 1
    std::uint64_t prp2 = 0;   // DPTR: PRP Entry 2
    std::uint32_t cdw10 = 0;
    std::uint32_t cdw11 = 0;
    std::uint32_t cdw12 = 0;
    std::uint32_t cdw13 = 0;
    std::uint32_t cdw14 = 0;
    std::uint32_t cdw15 = 0;

    [[nodiscard]] constexpr std::uint8_t opcode() const noexcept { return static_cast<std::uint8_t>(cdw0 & 0xffu); }
    [[nodiscard]] constexpr std::uint16_t cid() const noexcept { return static_cast<std::uint16_t>(cdw0 >> 16); }
    constexpr void set_cid(std::uint16_t cid) noexcept { cdw0 = (cdw0 & 0xffffu) | (std::uint32_t{cid} << 16); }
    constexpr void set_data(DataPointer d) noexcept { prp1 = d.prp1; prp2 = d.prp2; }
    // PSDT (CDW0 15:14, §4.2): 01b = DPTR holds SGL Descriptor 1 (metadata, if any, contiguous).
    constexpr void set_sgl(bool sgl) noexcept { cdw0 = (cdw0 & ~0xc000u) | (sgl ? 0x4000u : 0u); }
    [[nodiscard]] constexpr std::uint8_t psdt() const noexcept { return static_cast<std::uint8_t>((cdw0 >> 14) & 3u); }
};
static_assert(sizeof(SubmissionEntry) == 64);
static_assert(offsetof(SubmissionEntry, nsid) == 4);
static_assert(offsetof(SubmissionEntry, mptr) == 16);
static_assert(offsetof(SubmissionEntry, prp1) == 24);
static_assert(offsetof(SubmissionEntry, prp2) == 32);
static_assert(offsetof(SubmissionEntry, cdw10) == 40);
static_assert(offsetof(SubmissionEntry, cdw15) == 60);

// NVMe 1.4 §4.6 Completion Queue Entry (16 bytes).
struct CompletionEntry {
    std::uint32_t dw0 = 0;      // command specific
    std::uint32_t dw1 = 0;      // reserved / command specific
    std::uint16_t sq_head = 0;  // SQHD
    std::uint16_t sq_id = 0;    // SQID
    std::uint16_t cid = 0;      // CID
    std::uint16_t status = 0;   // bit 0: phase tag P; bits 15:1: status field (§4.6.1)
};
static_assert(sizeof(CompletionEntry) == 16);
static_assert(offsetof(CompletionEntry, sq_head) == 8);
static_assert(offsetof(CompletionEntry, sq_id) == 10);
static_assert(offsetof(CompletionEntry, cid) == 12);
static_assert(offsetof(CompletionEntry, status) == 14);

// NVMe 1.4 §5 Admin Command Set opcodes (Figure "Opcodes for Admin Commands").
namespace admin_opcode {
inline constexpr std::uint8_t delete_io_sq = 0x00;
inline constexpr std::uint8_t create_io_sq = 0x01;
inline constexpr std::uint8_t get_log_page = 0x02;
inline constexpr std::uint8_t delete_io_cq = 0x04;
inline constexpr std::uint8_t create_io_cq = 0x05;
inline constexpr std::uint8_t identify = 0x06;
inline constexpr std::uint8_t abort = 0x08;
inline constexpr std::uint8_t set_features = 0x09;
inline constexpr std::uint8_t get_features = 0x0a;
inline constexpr std::uint8_t async_event_request = 0x0c;
inline constexpr std::uint8_t namespace_attachment = 0x15;
inline constexpr std::uint8_t keep_alive = 0x18;
inline constexpr std::uint8_t doorbell_buffer_config = 0x7c;  // NVMe 1.3 §5.7
}  // namespace admin_opcode

// NVMe 1.4 §6 NVM Command Set opcodes.
namespace nvm_opcode {
inline constexpr std::uint8_t flush = 0x00;
inline constexpr std::uint8_t write = 0x01;
inline constexpr std::uint8_t read = 0x02;
inline constexpr std::uint8_t write_uncorrectable = 0x04;
inline constexpr std::uint8_t compare = 0x05;
inline constexpr std::uint8_t write_zeroes = 0x08;
inline constexpr std::uint8_t dataset_management = 0x09;
}  // namespace nvm_opcode

// NVMe 1.4 §5.15 Identify, CNS values (CDW10 bits 7:0).
enum class IdentifyCns : std::uint8_t {
    namespace_data = 0x00,         // Identify Namespace for NSID
    controller = 0x01,             // Identify Controller
    active_namespace_list = 0x02,  // active NSIDs greater than NSID, 1024 entries
};
inline constexpr std::size_t identify_data_size = 4096;

// NVMe 1.4 §5.21.1 Feature Identifiers used by the driver.
namespace feature {
inline constexpr std::uint8_t arbitration = 0x01;
inline constexpr std::uint8_t power_management = 0x02;
inline constexpr std::uint8_t temperature_threshold = 0x04;
inline constexpr std::uint8_t error_recovery = 0x05;
inline constexpr std::uint8_t volatile_write_cache = 0x06;
inline constexpr std::uint8_t number_of_queues = 0x07;
inline constexpr std::uint8_t interrupt_coalescing = 0x08;
inline constexpr std::uint8_t async_event_config = 0x0b;
}  // namespace feature

// NVMe 1.4 §5.14.1 Log Page Identifiers used by the driver.
namespace log_page {
inline constexpr std::uint8_t error_information = 0x01;  // 64-byte entries
inline constexpr std::uint8_t smart_health = 0x02;       // 512 bytes
inline constexpr std::uint8_t firmware_slot = 0x03;      // 512 bytes
inline constexpr std::uint8_t changed_namespace_list = 0x04;  // 4096 bytes: 1024 NSIDs
inline constexpr std::size_t changed_namespace_list_size = 4096;
inline constexpr std::size_t error_entry_size = 64;
inline constexpr std::size_t smart_size = 512;
}  // namespace log_page

// NSID meaning "all namespaces / the controller" (NVMe 1.4 §6.1.2).
inline constexpr std::uint32_t nsid_all = 0xffffffffu;

// ---- Admin command builders -------------------------------------------------

// NVMe 1.4 §5.15 Identify. `data` must describe 4096 bytes.
[[nodiscard]] SubmissionEntry identify(IdentifyCns cns, std::uint32_t nsid, DataPointer data,
                                       std::uint16_t cntid = 0);
[[nodiscard]] inline SubmissionEntry identify_controller(DataPointer data) {
    return identify(IdentifyCns::controller, 0, data);
}
[[nodiscard]] inline SubmissionEntry identify_namespace(std::uint32_t nsid, DataPointer data) {
    return identify(IdentifyCns::namespace_data, nsid, data);
}
// Lists active NSIDs strictly greater than `after_nsid` (0 for all).
[[nodiscard]] inline SubmissionEntry identify_active_namespaces(std::uint32_t after_nsid, DataPointer data) {
    return identify(IdentifyCns::active_namespace_list, after_nsid, data);
}

// NVMe 1.4 §5.21 Set Features / §5.13 Get Features, raw form.
[[nodiscard]] SubmissionEntry set_features(std::uint8_t fid, std::uint32_t cdw11, bool save = false);
enum class FeatureSelect : std::uint8_t { current = 0, default_value = 1, saved = 2, supported_capabilities = 3 };
[[nodiscard]] SubmissionEntry get_features(std::uint8_t fid, FeatureSelect sel = FeatureSelect::current,
                                           std::uint32_t cdw11 = 0);

// NVMe 1.4 §5.21.1.7 Number of Queues: requests `sq_count` I/O SQs and
// `cq_count` I/O CQs (1..65535 each; encoded 0-based in NSQR/NCQR).
[[nodiscard]] Result<SubmissionEntry> set_number_of_queues(std::uint32_t sq_count, std::uint32_t cq_count);
// Decodes completion DW0 of that command (NSQA/NCQA) into 1-based counts.
struct QueueCounts {
    std::uint32_t sq = 0;
    std::uint32_t cq = 0;
};
[[nodiscard]] constexpr QueueCounts decode_number_of_queues(std::uint32_t dw0) noexcept {
    return {(dw0 & 0xffffu) + 1, (dw0 >> 16) + 1};
}

// NVMe 1.3 §5.7 Doorbell Buffer Config: PRP1 the shadow doorbell buffer,
// PRP2 the EventIdx buffer, both page aligned (see shadow_doorbells.hpp).
[[nodiscard]] Result<SubmissionEntry> doorbell_buffer_config(std::uint64_t shadow, std::uint64_t event_idx,
                                                             std::uint64_t page_size);

// NVMe 1.4 §5.3 Create I/O Completion Queue. `entries` is 2..65536 (QSIZE
// is 0-based); `base` is the queue's device address (PRP1; PC=1 means one
// physically contiguous buffer). `irq_enabled`/`vector` set IEN and IV.
struct CreateCqParams {
    std::uint16_t qid = 0;
    std::uint32_t entries = 0;
    std::uint64_t base = 0;
    bool contiguous = true;
    bool irq_enabled = false;
    std::uint16_t vector = 0;
};
[[nodiscard]] Result<SubmissionEntry> create_io_cq(const CreateCqParams& p);

// NVMe 1.4 §5.4 Create I/O Submission Queue. QPRIO only matters under
// weighted round robin arbitration.
enum class QueuePriority : std::uint8_t { urgent = 0, high = 1, medium = 2, low = 3 };
struct CreateSqParams {
    std::uint16_t qid = 0;
    std::uint32_t entries = 0;
    std::uint64_t base = 0;
    std::uint16_t cqid = 0;
    bool contiguous = true;
    QueuePriority priority = QueuePriority::medium;
};
[[nodiscard]] Result<SubmissionEntry> create_io_sq(const CreateSqParams& p);

// NVMe 1.4 §5.5 / §5.6 Delete I/O Completion / Submission Queue.
[[nodiscard]] SubmissionEntry delete_io_cq(std::uint16_t qid);
[[nodiscard]] SubmissionEntry delete_io_sq(std::uint16_t qid);

// NVMe 1.4 §5.14 Get Log Page: `bytes` (a multiple of 4, > 0) is encoded as
// a 0-based dword count split over NUMDL (CDW10 31:16) and NUMDU (CDW11 15:0);
// `offset` (dword aligned) goes to LPOL/LPOU.
struct GetLogPageParams {
    std::uint8_t lid = 0;
    std::uint32_t nsid = nsid_all;
    std::uint64_t bytes = 0;
    std::uint64_t offset = 0;
    bool retain_async_event = false;  // RAE
    DataPointer data;
};
[[nodiscard]] Result<SubmissionEntry> get_log_page(const GetLogPageParams& p);
// Error Information log, `entries` 64-byte entries.
[[nodiscard]] Result<SubmissionEntry> get_error_log(std::uint32_t entries, DataPointer data);
// SMART / Health Information, controller-wide (NSID FFFFFFFFh) by default.
[[nodiscard]] Result<SubmissionEntry> get_smart_log(DataPointer data, std::uint32_t nsid = nsid_all);

// NVMe 1.4 §5.1 Abort: the command `cid` on submission queue `sqid`.
[[nodiscard]] SubmissionEntry abort_command(std::uint16_t sqid, std::uint16_t cid);

// ---- NVM command builders -----------------------------------------------------

// Flags of Read/Write/Write Zeroes CDW12 (NVMe 1.4 §6.9, §6.15, §6.17).
struct IoFlags {
    bool force_unit_access = false;  // FUA, bit 30
    bool limited_retry = false;      // LR, bit 31
};

// NVMe 1.4 §6.9 Read / §6.15 Write: `blocks` is 1..65536 (NLB is 0-based);
// SLBA is CDW10 (low) and CDW11 (high).
[[nodiscard]] Result<SubmissionEntry> read_blocks(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                  DataPointer data, IoFlags flags = {});
[[nodiscard]] Result<SubmissionEntry> write_blocks(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                   DataPointer data, IoFlags flags = {});
// NVMe 1.4 §6.8 Flush.
[[nodiscard]] SubmissionEntry flush(std::uint32_t nsid);
// NVMe 1.4 §6.17 Write Zeroes; `deallocate` sets DEAC (CDW12 bit 25).
[[nodiscard]] Result<SubmissionEntry> write_zeroes(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                   bool deallocate = false, IoFlags flags = {});

// NVMe 1.4 §6.7 Dataset Management range (Figure "Dataset Management – Range Definition").
struct DsmRange {
    std::uint32_t context_attributes = 0;
    std::uint32_t length = 0;  // in logical blocks, 1-based
    std::uint64_t slba = 0;
};
static_assert(sizeof(DsmRange) == 16);
static_assert(offsetof(DsmRange, slba) == 8);
inline constexpr std::uint32_t max_dsm_ranges = 256;

// Dataset Management with AD (deallocate, CDW11 bit 2) over `range_count`
// (1..256) DsmRange records at `ranges` (NR is 0-based, CDW10 7:0).
[[nodiscard]] Result<SubmissionEntry> dsm_deallocate(std::uint32_t nsid, std::uint32_t range_count,
                                                     DataPointer ranges);

// ---- Completion status ----------------------------------------------------------

// NVMe 1.4 §4.6.1.1 Status Code Type.
namespace sct {
inline constexpr std::uint8_t generic = 0x0;
inline constexpr std::uint8_t command_specific = 0x1;
inline constexpr std::uint8_t media_error = 0x2;
inline constexpr std::uint8_t path = 0x3;
inline constexpr std::uint8_t vendor_specific = 0x7;
}  // namespace sct

// A few status codes the driver branches on (NVMe 1.4 §4.6.1.2).
namespace sc {
inline constexpr std::uint8_t success = 0x00;
inline constexpr std::uint8_t invalid_opcode = 0x01;
inline constexpr std::uint8_t invalid_field = 0x02;
inline constexpr std::uint8_t command_id_conflict = 0x03;
inline constexpr std::uint8_t data_transfer_error = 0x04;
inline constexpr std::uint8_t internal_error = 0x06;
inline constexpr std::uint8_t abort_requested = 0x07;
inline constexpr std::uint8_t aborted_sq_deletion = 0x08;
inline constexpr std::uint8_t invalid_namespace = 0x0b;
inline constexpr std::uint8_t prp_offset_invalid = 0x13;
inline constexpr std::uint8_t lba_out_of_range = 0x80;
inline constexpr std::uint8_t capacity_exceeded = 0x81;
inline constexpr std::uint8_t namespace_not_ready = 0x82;
// command specific (SCT 1)
inline constexpr std::uint8_t invalid_queue_id = 0x01;
inline constexpr std::uint8_t invalid_queue_size = 0x02;
inline constexpr std::uint8_t async_event_limit_exceeded = 0x05;
inline constexpr std::uint8_t invalid_log_page = 0x09;
// media (SCT 2)
inline constexpr std::uint8_t write_fault = 0x80;
inline constexpr std::uint8_t unrecovered_read_error = 0x81;
}  // namespace sc

// NVMe 1.4 §4.6.1 Status Field, decoded from the CQE's 16-bit status word
// (bit 0 is the phase tag and is not part of the status).
struct CompletionStatus {
    std::uint8_t sc = 0;       // Status Code, bits 8:1
    std::uint8_t sct = 0;      // Status Code Type, bits 11:9
    std::uint8_t crd = 0;      // Command Retry Delay, bits 13:12
    bool more = false;         // M: more info in the Error Information log, bit 14
    bool do_not_retry = false; // DNR, bit 15

    [[nodiscard]] constexpr bool ok() const noexcept { return sc == 0 && sct == 0; }
    [[nodiscard]] static constexpr CompletionStatus decode(std::uint16_t status_word) noexcept {
        CompletionStatus s;
        s.sc = static_cast<std::uint8_t>((status_word >> 1) & 0xffu);
        s.sct = static_cast<std::uint8_t>((status_word >> 9) & 0x7u);
        s.crd = static_cast<std::uint8_t>((status_word >> 12) & 0x3u);
        s.more = (status_word & 0x4000u) != 0;
        s.do_not_retry = (status_word & 0x8000u) != 0;
        return s;
    }
    // Status word with phase bit 0; for tests and the software model.
    [[nodiscard]] constexpr std::uint16_t encode() const noexcept {
        return static_cast<std::uint16_t>(std::uint32_t{sc} << 1 | std::uint32_t{sct & 0x7u} << 9 |
                                          std::uint32_t{crd & 0x3u} << 12 | (more ? 0x4000u : 0u) |
                                          (do_not_retry ? 0x8000u : 0u));
    }
};
[[nodiscard]] constexpr bool phase_of(const CompletionEntry& e) noexcept { return (e.status & 1u) != 0; }

// Name of a status ("LBA Out of Range", "Invalid Field in Command"); covers
// the generic, command-specific and media/data-integrity tables of NVMe 1.4
// §4.6.1.2 and the path-related codes. Unknown codes give "Unknown status".
[[nodiscard]] std::string_view status_name(std::uint8_t sct, std::uint8_t sc) noexcept;
[[nodiscard]] inline std::string_view status_name(CompletionStatus s) noexcept { return status_name(s.sct, s.sc); }

// An Error for a failed completion: "what: LBA Out of Range (sct 0x0 sc 0x80)"
// with an errno that fits (EINVAL, ERANGE, EIO, ECANCELED, ...); DNR adds
// "do not retry", M where to read more.
[[nodiscard]] Error status_error(CompletionStatus s, std::string_view what);

}  // namespace dmakit::nvme
