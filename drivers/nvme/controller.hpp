// NVMe controller over VFIO and the dmakit DMA API (NVMe 1.4).
//
//     auto domain = dma::PciDomain::open(address);
//     auto ctrl = nvme::Controller::open((*domain)->function(0), {});
//     auto* q = *(*ctrl)->create_io_queue();       // one per thread
//     auto status = q->read_sync(nsid, slba, blocks, segments);
// (with <dmakit/drivers/nvme/io_queue.hpp> for IoQueue; compiled as written
// in tests/unit/header_examples/header_examples.cpp)
//
// open() brings the controller up per §7.6.1 from whatever state it was left
// in (enabled, shut down, queues still created, fatal): it disables it first
// and falls back to a function reset (VFIO_DEVICE_RESET) when it does not
// come back. Identify data and every register value are checked before they
// size anything. Closing (or shutdown()) deletes the I/O queues and does a
// normal shutdown with CC.SHN (§7.6.2).
//
// A queue delete that fails or times out leaves the controller owning the
// queue's rings, PRP lists and data buffers: it is disabled (CC.EN=0, CSTS.RDY=0
// within CAP.TO, a function reset if not) before any of that is freed, and
// needs reset() afterwards. If even that fails the memory is leaked on
// purpose (kept mapped, never reused, logged) rather than freed under a
// device that may still write it.
//
// An admin command that times out, or finds CSTS.CFS set (§10.5), leaves
// the admin queue refused until reset(); its data page and, for a queue
// create, the new queue's rings stay allocated until the controller has
// been disabled (reset(), or the destructor, which leaks them if it will
// not stop). reset() reads CAP again (§3.1.1) and sizes queues and
// doorbells by the new value.
//
// Threads: admin commands (create_io_queue, smart_log, abort, ...) may come
// from any thread; they are serialised by a mutex. Each IoQueue belongs to
// one thread. reset() and shutdown() need every IoQueue quiet.
#pragma once

#include <dmakit/drivers/nvme/async_events.hpp>
#include <dmakit/drivers/nvme/controller_bus.hpp>
#include <dmakit/drivers/nvme/identify.hpp>
#include <dmakit/drivers/nvme/log_pages.hpp>
#include <dmakit/drivers/nvme/queue.hpp>
#include <dmakit/drivers/nvme/registers.hpp>
#include <dmakit/drivers/nvme/sgl.hpp>
#include <dmakit/drivers/nvme/shadow_doorbells.hpp>

#include <dmakit/dma/coherent.hpp>
#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/support/result.hpp>
#include <dmakit/vfio/device.hpp>
#include <dmakit/vfio/interrupts.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

namespace dmakit::nvme {

class IoQueue;

struct ControllerOptions {
    std::uint32_t admin_queue_depth = 32;
    // I/O queue pairs asked for with Set Features Number of Queues (§5.21.1.7);
    // the controller may grant fewer.
    std::uint32_t max_io_queues = 8;
    // Entries per I/O queue when create_io_queue() is given 0; capped at CAP.MQES.
    // At most max_queue_depth (4096), so every command ID keeps 4 generation bits.
    std::uint32_t io_queue_depth = 256;
    // MSI-X: vector q signals I/O queue q (IEN=1 on its CQ); the admin queue
    // is always polled. Off: every queue is polled.
    bool interrupts = false;
    // Shadow doorbells (Doorbell Buffer Config, NVMe 1.3 §5.7) when the
    // controller offers them (OACS bit 8): doorbell values go to host memory
    // and a register is written only when the controller's EventIdx asks for
    // it. Sent again after every reset; a refusal falls back to register
    // writes with a log line.
    bool shadow_doorbells = true;
    std::chrono::milliseconds admin_timeout{10'000};
    std::chrono::milliseconds io_timeout{10'000};
    // Largest transfer per command the driver builds, also bounded by MDTS
    // (the default: MDTS alone; a controller reporting no MDTS still has
    // NLB's 65536 blocks per command).
    std::uint64_t max_transfer_cap = std::numeric_limits<std::uint64_t>::max();
    // Each new I/O queue's data pointer policy (IoQueue::set_data_transfer):
    // PRP or SGL per command (NVMe 1.4 §4.3, §4.4).
    DataTransfer data_transfer = DataTransfer::automatic;
    // Each new I/O queue splits a request above max_transfer() into several
    // commands (IoQueue::set_split); off, such a request is refused.
    bool split_io = true;
    // Null: the DMA context's logger.
    const Logger* logger = nullptr;
    // Asynchronous Event Requests (§5.2) kept outstanding on the admin
    // queue, at most Identify Controller AERL + 1; 0 turns events off.
    std::uint32_t async_event_requests = 4;
    // Runs from process_events(), on its caller's thread with no lock held,
    // once per event, after the log page that clears it was read.
    AsyncEventCallback on_async_event = nullptr;
    void* async_event_user = nullptr;
};

// What a synchronous admin command returns: its completion (status checked by the caller).
struct AdminResult {
    CompletionStatus status;
    std::uint32_t dw0 = 0;
};

class Controller {
public:
    // `device` must outlive the controller. Fails with a message saying what
    // was wrong (register values, timeouts with the CSTS seen, identify data).
    [[nodiscard]] static Result<std::unique_ptr<Controller>> open(dma::PciFunction& device,
                                                                 ControllerOptions options = {});
    // Same over any ControllerBus (a software controller model in unit tests).
    [[nodiscard]] static Result<std::unique_ptr<Controller>> open(std::unique_ptr<ControllerBus> bus,
                                                                 ControllerOptions options = {});
    // shutdown() unless abandon() was called.
    ~Controller();
    Controller(const Controller&) = delete;
    Controller& operator=(const Controller&) = delete;

    [[nodiscard]] const ControllerInfo& info() const noexcept { return info_; }
    [[nodiscard]] Cap cap() const noexcept { return cap_; }
    [[nodiscard]] Version version() const noexcept { return version_; }
    // Every active namespace (Identify CNS 02h), with its LBA format;
    // namespaces with metadata included (NamespaceInfo::metadata_size()).
    // A namespace change (process_events()) publishes a new table; tables
    // are never freed before the controller, so what these return stays
    // valid, and I/O queues on other threads pick the new one up at their
    // next command.
    [[nodiscard]] std::span<const NamespaceInfo> namespaces() const noexcept {
        return *namespaces_.load(std::memory_order_acquire);
    }
    [[nodiscard]] const NamespaceInfo* find_namespace(std::uint32_t nsid) const noexcept;
    // "namespace 9 is not active on this controller (active: 1, 2)".
    [[nodiscard]] Error no_such_namespace(std::uint32_t nsid) const;
    // Controller memory page size (CC.MPS) and the largest transfer per command.
    [[nodiscard]] std::uint64_t page_size() const noexcept { return page_size_; }
    [[nodiscard]] std::uint64_t max_transfer() const noexcept { return max_transfer_; }
    // What Identify SGLS says about SGL data transfers (§5.15.2.1).
    [[nodiscard]] SglSupport sgl_support() const noexcept { return SglSupport::from_sgls(info_.sgls); }
    [[nodiscard]] std::uint32_t io_queues_granted() const noexcept { return io_queues_granted_; }
    [[nodiscard]] std::uint32_t max_io_queue_depth() const noexcept { return cap_.max_queue_entries(); }
    [[nodiscard]] bool interrupts_enabled() const noexcept { return interrupts_.has_value(); }
    // Whether the controller accepted the doorbell buffers (see ControllerOptions::shadow_doorbells).
    [[nodiscard]] bool shadow_doorbells_active() const noexcept { return dbbuf_active_; }

    // Creates an I/O CQ/SQ pair (§5.3, §5.4) with its own PRP-list pool.
    // `depth` 0 means ControllerOptions::io_queue_depth; above max_queue_depth
    // (4096) is EINVAL, above CAP.MQES is capped. The controller owns the
    // queue; the pointer is valid until delete_io_queue or destruction.
    // A create the controller refuses frees everything; one that times out
    // keeps the rings (leaked_io_queues()) until the controller is disabled.
    [[nodiscard]] Result<IoQueue*> create_io_queue(std::uint32_t depth = 0);
    // Deletes SQ then CQ (§5.6, §5.5); outstanding commands complete as
    // cancelled. An inactive queue (IoQueue::active()) is not on the
    // controller and is just freed. The pointer is invalid afterwards,
    // whatever the result. If either delete fails or times out, the
    // controller is disabled first (every queue's commands complete as
    // cancelled, reset() needed); if it will not disable, the queue's memory
    // is leaked (leaked_io_queues()).
    [[nodiscard]] Status delete_io_queue(IoQueue* queue);
    [[nodiscard]] std::size_t io_queue_count() const noexcept { return io_queues_.size(); }
    // Queues whose memory is kept mapped and unused because the controller
    // may still hold it: it would not stop after a failed delete, or a
    // create_io_queue timed out (or its CQ would not go again). The next
    // successful disable (reset(), destruction) frees them.
    [[nodiscard]] std::size_t leaked_io_queues() const noexcept { return leaked_queues_.size(); }

    // Runs one admin command and waits for it (options.admin_timeout unless given).
    // A non-success status is returned as the AdminResult, not as an Error.
    [[nodiscard]] Result<AdminResult> admin(const SubmissionEntry& sqe,
                                            std::chrono::milliseconds timeout = std::chrono::milliseconds{0});
    // Same, but a non-success status is an Error naming it.
    [[nodiscard]] Result<std::uint32_t> admin_ok(const SubmissionEntry& sqe, std::string_view what);

    [[nodiscard]] Result<SmartLog> smart_log(std::uint32_t nsid = nsid_all);
    [[nodiscard]] Result<std::vector<ErrorLogEntry>> error_log(std::uint32_t entries = 0);  // 0: ELPE + 1
    // §5.1 Abort. Ok when the controller accepted it; DW0 bit 0 = 0 means
    // the command was aborted (it then completes with Abort Requested).
    [[nodiscard]] Result<bool> abort(std::uint16_t sqid, std::uint16_t cid);

    // Asynchronous events (§5.2). open() and reset() enable them (Set
    // Features Asynchronous Event Configuration: SMART warnings, namespace
    // and firmware notices) and keep ControllerOptions::async_event_requests
    // AERs outstanding. The admin queue is polled, so events wait until
    // process_events() (any thread; call it now and then, e.g. once a
    // second) polls it: each completed AER is decoded, the log page that
    // clears it is read (RAE=0: SMART 02h, Firmware Slot 03h, Changed
    // Namespace List 04h, Error Information 01h), a namespace change
    // rescans the namespaces, the event is logged and passed to
    // on_async_event, and the AER is submitted again. An AER the controller
    // fails (Asynchronous Event Request Limit Exceeded, ...) is not
    // resubmitted. At most 64 events per call, so a device that keeps
    // raising them cannot hold the caller. Outstanding AERs complete as
    // cancelled when the controller is disabled (reset(), destruction,
    // a removal) and are never delivered then.
    [[nodiscard]] Result<std::uint32_t> process_events();
    [[nodiscard]] std::uint32_t async_events_outstanding() const;
    // Events delivered since open().
    [[nodiscard]] std::uint64_t async_events_seen() const;

    // Hot unplug. The kernel asks for a device back through VFIO's device
    // request (vfio/removal_request.hpp); I/O queues ask every 4096 polls,
    // and programs with loops of their own may call check_removal(). When
    // asked, the controller is disabled (CC.EN=0 while the device is still
    // there), interrupts are dropped, admin commands in flight complete as
    // cancelled, BAR0 is retired and the device released, so the kernel can
    // finish the removal. Each IoQueue then completes its own commands as
    // cancelled at its next poll (on its own thread), and every call that
    // would reach the device fails with ENODEV. Memory is freed only after
    // the release (the kernel resets the function on the last close), never
    // while the device could still write it.
    // Returns whether the controller is (now) removed.
    bool check_removal() noexcept;
    [[nodiscard]] bool removed() const noexcept { return removed_.load(std::memory_order_acquire); }

    // CSTS now (one MMIO read).
    [[nodiscard]] Csts status() const noexcept;
    // CSTS.CFS or a read of all ones: the controller needs reset().
    [[nodiscard]] bool failed() const noexcept;

    // Controller reset path (§7.3.2): disable (VFIO function reset if that
    // hangs), complete every outstanding command as cancelled (this releases
    // quarantined buffers of timed-out sync I/O), read CAP again (§3.1.1: it
    // may change across a reset; one the driver cannot use is an error and
    // leaves the controller disabled), re-enable, re-create the existing I/O
    // queues with the same rings at the new CAP.MQES and CAP.DSTRD. IoQueue
    // pointers stay valid. A queue the controller no longer grants or
    // refuses stays inactive and is named in the error; delete it.
    // Until reset() succeeds, admin commands and I/O are refused.
    [[nodiscard]] Status reset();
    // Deletes I/O queues, CC.SHN = normal, waits for CSTS.SHST = complete. Idempotent.
    [[nodiscard]] Status shutdown();
    // Forgets the controller without shutting it down, queues left created:
    // the state a crashed process leaves. For tests of open()'s recovery.
    void abandon() noexcept { abandoned_ = true; }

    [[nodiscard]] ControllerBus& bus() noexcept { return *bus_; }
    [[nodiscard]] dma::DmaDevice& dma() noexcept { return bus_->dma(); }
    [[nodiscard]] const Logger& logger() const noexcept { return *logger_; }
    [[nodiscard]] const ControllerOptions& options() const noexcept { return options_; }
    [[nodiscard]] QueueStats admin_stats() const;
    [[nodiscard]] const vfio::Interrupts* interrupts() const noexcept {
        return interrupts_ ? &*interrupts_ : nullptr;
    }
    // Times open()/reset() fell back to a VFIO function reset.
    [[nodiscard]] std::uint32_t function_resets() const noexcept { return function_resets_; }

private:
    friend class IoQueue;
    Controller(std::unique_ptr<ControllerBus> bus, ControllerOptions options);

    [[nodiscard]] std::uint32_t read32(std::uint32_t offset) const noexcept;
    void write32(std::uint32_t offset, std::uint32_t value) noexcept;
    [[nodiscard]] std::uint64_t read64(std::uint32_t offset) const noexcept;
    void write64(std::uint32_t offset, std::uint64_t value) noexcept;

    [[nodiscard]] Status read_capabilities();
    [[nodiscard]] Result<std::unique_ptr<ShadowDoorbells>> queue_doorbells(std::uint16_t qid);
    // Doorbell Buffer Config after each enable (the controller forgets it at reset).
    [[nodiscard]] Status configure_doorbell_buffer();
    // Shadow entries for a queue about to be created, or register writes only.
    void attach_shadow(ShadowDoorbells& doorbells, std::uint16_t qid) noexcept;
    // After a failed queue delete: disable so the controller owns no memory.
    [[nodiscard]] Status stop_controller_dma(std::string_view why);
    void forget_leaked() noexcept;
    [[nodiscard]] Status wait_ready(bool ready, std::string_view why);
    [[nodiscard]] Status disable();
    [[nodiscard]] Status disable_or_function_reset();
    [[nodiscard]] Status enable();
    [[nodiscard]] Status setup_admin_queue();
    [[nodiscard]] Status identify_all();
    // Active namespace list and Identify Namespace of each; admin_mutex_ held.
    [[nodiscard]] Result<std::vector<NamespaceInfo>> scan_namespaces_locked();
    void publish_namespaces(std::vector<NamespaceInfo> table);
    // Set Features Async Event Configuration and the AERs (open, reset).
    void arm_async_events();
    [[nodiscard]] Status submit_async_event_locked();
    static void on_async_event_completion(void* self, const Completion& c) noexcept;
    [[nodiscard]] AsyncEvent handle_async_event_locked(std::uint32_t dw0);    [[nodiscard]] Status negotiate_queues();
    // On failure `maybe_held` says whether the controller may now hold the
    // queue's rings (a command timed out, or a CQ would not go again).
    [[nodiscard]] Status create_queue_on_device(IoQueue& q, bool& maybe_held);
    [[nodiscard]] Status delete_queue_on_device(IoQueue& q);
    // `what` names the command in errors ("Identify Controller").
    [[nodiscard]] Result<AdminResult> admin_locked(const SubmissionEntry& sqe, std::chrono::milliseconds timeout,
                                                   std::string_view what);
    [[nodiscard]] Result<AdminResult> admin_named(const SubmissionEntry& sqe, std::string_view what);
    [[nodiscard]] Result<dma::CoherentBuffer> alloc_queue_memory(std::size_t bytes);
    [[nodiscard]] Error removed_error(std::string_view what) const;

    std::unique_ptr<ControllerBus> bus_;
    ControllerOptions options_;
    const Logger* logger_;

    Cap cap_;
    Version version_;
    std::uint64_t page_size_ = 4096;
    std::uint64_t max_transfer_ = 0;
    ControllerInfo info_;
    // The namespace table in force, and every one published (kept, see namespaces()).
    std::atomic<const std::vector<NamespaceInfo>*> namespaces_;
    std::vector<std::unique_ptr<const std::vector<NamespaceInfo>>> namespace_tables_;
    std::uint32_t io_queues_granted_ = 0;
    std::optional<vfio::Interrupts> interrupts_;

    mutable std::mutex admin_mutex_;
    dma::CoherentBuffer admin_sq_mem_;
    dma::CoherentBuffer admin_cq_mem_;
    dma::CoherentBuffer scratch_;  // 4 KiB for identify and log pages, under admin_mutex_
    std::unique_ptr<ShadowDoorbells> admin_doorbells_;
    // Declared before the queues: their doorbells point into it.
    DoorbellBuffer dbbuf_;
    bool dbbuf_active_ = false;
    std::optional<QueuePair> admin_;

    // AERs: completions waiting for process_events() (reserved, so the
    // noexcept callback never allocates), under admin_mutex_.
    struct AerCompletion {
        CompletionStatus status;
        std::uint32_t dw0 = 0;
    };
    std::vector<AerCompletion> aer_completions_;
    std::uint32_t aers_wanted_ = 0;
    std::uint32_t aers_outstanding_ = 0;
    std::uint64_t aers_seen_ = 0;

    std::vector<std::unique_ptr<IoQueue>> io_queues_;
    std::vector<std::unique_ptr<IoQueue>> leaked_queues_;  // see delete_io_queue
    bool shut_down_ = false;
    bool admin_broken_ = false;  // an admin command timed out or the controller was stopped: only reset() helps
    bool dma_unsafe_ = false;    // it would not stop: its memory is never freed
    bool abandoned_ = false;
    std::atomic<bool> removed_{false};  // released for a hot unplug: see check_removal()
    std::uint32_t function_resets_ = 0;
};

}  // namespace dmakit::nvme
