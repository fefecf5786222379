// A software NVMe controller behind a ControllerBus, for unit tests of
// Controller and IoQueue without hardware.
//
// Registers: CAP, VS, CC/CSTS (RDY follows EN, SHST follows SHN, CFS when
// the test says), AQA/ASQ/ACQ. A doorbell write is decoded at the moment it
// happens with the CAP.DSTRD then in force, as a device decodes its BAR, so a
// driver that keeps an old stride writes to no queue.
// Queues: the admin queue and each I/O queue are FakeControllers working on
// the rings the host allocated, reached through the TestIommuBackend as a
// device reaches memory through the IOMMU. Admin commands: Identify
// (controller, active namespace list, namespaces 1..namespace_count of
// 512-byte blocks), Get Log Page (SMART at 300 K, others zero), Set
// Features Number of Queues, Create I/O CQ/SQ (checked
// against CAP.MQES and the granted count, §5.3/§5.4), Delete I/O CQ/SQ,
// Abort (never finds the command), Doorbell Buffer Config (§5.7, offered in
// OACS bit 8 unless offer_doorbell_buffer is off: from then on every queue,
// the admin queue included, takes its SQ tail and CQ head from the shadow
// buffer and writes EventIdx, as QEMU does; see FakeController). I/O
// commands complete with success unless a handler says else; with
// move_data, Read and Write move their data through the PRPs or SGL they
// carry (fake_data_path.hpp) to a media image, refusing what a controller
// refuses: above MDTS, an SGL where SGLS says none, a malformed list.
// Namespaces: 1..namespace_count less `detached`, each of `formats[nsid]`
// (512-byte blocks without metadata unless set). Asynchronous events (§5.2):
// AERs are kept (up to AERL + 1, beyond that Asynchronous Event Request
// Limit Exceeded); raise_event() completes one, or queues the event while
// none is outstanding or its type is masked; a type is masked from its
// event until the host reads the clearing log page with RAE=0, which for
// the Changed Namespace List (04h) also empties the list.
//
// Knobs let a test refuse or hang a queue delete or any admin command, make
// the enable or the disable hang, raise CSTS.CFS (NVMe 1.4 §3.1.6) at enable
// or at any time, change CAP between resets, fail the function reset, map
// only part of BAR0, drop or hold I/O.
#pragma once

#include "fake_controller.hpp"
#include "fake_data_path.hpp"

#include <dmakit/drivers/nvme/controller_bus.hpp>

#include <dmakit/testing/test_backend.hpp>

#include <dmakit/drivers/nvme/async_events.hpp>

#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>

namespace dmakit::nvme::testing {

class FakeNvmeBus final : public ControllerBus {
public:
    // MQES 1023, CQR, TO 1 (500 ms), DSTRD 0, CSS NVM, MPSMIN = MPSMAX = 0.
    static constexpr std::uint64_t default_cap =
        1023u | (1ull << 16) | (1ull << 24) | (1ull << 37);

    FakeNvmeBus(dma::DmaDevice& dma, iommu::TestIommuBackend& iommu, const Logger& logger)
        : dma_(dma), iommu_(iommu), logger_(logger) {}

    // ---- knobs ---------------------------------------------------------------
    std::uint64_t cap = default_cap;
    std::uint64_t bar_bytes = 0x2000;
    std::uint64_t mapped_bytes = 0x2000;  // BAR0 is mmapped from 0 up to here
    bool hang_on_disable = false;         // CSTS.RDY stays 1 after CC.EN=0
    bool hang_on_enable = false;          // CSTS.RDY stays 0 after CC.EN=1
    bool function_reset_fails = false;
    // CSTS.CFS. While set the controller processes nothing (doorbells are
    // ignored). CC.EN=0 and the function reset clear it unless fatal_persists.
    bool fatal = false;
    bool fatal_on_enable = false;  // CC.EN=1 raises CFS instead of RDY
    bool fatal_persists = false;
    std::uint32_t queues_granted = 4;
    std::uint32_t namespace_count = 1;
    std::uint8_t mdts = 5;    // Identify MDTS: 2^5 * 4 KiB = 128 KiB
    std::uint32_t sgls = 0;   // Identify SGLS (§5.15.2.1); 0 = no SGL support
    bool move_data = false;   // Read/Write move data to/from `media` (512-byte blocks)
    std::vector<std::byte> media;  // grows to the highest block written
    // The format of a namespace, by NSID (default: 512-byte blocks, no metadata).
    struct NamespaceFormat {
        std::uint8_t lbads = 9;
        std::uint16_t metadata_size = 0;
        bool extended = false;       // FLBAS bit 4: metadata inline
        std::uint8_t dps = 0;        // protection information type
        std::uint64_t blocks = std::uint64_t{1} << 20;
    };
    std::map<std::uint32_t, NamespaceFormat> formats;
    std::set<std::uint32_t> detached;  // NSIDs in 1..namespace_count that are not active
    // Asynchronous events.
    std::uint8_t aerl = 3;                 // Identify Controller AERL, 0-based
    std::size_t max_queued_events = 64;    // events beyond these are dropped (QEMU: aer_max_queued)
    bool offer_doorbell_buffer = true;  // OACS bit 8
    // Every I/O command is kept in io_commands. Off for tests that drive
    // queues from several threads (the queues are independent; the list is not).
    bool record_io = true;
    // New I/O queues wake only on FakeController::process() (see `deferred` there).
    bool defer_io = false;
    // Answers an admin command instead of the model when it returns a value.
    std::function<std::optional<Response>(const SubmissionEntry&)> on_admin;
    // Response to Delete I/O SQ / CQ (default: success, queue deleted).
    std::function<Response(const SubmissionEntry&)> on_delete;
    // Response to each I/O command (default: success).
    std::function<Response(const SubmissionEntry&)> on_io;
    // Runs when the host writes CC.EN=0, before the controller stops: the
    // point where a real device does its last DMA.
    std::function<void()> on_disable;
    // What removal_requested() answers: the kernel asking for the device back.
    bool removal_asked = false;

    // ---- observations ----------------------------------------------------------
    unsigned enables = 0;
    unsigned disables = 0;
    unsigned function_resets = 0;
    std::uint64_t doorbells_outside_mapping = 0;  // Doorbells objects handed out for unmapped offsets
    std::uint64_t doorbells_to_no_queue = 0;
    std::uint64_t doorbells_misplaced = 0;    // writes at no doorbell of the current CAP.DSTRD
    std::uint64_t doorbells_while_fatal = 0;
    std::uint64_t dma_faults = 0;
    std::vector<std::uint8_t> admin_opcodes;
    std::vector<SubmissionEntry> admin_commands;
    std::vector<SubmissionEntry> io_commands;
    std::uint64_t sgl_commands = 0;     // I/O commands with PSDT 01b
    std::uint64_t refused_data = 0;     // data transfers refused (MDTS, SGL, malformed list, IOMMU)
    unsigned removal_checks = 0;
    std::uint32_t async_event_config = 0;          // last Set Features 0Bh CDW11
    std::uint64_t events_posted = 0;               // AERs completed with an event
    std::uint64_t events_dropped = 0;              // raised while max_queued_events were waiting
    std::uint64_t aer_limit_refusals = 0;          // AERs answered Limit Exceeded
    std::map<std::uint8_t, unsigned> clearing_log_reads;  // log pages read with RAE=0, by LID
    bool released = false;                // release() was called: the device is gone
    bool enabled_at_release = false;      // CC.EN when it was released

    [[nodiscard]] bool ready() const noexcept { return ready_; }
    [[nodiscard]] FakeController* io_queue(std::uint16_t qid) {
        auto it = io_.find(qid);
        return it == io_.end() ? nullptr : it->second.get();
    }
    [[nodiscard]] FakeController* admin_queue() { return admin_.get(); }
    [[nodiscard]] std::size_t aers_outstanding() const { return aer_cids_.size(); }
    [[nodiscard]] std::size_t events_waiting() const { return queued_events_.size(); }

    // Raises an event (§5.2.1 type, information, clearing log page).
    void raise_event(AsyncEventType type, std::uint8_t info, std::uint8_t log_page) {
        if (queued_events_.size() >= max_queued_events) {
            ++events_dropped;
            return;
        }
        queued_events_.push_back(AsyncEventCompletion{static_cast<std::uint8_t>(type), info, log_page});
        post_events();
    }
    // Namespace attribute changed (§5.2.1 notice 00h) for `nsids`, which go
    // into the Changed Namespace List.
    void namespaces_changed(const std::vector<std::uint32_t>& nsids) {
        changed_nsids_.insert(changed_nsids_.end(), nsids.begin(), nsids.end());
        raise_event(AsyncEventType::notice, notice_info::namespace_attribute_changed, log_page::changed_namespace_list);
    }
    [[nodiscard]] bool doorbell_buffer_enabled() const noexcept { return dbbuf_shadow_ != 0; }
    // The shadow doorbell and EventIdx buffers' device addresses (0: none).
    [[nodiscard]] std::uint64_t doorbell_buffer() const noexcept { return dbbuf_shadow_; }
    [[nodiscard]] std::uint64_t eventidx_buffer() const noexcept { return dbbuf_event_; }
    // The CPU address the device reaches at `iova`, or null (an IOMMU fault).
    [[nodiscard]] void* device_view(std::uint64_t iova, std::uint64_t length, iommu::Access access) {
        auto cpu = iommu_.translate(iova, length, access);
        if (!cpu) ++dma_faults;
        return cpu ? *cpu : nullptr;
    }

    // ---- ControllerBus -----------------------------------------------------------
    [[nodiscard]] std::string name() const override { return "fake-nvme"; }
    [[nodiscard]] dma::DmaDevice& dma() noexcept override { return dma_; }
    [[nodiscard]] const Logger& logger() const noexcept override { return logger_; }
    [[nodiscard]] std::uint64_t bar_size() const noexcept override { return bar_bytes; }
    [[nodiscard]] bool is_mapped(std::uint64_t offset, std::uint64_t length) const noexcept override {
        return offset + length <= mapped_bytes && offset + length <= bar_bytes;
    }

    [[nodiscard]] std::uint32_t read32(std::uint32_t offset) const noexcept override {
        if (released) return 0xffffffffu;  // what a retired BAR reads
        switch (offset) {
        case reg::cap: return static_cast<std::uint32_t>(cap);
        case reg::cap + 4: return static_cast<std::uint32_t>(cap >> 32);
        case reg::vs: return 0x00010400;
        case reg::cc: return cc_;
        case reg::csts: return (ready_ ? 1u : 0u) | (fatal ? 2u : 0u) | (shutdown_complete_ ? 2u << 2 : 0u);
        default: {
            auto it = regs_.find(offset);
            return it == regs_.end() ? 0 : it->second;
        }
        }
    }

    void write32(std::uint32_t offset, std::uint32_t value) noexcept override {
        if (released) return;
        if (offset != reg::cc) {
            regs_[offset] = value;
            return;
        }
        const ControllerConfig next = ControllerConfig::decode(value);
        const bool was_enabled = ControllerConfig::decode(cc_).enable;
        cc_ = value;
        if (!was_enabled && next.enable) start();
        if (was_enabled && !next.enable) {
            ++disables;
            if (on_disable) on_disable();
            if (!hang_on_disable) stop();
            if (!fatal_persists) fatal = false;  // a controller reset clears a passing fault
        }
        if (next.shutdown == ShutdownNotification::normal) shutdown_complete_ = true;
    }

    [[nodiscard]] std::unique_ptr<Doorbells> doorbells(DoorbellOffsets offsets) override {
        if (!is_mapped(offsets.sq_tail, 4) || !is_mapped(offsets.cq_head, 4)) ++doorbells_outside_mapping;
        return std::make_unique<QueueDoorbells>(*this, offsets);
    }

    [[nodiscard]] Status function_reset() override {
        ++function_resets;
        if (function_reset_fails) return Error(EIO, "fake: function reset failed");
        // FLR: everything back to power-on state, the hang included.
        hang_on_disable = false;
        if (!fatal_persists) fatal = false;
        cc_ = 0;
        stop();
        return {};
    }

    [[nodiscard]] bool removal_requested() noexcept override {
        ++removal_checks;
        return removal_asked;
    }
    // The kernel takes the function back: it is reset and does no more DMA.
    void release() noexcept override {
        enabled_at_release = ControllerConfig::decode(cc_).enable;
        released = true;
        cc_ = 0;
        stop();
    }

private:
    class QueueDoorbells final : public Doorbells {
    public:
        QueueDoorbells(FakeNvmeBus& bus, DoorbellOffsets offsets) : bus_(bus), offsets_(offsets) {}
        void ring_sq_tail(std::uint16_t tail) noexcept override {
            if (FakeController* q = bus_.doorbell_target(offsets_.sq_tail, false)) q->ring_sq_tail(tail);
        }
        void ring_cq_head(std::uint16_t head) noexcept override {
            if (FakeController* q = bus_.doorbell_target(offsets_.cq_head, true)) q->ring_cq_head(head);
        }

    private:
        FakeNvmeBus& bus_;
        DoorbellOffsets offsets_;
    };

    // The queue whose SQ tail (or CQ head) doorbell sits at `offset` under
    // the CAP.DSTRD in force now (§3.1.24, §3.1.25).
    FakeController* doorbell_target(std::uint64_t offset, bool cq_head) noexcept {
        if (released) return nullptr;  // writes go nowhere
        if (fatal) {
            ++doorbells_while_fatal;
            return nullptr;
        }
        const std::uint64_t stride = 4ull << ((cap >> 32) & 0xfu);
        if (offset < reg::doorbell_base || (offset - reg::doorbell_base) % stride != 0 ||
            ((offset - reg::doorbell_base) / stride) % 2 != (cq_head ? 1u : 0u)) {
            ++doorbells_misplaced;
            return nullptr;
        }
        return queue(static_cast<std::uint16_t>((offset - reg::doorbell_base) / stride / 2));
    }

    struct PendingCq {
        CompletionEntry* ring = nullptr;
        std::uint32_t entries = 0;
    };

    FakeController* queue(std::uint16_t qid) noexcept {
        FakeController* q = qid == 0 ? admin_.get() : io_queue(qid);
        if (q == nullptr) ++doorbells_to_no_queue;
        return q;
    }

    std::uint64_t reg64(std::uint32_t offset) const noexcept {
        return std::uint64_t{read32(offset)} | std::uint64_t{read32(offset + 4)} << 32;
    }

    void start() {
        ++enables;
        shutdown_complete_ = false;
        if (fatal_on_enable) fatal = true;
        if (fatal || hang_on_enable) return;  // never ready
        const std::uint32_t aqa = read32(reg::aqa);
        const std::uint32_t sq_entries = (aqa & 0xfffu) + 1;
        const std::uint32_t cq_entries = ((aqa >> 16) & 0xfffu) + 1;
        auto* sq = static_cast<SubmissionEntry*>(device_view(reg64(reg::asq), sq_entries * 64ull, iommu::Access::read));
        auto* cq = static_cast<CompletionEntry*>(device_view(reg64(reg::acq), cq_entries * 16ull, iommu::Access::write));
        if (sq == nullptr || cq == nullptr || sq_entries != cq_entries) return;  // never ready
        admin_ = std::make_unique<FakeController>(sq, cq, sq_entries, 0);
        admin_->handler = [this](const SubmissionEntry& e) { return admin(e); };
        ready_ = true;
    }

    void stop() {
        // A controller reset ends every AER; the host is told nothing more (§5.2).
        aer_cids_.clear();
        masked_types_ = 0;
        dbbuf_shadow_ = dbbuf_event_ = 0;  // a reset forgets the doorbell buffers
        admin_.reset();
        io_.clear();
        pending_cq_.clear();
        ready_ = false;
    }

    Response admin(const SubmissionEntry& e) {
        admin_opcodes.push_back(e.opcode());
        admin_commands.push_back(e);
        if (on_admin) {
            if (std::optional<Response> r = on_admin(e)) return *r;
        }
        const auto qid = static_cast<std::uint16_t>(e.cdw10 & 0xffffu);
        // §5.3/§5.4: QSIZE above CAP.MQES, or a QID outside what Set Features granted.
        const std::uint32_t entries = (e.cdw10 >> 16) + 1;
        const bool is_create = e.opcode() == admin_opcode::create_io_cq || e.opcode() == admin_opcode::create_io_sq;
        if (is_create && (qid == 0 || qid > queues_granted)) {
            return Response{{sc::invalid_queue_id, sct::command_specific}};
        }
        if (is_create && entries > (cap & 0xffffu) + 1) {
            return Response{{sc::invalid_queue_size, sct::command_specific}};
        }
        switch (e.opcode()) {
        case admin_opcode::identify: return identify(e);
        case admin_opcode::set_features:
            if ((e.cdw10 & 0xffu) == feature::number_of_queues) {
                return Response{{}, (queues_granted - 1) << 16 | (queues_granted - 1)};
            }
            if ((e.cdw10 & 0xffu) == feature::async_event_config) async_event_config = e.cdw11;
            return {};
        case admin_opcode::async_event_request:
            if (aer_cids_.size() > aerl) {
                ++aer_limit_refusals;
                return Response{{sc::async_event_limit_exceeded, sct::command_specific}};
            }
            aer_cids_.push_back(e.cid());
            post_events();  // an event that waited for an AER goes now
            return never_answered();  // kept: completed by an event
        case admin_opcode::abort: return Response{{}, 1};  // bit 0 set: not aborted
        case admin_opcode::doorbell_buffer_config: {
            if (!offer_doorbell_buffer) return Response{{sc::invalid_opcode, sct::generic}};
            if (e.prp1 % 4096 != 0 || e.prp2 % 4096 != 0) return Response{{sc::invalid_field, sct::generic}};
            dbbuf_shadow_ = e.prp1;
            dbbuf_event_ = e.prp2;
            // Queues that exist now use it at once (QEMU: the admin queue).
            if (admin_) shadow(*admin_, 0);
            for (auto& [id, q] : io_) shadow(*q, id);
            return {};
        }
        case admin_opcode::get_log_page: return answer_log_page(e);
        case admin_opcode::create_io_cq: {
            auto* ring = static_cast<CompletionEntry*>(device_view(e.prp1, entries * 16ull, iommu::Access::write));
            if (ring == nullptr) return Response{{sc::data_transfer_error, sct::generic}};
            pending_cq_[qid] = {ring, entries};
            return {};
        }
        case admin_opcode::create_io_sq: {
            const auto cqid = static_cast<std::uint16_t>(e.cdw11 >> 16);
            auto* ring = static_cast<SubmissionEntry*>(device_view(e.prp1, entries * 64ull, iommu::Access::read));
            auto cq = pending_cq_.find(cqid);
            if (ring == nullptr || cq == pending_cq_.end() || cq->second.entries != entries) {
                return Response{{sc::invalid_field, sct::generic}};
            }
            auto q = std::make_unique<FakeController>(ring, cq->second.ring, entries, qid);
            q->handler = [this](const SubmissionEntry& io) {
                if (record_io) io_commands.push_back(io);
                if (on_io) return on_io(io);
                return move_data ? transfer(io) : Response{};
            };
            q->deferred = defer_io;
            if (dbbuf_shadow_ != 0) shadow(*q, qid);
            io_[qid] = std::move(q);
            return {};
        }
        case admin_opcode::delete_io_sq:
        case admin_opcode::delete_io_cq: {
            const Response r = on_delete ? on_delete(e) : Response{};
            if (r.status.ok() && !r.drop && !r.hold) {
                if (e.opcode() == admin_opcode::delete_io_sq) {
                    io_.erase(qid);
                } else {
                    pending_cq_.erase(qid);
                }
            }
            return r;
        }
        default: return {};
        }
    }

    // Read / Write on 512-byte blocks of `media` (NVMe 1.4 §6.9, §6.15).
    Response transfer(const SubmissionEntry& e) {
        const bool is_read = e.opcode() == nvm_opcode::read;
        if (!is_read && e.opcode() != nvm_opcode::write) return {};
        auto refuse = [this](std::uint8_t code) {
            ++refused_data;
            return Response{{code, sct::generic}};
        };
        const std::uint64_t slba = e.cdw10 | std::uint64_t{e.cdw11} << 32;
        const std::uint64_t bytes = ((e.cdw12 & 0xffffu) + 1ull) * 512;
        if (mdts != 0 && bytes > (4096ull << mdts)) return refuse(sc::invalid_field);
        const DeviceRead read = [this](std::uint64_t iova, void* out, std::size_t len) {
            const void* p = device_view(iova, len, iommu::Access::read);
            if (p != nullptr) std::memcpy(out, p, len);
            return p != nullptr;
        };
        std::optional<std::vector<DevicePiece>> pieces;
        if (e.psdt() == 1) {
            ++sgl_commands;
            if ((sgls & 3u) == 0) return refuse(sc::invalid_field);
            pieces = decode_sgl(e.prp1, e.prp2, read);
        } else if (e.psdt() == 0) {
            pieces = decode_prp(e.prp1, e.prp2, bytes, read);
        }
        if (!pieces) return refuse(sc::data_transfer_error);
        std::uint64_t total = 0;
        for (const DevicePiece& p : *pieces) {
            total += p.len;
            if (p.bit_bucket && (!is_read || (sgls & (1u << 16)) == 0)) return refuse(sc::invalid_field);
        }
        if (total != bytes) return refuse(0x0f);  // Data SGL Length Invalid (also for PRP: a model check)
        if (media.size() < (slba * 512) + bytes) media.resize(slba * 512 + bytes);
        std::uint64_t at = slba * 512;
        for (const DevicePiece& p : *pieces) {
            if (!p.bit_bucket) {
                void* mem = device_view(p.addr, p.len, is_read ? iommu::Access::write : iommu::Access::read);
                if (mem == nullptr) return refuse(sc::data_transfer_error);
                if (is_read) {
                    std::memcpy(mem, media.data() + at, p.len);
                } else {
                    std::memcpy(media.data() + at, mem, p.len);
                }
            }
            at += p.len;
        }
        return {};
    }

    // Points queue `qid` at its entries (§3.1.24/25 layout at CAP.DSTRD): the
    // shadow read, EventIdx written, through the IOMMU like any DMA.
    void shadow(FakeController& q, std::uint16_t qid) {
        const std::uint64_t stride = 4ull << ((cap >> 32) & 0xfu);
        auto at = [&](std::uint64_t base, bool cq, iommu::Access access) {
            return static_cast<std::uint32_t*>(device_view(base + (2ull * qid + (cq ? 1 : 0)) * stride, 4, access));
        };
        std::uint32_t* sq_tail = at(dbbuf_shadow_, false, iommu::Access::read);
        std::uint32_t* cq_head = at(dbbuf_shadow_, true, iommu::Access::read);
        std::uint32_t* sq_event = at(dbbuf_event_, false, iommu::Access::write);
        std::uint32_t* cq_event = at(dbbuf_event_, true, iommu::Access::write);
        if (sq_tail && cq_head && sq_event && cq_event) q.use_shadow(sq_tail, sq_event, cq_head, cq_event);
    }

    // SMART / Health with a composite temperature of 300 K; the Changed
    // Namespace List; every other log page all zeros (an Error Information
    // log with no entries). RAE=0 clears the events the page belongs to.
    Response answer_log_page(const SubmissionEntry& e) {
        const std::uint64_t bytes = ((e.cdw10 >> 16) + 1ull) * 4;
        auto* out = static_cast<std::byte*>(device_view(e.prp1, bytes, iommu::Access::write));
        if (out == nullptr) return Response{{sc::data_transfer_error, sct::generic}};
        std::memset(out, 0, bytes);
        const auto lid = static_cast<std::uint8_t>(e.cdw10 & 0xffu);
        if (lid == log_page::smart_health && bytes >= 3) {
            const std::uint16_t kelvin = 300;
            std::memcpy(out + 1, &kelvin, sizeof kelvin);
        }
        if (lid == log_page::changed_namespace_list) {
            std::vector<std::uint32_t> list = changed_nsids_;
            if (list.size() > 1024) list.assign(1, 0xffffffffu);
            std::memcpy(out, list.data(), std::min<std::size_t>(bytes, list.size() * 4));
        }
        const bool retain = (e.cdw10 & (1u << 15)) != 0;
        if (!retain) {
            ++clearing_log_reads[lid];
            if (lid == log_page::changed_namespace_list) changed_nsids_.clear();
            masked_types_ &= ~(1u << type_cleared_by(lid));
            post_events();
        }
        return {};
    }

    static Response never_answered() {
        Response r;
        r.drop = true;
        return r;
    }

    // The event type a log page clears (§5.2: error 01h, SMART 02h, notices 03h/04h).
    static unsigned type_cleared_by(std::uint8_t lid) {
        switch (lid) {
        case log_page::error_information: return 0;
        case log_page::smart_health: return 1;
        default: return 2;
        }
    }

    // Completes AERs with queued events of unmasked types, oldest first.
    void post_events() {
        if (admin_ == nullptr) return;
        for (auto it = queued_events_.begin(); it != queued_events_.end() && !aer_cids_.empty();) {
            if ((masked_types_ & (1u << it->type)) != 0) {
                ++it;
                continue;
            }
            masked_types_ |= 1u << it->type;
            const std::uint16_t cid = aer_cids_.front();
            aer_cids_.pop_front();
            ++events_posted;
            admin_->complete(cid, {}, it->encode());
            it = queued_events_.erase(it);
        }
    }

    Response identify(const SubmissionEntry& e) {
        auto* out = static_cast<std::byte*>(device_view(e.prp1, identify_data_size, iommu::Access::write));
        if (out == nullptr) return Response{{sc::data_transfer_error, sct::generic}};
        std::memset(out, 0, identify_data_size);
        auto put = [out](std::size_t offset, auto value) { std::memcpy(out + offset, &value, sizeof value); };
        switch (static_cast<IdentifyCns>(e.cdw10 & 0xffu)) {
        case IdentifyCns::controller:
            put(0, std::uint16_t{0x1b36});
            std::memcpy(out + 4, "fake                ", 20);
            std::memcpy(out + 24, "fake NVMe                               ", 40);
            std::memcpy(out + 64, "1.0     ", 8);
            put(77, mdts);                       // MDTS
            put(80, std::uint32_t{0x00010400});  // VER
            put(512, std::uint8_t{0x66});        // SQES
            put(513, std::uint8_t{0x44});        // CQES
            put(259, aerl);                      // AERL
            put(256, static_cast<std::uint16_t>(offer_doorbell_buffer ? 0x100u : 0u));  // OACS bit 8: Doorbell Buffer Config
            put(516, namespace_count);           // NN
            put(520, std::uint16_t{0x000c});     // ONCS: DSM, Write Zeroes
            put(536, sgls);                      // SGLS
            break;
        case IdentifyCns::active_namespace_list:
            for (std::uint32_t nsid = e.nsid + 1, i = 0; nsid <= namespace_count && i < 1024; ++nsid) {
                if (detached.count(nsid) == 0) put(4 * i++, nsid);
            }
            break;
        case IdentifyCns::namespace_data: {
            if (e.nsid < 1 || e.nsid > namespace_count || detached.count(e.nsid) != 0) break;
            const NamespaceFormat f = formats.count(e.nsid) != 0 ? formats.at(e.nsid) : NamespaceFormat{};
            put(0, f.blocks);   // NSZE
            put(8, f.blocks);   // NCAP
            put(16, f.blocks);  // NUSE
            put(26, static_cast<std::uint8_t>(f.extended ? 0x10 : 0));  // FLBAS: format 0
            put(29, f.dps);     // DPS
            put(128, std::uint32_t{f.lbads} << 16 | f.metadata_size);  // LBAF0
            break;
        }
        }
        return {};
    }

    dma::DmaDevice& dma_;
    iommu::TestIommuBackend& iommu_;
    const Logger& logger_;
    std::uint32_t cc_ = 0;
    bool ready_ = false;
    bool shutdown_complete_ = false;
    std::map<std::uint32_t, std::uint32_t> regs_;
    std::unique_ptr<FakeController> admin_;
    std::map<std::uint16_t, std::unique_ptr<FakeController>> io_;
    std::map<std::uint16_t, PendingCq> pending_cq_;
    std::deque<std::uint16_t> aer_cids_;             // AERs kept, oldest first
    std::deque<AsyncEventCompletion> queued_events_;  // raised, not yet posted
    std::vector<std::uint32_t> changed_nsids_;
    unsigned masked_types_ = 0;
    std::uint64_t dbbuf_shadow_ = 0;
    std::uint64_t dbbuf_event_ = 0;
};

// Lends a bus the test keeps to a Controller (which owns its bus), so the
// test can still look at the model after the controller is gone or failed to open.
class BorrowedBus final : public ControllerBus {
public:
    explicit BorrowedBus(ControllerBus& bus) : bus_(bus) {}
    [[nodiscard]] std::string name() const override { return bus_.name(); }
    [[nodiscard]] dma::DmaDevice& dma() noexcept override { return bus_.dma(); }
    [[nodiscard]] const Logger& logger() const noexcept override { return bus_.logger(); }
    [[nodiscard]] std::uint32_t read32(std::uint32_t offset) const noexcept override { return bus_.read32(offset); }
    void write32(std::uint32_t offset, std::uint32_t value) noexcept override { bus_.write32(offset, value); }
    [[nodiscard]] std::uint64_t bar_size() const noexcept override { return bus_.bar_size(); }
    [[nodiscard]] bool is_mapped(std::uint64_t offset, std::uint64_t length) const noexcept override {
        return bus_.is_mapped(offset, length);
    }
    [[nodiscard]] std::unique_ptr<Doorbells> doorbells(DoorbellOffsets offsets) override {
        return bus_.doorbells(offsets);
    }
    [[nodiscard]] Status function_reset() override { return bus_.function_reset(); }
    [[nodiscard]] bool removal_requested() noexcept override { return bus_.removal_requested(); }
    void release() noexcept override { bus_.release(); }

private:
    ControllerBus& bus_;
};

}  // namespace dmakit::nvme::testing
