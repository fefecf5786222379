#include <dmakit/drivers/nvme/commands.hpp>

#include <dmakit/drivers/nvme/format.hpp>

#include <cerrno>
#include <string>

namespace dmakit::nvme {

namespace {

SubmissionEntry with_opcode(std::uint8_t opcode) {
    SubmissionEntry e;
    e.cdw0 = opcode;  // FUSE = 0 (normal), PSDT = 00b (PRPs); CID set at submit
    return e;
}

Error bad_count(std::string_view what, std::uint64_t value, std::string_view range) {
    return Error(EINVAL, std::string(what) + " " + std::to_string(value) + " is outside " + std::string(range));
}

Status check_queue(std::string_view kind, std::uint16_t qid, std::uint32_t entries, std::uint64_t base) {
    if (qid == 0) {
        return Error(EINVAL, std::string(kind) + " queue id 0 is the admin queue; I/O queues start at 1");
    }
    if (entries < 2 || entries > 65536) {
        return bad_count(std::string(kind) + " queue size", entries, "2..65536 entries (QSIZE is 0-based)");
    }
    // §5.3/§5.4: with PC=1 PRP1 is the queue base and must be page aligned;
    // 4 KiB is the smallest controller page, the glue checks against CC.MPS.
    if ((base & 0xfffu) != 0) {
        return Error(EINVAL, std::string(kind) + " queue base " + hex(base) + " is not 4 KiB aligned");
    }
    return {};
}

Result<SubmissionEntry> rw(std::uint8_t opcode, std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                           DataPointer data, IoFlags flags) {
    if (blocks == 0 || blocks > 65536) {
        return bad_count("block count", blocks, "1..65536 (NLB is 16 bits, 0-based)");
    }
    if (slba + (blocks - 1) < slba) {
        return Error(EINVAL, "starting LBA " + hex(slba) + " plus " + std::to_string(blocks) + " blocks wraps around");
    }
    SubmissionEntry e = with_opcode(opcode);
    e.nsid = nsid;
    e.set_data(data);
    e.cdw10 = static_cast<std::uint32_t>(slba);
    e.cdw11 = static_cast<std::uint32_t>(slba >> 32);
    e.cdw12 = (blocks - 1) | (flags.force_unit_access ? 1u << 30 : 0u) | (flags.limited_retry ? 1u << 31 : 0u);
    return e;
}

}  // namespace

SubmissionEntry identify(IdentifyCns cns, std::uint32_t nsid, DataPointer data, std::uint16_t cntid) {
    SubmissionEntry e = with_opcode(admin_opcode::identify);
    e.nsid = nsid;
    e.set_data(data);
    e.cdw10 = static_cast<std::uint32_t>(cns) | std::uint32_t{cntid} << 16;
    return e;
}

SubmissionEntry set_features(std::uint8_t fid, std::uint32_t cdw11, bool save) {
    SubmissionEntry e = with_opcode(admin_opcode::set_features);
    e.cdw10 = fid | (save ? 1u << 31 : 0u);  // FID 7:0, SV bit 31
    e.cdw11 = cdw11;
    return e;
}

SubmissionEntry get_features(std::uint8_t fid, FeatureSelect sel, std::uint32_t cdw11) {
    SubmissionEntry e = with_opcode(admin_opcode::get_features);
    e.cdw10 = fid | std::uint32_t{static_cast<std::uint8_t>(sel)} << 8;  // FID 7:0, SEL 10:8
    e.cdw11 = cdw11;
    return e;
}

Result<SubmissionEntry> set_number_of_queues(std::uint32_t sq_count, std::uint32_t cq_count) {
    // §5.21.1.7: 65535 (FFFFh 0-based) is invalid, so at most 65535 queues.
    if (sq_count == 0 || sq_count > 65535) return bad_count("I/O SQ count", sq_count, "1..65535");
    if (cq_count == 0 || cq_count > 65535) return bad_count("I/O CQ count", cq_count, "1..65535");
    return set_features(feature::number_of_queues, (sq_count - 1) | (cq_count - 1) << 16);
}

Result<SubmissionEntry> doorbell_buffer_config(std::uint64_t shadow, std::uint64_t event_idx, std::uint64_t page_size) {
    // §5.7: both buffers memory page aligned; 0 is no buffer at all.
    if (page_size == 0 || shadow == 0 || event_idx == 0 || shadow % page_size != 0 || event_idx % page_size != 0) {
        return Error(EINVAL, "Doorbell Buffer Config needs two page-aligned, non-zero buffer addresses");
    }
    SubmissionEntry e = with_opcode(admin_opcode::doorbell_buffer_config);
    e.prp1 = shadow;
    e.prp2 = event_idx;
    return e;
}

Result<SubmissionEntry> create_io_cq(const CreateCqParams& p) {
    DMAKIT_TRY(check_queue("completion", p.qid, p.entries, p.base));
    SubmissionEntry e = with_opcode(admin_opcode::create_io_cq);
    e.prp1 = p.base;
    e.cdw10 = p.qid | (p.entries - 1) << 16;  // QID 15:0, QSIZE 31:16
    e.cdw11 = (p.contiguous ? 1u : 0u) | (p.irq_enabled ? 2u : 0u) | std::uint32_t{p.vector} << 16;
    return e;
}

Result<SubmissionEntry> create_io_sq(const CreateSqParams& p) {
    DMAKIT_TRY(check_queue("submission", p.qid, p.entries, p.base));
    if (p.cqid == 0) {
        return Error(EINVAL, "an I/O submission queue cannot complete to the admin CQ (CQID 0)");
    }
    SubmissionEntry e = with_opcode(admin_opcode::create_io_sq);
    e.prp1 = p.base;
    e.cdw10 = p.qid | (p.entries - 1) << 16;
    // PC bit 0, QPRIO 2:1, CQID 31:16
    e.cdw11 = (p.contiguous ? 1u : 0u) | std::uint32_t{static_cast<std::uint8_t>(p.priority)} << 1 |
              std::uint32_t{p.cqid} << 16;
    return e;
}

SubmissionEntry delete_io_cq(std::uint16_t qid) {
    SubmissionEntry e = with_opcode(admin_opcode::delete_io_cq);
    e.cdw10 = qid;
    return e;
}

SubmissionEntry delete_io_sq(std::uint16_t qid) {
    SubmissionEntry e = with_opcode(admin_opcode::delete_io_sq);
    e.cdw10 = qid;
    return e;
}

Result<SubmissionEntry> get_log_page(const GetLogPageParams& p) {
    if (p.bytes == 0 || p.bytes % 4 != 0 || p.bytes / 4 > (std::uint64_t{1} << 32)) {
        return bad_count("log page length", p.bytes, "4..16 GiB bytes in whole dwords");
    }
    if (p.offset % 4 != 0) {
        return Error(EINVAL, "log page offset " + std::to_string(p.offset) + " is not dword aligned");
    }
    const auto numd = static_cast<std::uint32_t>(p.bytes / 4 - 1);  // 0-based dword count
    SubmissionEntry e = with_opcode(admin_opcode::get_log_page);
    e.nsid = p.nsid;
    e.set_data(p.data);
    // LID 7:0, RAE bit 15, NUMDL 31:16 | NUMDU 15:0 of CDW11 | LPOL/LPOU
    e.cdw10 = p.lid | (p.retain_async_event ? 1u << 15 : 0u) | (numd & 0xffffu) << 16;
    e.cdw11 = numd >> 16;
    e.cdw12 = static_cast<std::uint32_t>(p.offset);
    e.cdw13 = static_cast<std::uint32_t>(p.offset >> 32);
    return e;
}

Result<SubmissionEntry> get_error_log(std::uint32_t entries, DataPointer data) {
    // ELPE allows at most 256 entries (§5.15.2.1, 0-based byte).
    if (entries == 0 || entries > 256) return bad_count("error log entries", entries, "1..256");
    return get_log_page({.lid = log_page::error_information,
                         .nsid = nsid_all,
                         .bytes = std::uint64_t{entries} * log_page::error_entry_size,
                         .offset = 0,
                         .retain_async_event = false,
                         .data = data});
}

Result<SubmissionEntry> get_smart_log(DataPointer data, std::uint32_t nsid) {
    return get_log_page({.lid = log_page::smart_health,
                         .nsid = nsid,
                         .bytes = log_page::smart_size,
                         .offset = 0,
                         .retain_async_event = false,
                         .data = data});
}

SubmissionEntry abort_command(std::uint16_t sqid, std::uint16_t cid) {
    SubmissionEntry e = with_opcode(admin_opcode::abort);
    e.cdw10 = sqid | std::uint32_t{cid} << 16;  // SQID 15:0, CID 31:16
    return e;
}

Result<SubmissionEntry> read_blocks(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks, DataPointer data,
                                    IoFlags flags) {
    return rw(nvm_opcode::read, nsid, slba, blocks, data, flags);
}

Result<SubmissionEntry> write_blocks(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks, DataPointer data,
                                     IoFlags flags) {
    return rw(nvm_opcode::write, nsid, slba, blocks, data, flags);
}

SubmissionEntry flush(std::uint32_t nsid) {
    SubmissionEntry e = with_opcode(nvm_opcode::flush);
    e.nsid = nsid;
    return e;
}

Result<SubmissionEntry> write_zeroes(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks, bool deallocate,
                                     IoFlags flags) {
    auto e = rw(nvm_opcode::write_zeroes, nsid, slba, blocks, {}, flags);
    if (e && deallocate) e->cdw12 |= 1u << 25;  // DEAC
    return e;
}

Result<SubmissionEntry> dsm_deallocate(std::uint32_t nsid, std::uint32_t range_count, DataPointer ranges) {
    if (range_count == 0 || range_count > max_dsm_ranges) {
        return bad_count("dataset management range count", range_count, "1..256");
    }
    SubmissionEntry e = with_opcode(nvm_opcode::dataset_management);
    e.nsid = nsid;
    e.set_data(ranges);
    e.cdw10 = range_count - 1;  // NR, 0-based
    e.cdw11 = 1u << 2;          // AD: attribute deallocate
    return e;
}

std::string_view status_name(std::uint8_t type, std::uint8_t code) noexcept {
    switch (type) {
    case sct::generic:  // §4.6.1.2.1 Generic Command Status
        switch (code) {
        case 0x00: return "Successful Completion";
        case 0x01: return "Invalid Command Opcode";
        case 0x02: return "Invalid Field in Command";
        case 0x03: return "Command ID Conflict";
        case 0x04: return "Data Transfer Error";
        case 0x05: return "Commands Aborted due to Power Loss Notification";
        case 0x06: return "Internal Error";
        case 0x07: return "Command Abort Requested";
        case 0x08: return "Command Aborted due to SQ Deletion";
        case 0x09: return "Command Aborted due to Failed Fused Command";
        case 0x0a: return "Command Aborted due to Missing Fused Command";
        case 0x0b: return "Invalid Namespace or Format";
        case 0x0c: return "Command Sequence Error";
        case 0x0d: return "Invalid SGL Segment Descriptor";
        case 0x0e: return "Invalid Number of SGL Descriptors";
        case 0x0f: return "Data SGL Length Invalid";
        case 0x10: return "Metadata SGL Length Invalid";
        case 0x11: return "SGL Descriptor Type Invalid";
        case 0x12: return "Invalid Use of Controller Memory Buffer";
        case 0x13: return "PRP Offset Invalid";
        case 0x14: return "Atomic Write Unit Exceeded";
        case 0x15: return "Operation Denied";
        case 0x16: return "SGL Offset Invalid";
        case 0x18: return "Host Identifier Inconsistent Format";
        case 0x19: return "Keep Alive Timer Expired";
        case 0x1a: return "Keep Alive Timeout Invalid";
        case 0x1b: return "Command Aborted due to Preempt and Abort";
        case 0x1c: return "Sanitize Failed";
        case 0x1d: return "Sanitize In Progress";
        case 0x1e: return "SGL Data Block Granularity Invalid";
        case 0x1f: return "Command Not Supported for Queue in CMB";
        case 0x20: return "Namespace is Write Protected";
        case 0x21: return "Command Interrupted";
        case 0x22: return "Transient Transport Error";
        // NVM command set generic codes
        case 0x80: return "LBA Out of Range";
        case 0x81: return "Capacity Exceeded";
        case 0x82: return "Namespace Not Ready";
        case 0x83: return "Reservation Conflict";
        case 0x84: return "Format In Progress";
        default: break;
        }
        break;
    case sct::command_specific:  // §4.6.1.2.2 Command Specific Status
        switch (code) {
        case 0x00: return "Completion Queue Invalid";
        case 0x01: return "Invalid Queue Identifier";
        case 0x02: return "Invalid Queue Size";
        case 0x03: return "Abort Command Limit Exceeded";
        case 0x05: return "Asynchronous Event Request Limit Exceeded";
        case 0x06: return "Invalid Firmware Slot";
        case 0x07: return "Invalid Firmware Image";
        case 0x08: return "Invalid Interrupt Vector";
        case 0x09: return "Invalid Log Page";
        case 0x0a: return "Invalid Format";
        case 0x0b: return "Firmware Activation Requires Conventional Reset";
        case 0x0c: return "Invalid Queue Deletion";
        case 0x0d: return "Feature Identifier Not Saveable";
        case 0x0e: return "Feature Not Changeable";
        case 0x0f: return "Feature Not Namespace Specific";
        case 0x10: return "Firmware Activation Requires NVM Subsystem Reset";
        case 0x11: return "Firmware Activation Requires Controller Level Reset";
        case 0x12: return "Firmware Activation Requires Maximum Time Violation";
        case 0x13: return "Firmware Activation Prohibited";
        case 0x14: return "Overlapping Range";
        case 0x15: return "Namespace Insufficient Capacity";
        case 0x16: return "Namespace Identifier Unavailable";
        case 0x18: return "Namespace Already Attached";
        case 0x19: return "Namespace Is Private";
        case 0x1a: return "Namespace Not Attached";
        case 0x1b: return "Thin Provisioning Not Supported";
        case 0x1c: return "Controller List Invalid";
        case 0x1d: return "Device Self-test In Progress";
        case 0x1e: return "Boot Partition Write Prohibited";
        case 0x1f: return "Invalid Controller Identifier";
        case 0x20: return "Invalid Secondary Controller State";
        case 0x21: return "Invalid Number of Controller Resources";
        case 0x22: return "Invalid Resource Identifier";
        case 0x23: return "Sanitize Prohibited While Persistent Memory Region is Enabled";
        case 0x24: return "ANA Group Identifier Invalid";
        case 0x25: return "ANA Attach Failed";
        // NVM command set specific codes
        case 0x80: return "Conflicting Attributes";
        case 0x81: return "Invalid Protection Information";
        case 0x82: return "Attempted Write to Read Only Range";
        default: break;
        }
        break;
    case sct::media_error:  // §4.6.1.2.3 Media and Data Integrity Errors
        switch (code) {
        case 0x80: return "Write Fault";
        case 0x81: return "Unrecovered Read Error";
        case 0x82: return "End-to-end Guard Check Error";
        case 0x83: return "End-to-end Application Tag Check Error";
        case 0x84: return "End-to-end Reference Tag Check Error";
        case 0x85: return "Compare Failure";
        case 0x86: return "Access Denied";
        case 0x87: return "Deallocated or Unwritten Logical Block";
        default: break;
        }
        break;
    case sct::path:  // §4.6.1.2.4 Path Related Status
        switch (code) {
        case 0x00: return "Internal Path Error";
        case 0x01: return "Asymmetric Access Persistent Loss";
        case 0x02: return "Asymmetric Access Inaccessible";
        case 0x03: return "Asymmetric Access Transition";
        case 0x60: return "Controller Pathing Error";
        case 0x61: return "Host Pathing Error";
        case 0x70: return "Command Aborted By Host";
        default: break;
        }
        break;
    case sct::vendor_specific: return "Vendor Specific";
    default: break;
    }
    return "Unknown status";
}

Error status_error(CompletionStatus s, std::string_view what) {
    int code = EIO;
    if (s.sct == sct::generic) {
        switch (s.sc) {
        case sc::invalid_opcode: code = EOPNOTSUPP; break;
        case sc::invalid_field:
        case sc::invalid_namespace:
        case sc::prp_offset_invalid: code = EINVAL; break;
        case sc::abort_requested:
        case sc::aborted_sq_deletion: code = ECANCELED; break;
        case sc::lba_out_of_range: code = ERANGE; break;
        case sc::capacity_exceeded: code = ENOSPC; break;
        case sc::namespace_not_ready: code = EAGAIN; break;
        default: break;
        }
    } else if (s.sct == sct::command_specific) {
        code = EINVAL;
    } else if (s.sct == sct::media_error && s.sc == 0x86) {
        code = EACCES;
    }
    std::string message(what);
    message += ": ";
    message += status_name(s);
    message += " (sct " + hex(s.sct) + " sc " + hex(s.sc) + (s.do_not_retry ? ", do not retry" : "") + ")";
    // §4.6.1 M: the controller logged more about this command.
    if (s.more) message += "; more in the Error Information log (Get Log Page 01h, Controller::error_log())";
    return Error(code, std::move(message));
}

}  // namespace dmakit::nvme
