#include <dmakit/drivers/nvme/controller.hpp>

#include <dmakit/drivers/nvme/format.hpp>
#include <dmakit/drivers/nvme/io_queue.hpp>
#include <dmakit/drivers/nvme/pci_bus.hpp>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

namespace dmakit::nvme {

using namespace std::chrono_literals;

namespace {

// Queue rings and the admin scratch buffer must start on a controller page:
// ASQ/ACQ bits 11:0 are reserved (§3.1.9, §3.1.10) and PC=1 queues are page
// aligned (§5.3, §5.4); alloc_coherent aligns to the power-of-two size.
std::size_t round_to_page(std::size_t bytes, std::uint64_t page) {
    return std::max<std::size_t>(bytes, page);
}

}  // namespace

Controller::Controller(std::unique_ptr<ControllerBus> bus, ControllerOptions options)
    : bus_(std::move(bus)),
      options_(options),
      logger_(options.logger != nullptr ? options.logger : &bus_->logger()) {
    publish_namespaces({});
}

std::uint32_t Controller::read32(std::uint32_t offset) const noexcept { return bus_->read32(offset); }
void Controller::write32(std::uint32_t offset, std::uint32_t value) noexcept { bus_->write32(offset, value); }
// 64-bit registers as two dword accesses, low first: valid for every
// controller (§3.1: 64-bit registers may be accessed as two 32-bit halves).
std::uint64_t Controller::read64(std::uint32_t offset) const noexcept {
    const std::uint64_t lo = read32(offset);
    const std::uint64_t hi = read32(offset + 4);
    return hi << 32 | lo;
}
void Controller::write64(std::uint32_t offset, std::uint64_t value) noexcept {
    write32(offset, static_cast<std::uint32_t>(value));
    write32(offset + 4, static_cast<std::uint32_t>(value >> 32));
}

Csts Controller::status() const noexcept { return Csts{read32(reg::csts)}; }
bool Controller::failed() const noexcept {
    const Csts c = status();
    return c.device_gone() || c.fatal();
}

const NamespaceInfo* Controller::find_namespace(std::uint32_t nsid) const noexcept {
    for (const NamespaceInfo& ns : namespaces()) {
        if (ns.nsid == nsid) return &ns;
    }
    return nullptr;
}

Error Controller::no_such_namespace(std::uint32_t nsid) const {
    std::string active;
    for (const NamespaceInfo& ns : namespaces()) active += (active.empty() ? "" : ", ") + std::to_string(ns.nsid);
    return Error(EINVAL, "namespace " + std::to_string(nsid) + " is not active on this controller (active: " +
                             (active.empty() ? std::string("none") : active) + ")");
}

void Controller::publish_namespaces(std::vector<NamespaceInfo> table) {
    // Readers on other threads may hold the old table: it stays (see namespaces()).
    namespace_tables_.push_back(std::make_unique<const std::vector<NamespaceInfo>>(std::move(table)));
    namespaces_.store(namespace_tables_.back().get(), std::memory_order_release);
}

Result<std::unique_ptr<Controller>> Controller::open(dma::PciFunction& device, ControllerOptions options) {
    DMAKIT_ASSIGN_OR_RETURN(std::unique_ptr<PciControllerBus> bus, PciControllerBus::open(device));
    return open(std::move(bus), options);
}

Result<std::unique_ptr<Controller>> Controller::open(std::unique_ptr<ControllerBus> bus, ControllerOptions options) {
    if (bus == nullptr) return Error(EINVAL, "Controller::open needs a bus");
    const std::string name = bus->name();
    if (options.admin_queue_depth < 2 || options.admin_queue_depth > max_admin_queue_entries) {
        return Error(EINVAL, "admin queue depth " + std::to_string(options.admin_queue_depth) + " is outside 2..4096");
    }
    if (options.max_io_queues == 0 || options.max_io_queues > 65535) {
        return Error(EINVAL, "max_io_queues must be 1..65535");
    }
    if (options.io_queue_depth < 2 || options.io_queue_depth > max_queue_depth) {
        return Error(EINVAL, "io_queue_depth " + std::to_string(options.io_queue_depth) + " is outside 2.." +
                                 std::to_string(max_queue_depth) + " (command IDs keep " +
                                 std::to_string(min_generation_bits) + " generation bits)");
    }
    if (options.interrupts && bus->vfio() == nullptr) {
        return Error(EINVAL, name + ": interrupts need a VFIO device for MSI-X; this bus has none");
    }
    if (bus->bar_size() < min_bar0_size || !bus->is_mapped(0, register_block_size)) {
        return Error(ENODEV, name + ": BAR0 of " + std::to_string(bus->bar_size()) +
                                 " bytes is too small, or its registers are not mapped");
    }
    // 64-bit DMA (§4.3: PRP entries are 64-bit); pool memory stays below 4 GiB anyway.
    DMAKIT_TRY(bus->dma().set_mask_and_coherent(dma::dma_bit_mask(64)));

    std::unique_ptr<Controller> c(new Controller(std::move(bus), options));
    auto fail = [&](const Error& e) { return e.with_context(name); };

    if (auto s = c->read_capabilities(); !s.ok()) return fail(s.error());
    if (auto s = c->disable_or_function_reset(); !s.ok()) return fail(s.error());
    if (auto s = c->setup_admin_queue(); !s.ok()) return fail(s.error());
    if (auto s = c->enable(); !s.ok()) return fail(s.error());
    if (auto s = c->identify_all(); !s.ok()) return fail(s.error());
    if (auto s = c->negotiate_queues(); !s.ok()) return fail(s.error());
    if (auto s = c->configure_doorbell_buffer(); !s.ok()) return fail(s.error());
    if (options.interrupts) {
        auto irq = vfio::Interrupts::enable(*c->bus_->vfio(), vfio::IrqKind::msix, c->io_queues_granted_ + 1);
        if (!irq.ok()) return fail(irq.error().with_context("enabling MSI-X"));
        c->interrupts_.emplace(std::move(irq).value());
    }
    c->arm_async_events();
    return c;
}

Status Controller::read_capabilities() {
    // NVMe 1.4 §7.6.1 step 1: CAP and VS before touching anything. Checked
    // whole before it replaces the value in use, so cap_ is always a CAP the
    // driver accepted (reset() calls this again: CAP may change across a reset).
    const Cap cap{read64(reg::cap)};
    DMAKIT_TRY(validate_cap(cap));
    // Always 4 KiB: rings, PRP list pools and MDTS are sized by it, so a
    // reset can never change it under existing queues.
    DMAKIT_ASSIGN_OR_RETURN(std::uint32_t mps, choose_page_size(cap, 4096));
    DMAKIT_TRY(check_doorbells_in_bar(static_cast<std::uint32_t>(options_.max_io_queues), cap.doorbell_stride_shift(),
                                      bus_->bar_size()));
    // The admin doorbells are written as soon as the controller is enabled:
    // refuse now, before anything is enabled, when they are not mmapped.
    DMAKIT_TRY(mapped_doorbells(0, cap.doorbell_stride_shift(),
                                [this](std::uint64_t o, std::uint64_t l) { return bus_->is_mapped(o, l); }));
    cap_ = cap;
    version_ = Version{read32(reg::vs)};
    page_size_ = std::uint64_t{4096} << mps;
    return {};
}

Result<std::unique_ptr<ShadowDoorbells>> Controller::queue_doorbells(std::uint16_t qid) {
    DMAKIT_ASSIGN_OR_RETURN(DoorbellOffsets offsets,
                            mapped_doorbells(qid, cap_.doorbell_stride_shift(),
                                             [this](std::uint64_t o, std::uint64_t l) { return bus_->is_mapped(o, l); }));
    // Register writes only until attach_shadow / configure_doorbell_buffer.
    return std::make_unique<ShadowDoorbells>(bus_->doorbells(offsets), qid == 0);
}

Status Controller::configure_doorbell_buffer() {
    dbbuf_active_ = false;
    // Every queue is quiet here (open, or reset with the queues inactive);
    // none keeps pointers into a buffer that may be replaced below.
    admin_doorbells_->detach();
    for (auto& q : io_queues_) q->doorbells_->detach();
    if (!options_.shadow_doorbells || !info_.supports_doorbell_buffer_config()) return {};
    const std::string who = "nvme " + bus_->name() + ": ";
    const std::uint32_t shift = cap_.doorbell_stride_shift();
    const auto max_qid = static_cast<std::uint16_t>(io_queues_granted_);
    if (!dbbuf_.covers(max_qid, shift)) {
        // First time, or more queues / a wider stride since: the controller
        // is freshly enabled and holds no old buffer (§7.3.2), so the old
        // one may go.
        auto b = DoorbellBuffer::allocate(dma(), max_qid, shift, page_size_);
        if (!b.ok()) {
            logger_->warning(who + "shadow doorbells off, using doorbell registers only: " + dmakit::to_string(b.error()));
            return {};
        }
        dbbuf_ = std::move(b).value();
    }
    dbbuf_.clear();
    DMAKIT_ASSIGN_OR_RETURN(SubmissionEntry sqe, doorbell_buffer_config(dbbuf_.shadow_dma().value(),
                                                                        dbbuf_.event_dma().value(), page_size_));
    {
        // The admin entries follow the registers from this command on, so
        // they agree from the moment the controller takes the buffers
        // (§5.7: for the admin queue the host writes both, always).
        std::lock_guard lock(admin_mutex_);
        admin_doorbells_->attach(dbbuf_.slots(0, shift), static_cast<std::uint16_t>(admin_->sq_tail()),
                                 static_cast<std::uint16_t>(admin_->cq_head()));
    }
    // A timeout fails like any admin command (the controller may hold the
    // buffers: they stay until it is disabled); a refusal is only a fallback.
    auto r = admin_named(sqe, "Doorbell Buffer Config");
    if (!r.ok() || !r->status.ok()) admin_doorbells_->detach();
    if (!r.ok()) return std::move(r).error();
    if (!r->status.ok()) {
        logger_->warning(who + status_error(r->status, "Doorbell Buffer Config").message() +
                         "; shadow doorbells off, using doorbell registers only");
        return {};
    }
    dbbuf_active_ = true;
    logger_->info(who + "shadow doorbells on (Doorbell Buffer Config accepted)");
    return {};
}

void Controller::attach_shadow(ShadowDoorbells& doorbells, std::uint16_t qid) noexcept {
    const std::uint32_t shift = cap_.doorbell_stride_shift();
    if (!dbbuf_active_ || !dbbuf_.covers(qid, shift)) {
        doorbells.detach();
        return;
    }
    // A new queue starts at 0 (§5.3/§5.4); an earlier queue with this QID
    // may have left its values, and a stale EventIdx would hold back the
    // first doorbell.
    dbbuf_.clear_queue(qid, shift);
    doorbells.attach(dbbuf_.slots(qid, shift), 0, 0);
}

Status Controller::wait_ready(bool ready, std::string_view why) {
    // CAP.TO is the worst case for RDY to follow EN (§3.1.1); a few ms of
    // slack for the emulated case where TO is small and the host is busy.
    const auto deadline = Clock::now() + std::chrono::milliseconds(cap_.timeout_ms()) + 100ms;
    auto pause = 10us;
    for (;;) {
        const Csts c = status();
        if (c.device_gone()) return Error(ENODEV, std::string(why) + ": " + csts_text(c));
        if (c.ready() == ready) return {};
        // CFS while enabling means the enable failed (§3.1.6); while
        // disabling RDY may still drop.
        if (c.fatal() && ready) return Error(EIO, std::string(why) + ": " + csts_text(c));
        if (Clock::now() > deadline) {
            return Error(ETIMEDOUT, std::string(why) + ": CSTS.RDY did not become " + std::to_string(ready) +
                                        " within CAP.TO " + std::to_string(cap_.timeout_ms()) + " ms; " +
                                        csts_text(c));
        }
        std::this_thread::sleep_for(pause);
        pause = std::min<std::chrono::microseconds>(pause * 2, 10ms);
    }
}

Status Controller::disable() {
    const ControllerConfig cc = ControllerConfig::decode(read32(reg::cc));
    const Csts c = status();
    if (c.device_gone()) return Error(ENODEV, "disabling: " + csts_text(c));
    // EN=1 with RDY=0 is an enable still in progress; let it finish before
    // clearing EN (§3.1.5 CC.EN, §7.6.1 note on transitions). A timeout here
    // is not fatal: the disable below decides.
    if (cc.enable && !c.ready() && !c.fatal()) (void)wait_ready(true, "finishing an earlier enable");
    if (cc.enable || c.ready()) {
        ControllerConfig off = cc;
        off.enable = false;
        off.shutdown = ShutdownNotification::none;
        write32(reg::cc, off.encode());
    }
    return wait_ready(false, "disabling the controller");
}

Status Controller::disable_or_function_reset() {
    auto s = disable();
    if (s.ok()) return {};
    // A controller that does not come back (hung, fatal, left mid-shutdown by
    // a crashed owner) gets a function-level reset, then one more try.
    logger_->warning("nvme " + bus_->name() + ": " + dmakit::to_string(s.error()) +
                     "; trying a function reset (VFIO_DEVICE_RESET)");
    DMAKIT_TRY(bus_->function_reset());
    ++function_resets_;
    return disable().ok() ? Status{} : Error(EIO, "controller did not disable even after a function reset: " +
                                                      csts_text(status()));
}

Result<dma::CoherentBuffer> Controller::alloc_queue_memory(std::size_t bytes) {
    return dma().alloc_coherent(round_to_page(bytes, page_size_));
}

Status Controller::setup_admin_queue() {
    // §7.6.1 step 3, §3.1.8-3.1.10: AQA sizes, ASQ/ACQ base addresses.
    const std::uint32_t depth = options_.admin_queue_depth;
    if (!admin_sq_mem_) {
        DMAKIT_ASSIGN_OR_RETURN(admin_sq_mem_, alloc_queue_memory(std::size_t{depth} * sizeof(SubmissionEntry)));
        DMAKIT_ASSIGN_OR_RETURN(admin_cq_mem_, alloc_queue_memory(std::size_t{depth} * sizeof(CompletionEntry)));
        DMAKIT_ASSIGN_OR_RETURN(scratch_, dma().alloc_coherent(round_to_page(identify_data_size, page_size_)));
        DMAKIT_ASSIGN_OR_RETURN(admin_doorbells_, queue_doorbells(0));
        QueueConfig qc;
        qc.qid = 0;
        qc.depth = depth;
        qc.sq = admin_sq_mem_.as<SubmissionEntry>();
        qc.cq = admin_cq_mem_.as<CompletionEntry>();
        qc.doorbells = admin_doorbells_.get();
        qc.logger = logger_;
        DMAKIT_ASSIGN_OR_RETURN(QueuePair qp, QueuePair::create(qc));
        admin_.emplace(std::move(qp));
    } else {
        admin_->cancel_all_and_reset();
        // After a reset CAP.DSTRD may place the doorbells elsewhere (§3.1.1).
        DMAKIT_ASSIGN_OR_RETURN(std::unique_ptr<ShadowDoorbells> doorbells, queue_doorbells(0));
        DMAKIT_TRY(admin_->rebuild(depth, doorbells.get()));
        admin_doorbells_ = std::move(doorbells);
    }
    std::memset(admin_sq_mem_.cpu(), 0, admin_sq_mem_.size());
    DMAKIT_ASSIGN_OR_RETURN(std::uint32_t aqa, encode_aqa(depth, depth));
    write32(reg::aqa, aqa);
    write64(reg::asq, admin_sq_mem_.dma().value());
    write64(reg::acq, admin_cq_mem_.dma().value());
    return {};
}

Status Controller::enable() {
    // §7.6.1 step 4-5: CSS NVM, MPS, round robin, 64-byte SQEs, 16-byte CQEs, EN.
    ControllerConfig cc;
    cc.enable = true;
    cc.command_set = 0;
    cc.mps = static_cast<std::uint32_t>(std::countr_zero(page_size_) - 12);
    cc.io_sq_entry_shift = 6;
    cc.io_cq_entry_shift = 4;
    write32(reg::cc, cc.encode());
    shut_down_ = false;
    return wait_ready(true, "enabling the controller");
}

Status Controller::identify_all() {
    // §5.15: CNS 01h controller, 02h active namespace list, 00h per namespace.
    const DataPointer dp{scratch_.dma().value(), 0};
    const IdentifyBuffer view(scratch_.as<const std::byte>(), identify_data_size);
    {
        std::lock_guard lock(admin_mutex_);
        std::memset(scratch_.cpu(), 0, identify_data_size);
        DMAKIT_ASSIGN_OR_RETURN(AdminResult r,
                                admin_locked(identify_controller(dp), options_.admin_timeout, "Identify Controller"));
        if (!r.status.ok()) return status_error(r.status, "Identify Controller");
        DMAKIT_ASSIGN_OR_RETURN(info_, parse_identify_controller(view, cap_.min_page_size()));
    }
    // MDTS is in units of CAP.MPSMIN pages; 0 means no limit (§5.15.2.1).
    // PRP lists chain and SGL segments chain, so any size up to MDTS is one command.
    max_transfer_ = std::min(info_.max_transfer_bytes.value_or(options_.max_transfer_cap), options_.max_transfer_cap);

    std::lock_guard lock(admin_mutex_);
    DMAKIT_ASSIGN_OR_RETURN(std::vector<NamespaceInfo> table, scan_namespaces_locked());
    publish_namespaces(std::move(table));
    return {};
}

Result<std::vector<NamespaceInfo>> Controller::scan_namespaces_locked() {
    const DataPointer dp{scratch_.dma().value(), 0};
    const IdentifyBuffer view(scratch_.as<const std::byte>(), identify_data_size);
    std::vector<std::uint32_t> nsids;
    std::uint32_t after = 0;
    for (int round = 0; round < 64; ++round) {  // 64 * 1024 NSIDs is more than any controller has
        std::memset(scratch_.cpu(), 0, identify_data_size);
        DMAKIT_ASSIGN_OR_RETURN(AdminResult r, admin_locked(identify_active_namespaces(after, dp), options_.admin_timeout,
                                                            "Identify Active Namespace ID list"));
        if (!r.status.ok()) return status_error(r.status, "Identify Active Namespace ID list");
        DMAKIT_ASSIGN_OR_RETURN(std::vector<std::uint32_t> part, parse_active_namespace_list(view, after, info_.nn));
        nsids.insert(nsids.end(), part.begin(), part.end());
        if (part.size() < 1024) break;
        after = part.back();
    }
    std::vector<NamespaceInfo> table;
    for (std::uint32_t nsid : nsids) {
        std::memset(scratch_.cpu(), 0, identify_data_size);
        const std::string what = "Identify Namespace " + std::to_string(nsid);
        DMAKIT_ASSIGN_OR_RETURN(AdminResult r, admin_locked(identify_namespace(nsid, dp), options_.admin_timeout, what));
        if (!r.status.ok()) {
            // Refused for one namespace (e.g. Namespace Not Ready): skip it
            // like one whose data does not validate. A timeout still fails.
            logger_->warning("nvme: namespace " + std::to_string(nsid) +
                             " skipped: " + status_error(r.status, what).message());
            continue;
        }
        auto ns = parse_identify_namespace(view, nsid);
        if (!ns.ok()) {
            // One bad namespace should not hide the others.
            logger_->warning("nvme: namespace " + std::to_string(nsid) + " skipped: " + dmakit::to_string(ns.error()));
            continue;
        }
        // Metadata formats are kept: I/O checks them (IoQueue: separate
        // metadata needs a metadata buffer, protection information is refused).
        table.push_back(std::move(ns).value());
    }
    return table;
}

Status Controller::negotiate_queues() {
    // §5.21.1.7: ask for max_io_queues pairs; use what is granted (0-based NSQA/NCQA).
    DMAKIT_ASSIGN_OR_RETURN(SubmissionEntry sqe, set_number_of_queues(options_.max_io_queues, options_.max_io_queues));
    DMAKIT_ASSIGN_OR_RETURN(std::uint32_t dw0, admin_ok(sqe, "Set Features Number of Queues"));
    const QueueCounts granted = decode_number_of_queues(dw0);
    io_queues_granted_ = std::min({granted.sq, granted.cq, options_.max_io_queues});
    return {};
}

Result<AdminResult> Controller::admin(const SubmissionEntry& sqe, std::chrono::milliseconds timeout) {
    std::lock_guard lock(admin_mutex_);
    return admin_locked(sqe, timeout.count() > 0 ? timeout : options_.admin_timeout, {});
}

Result<AdminResult> Controller::admin_named(const SubmissionEntry& sqe, std::string_view what) {
    std::lock_guard lock(admin_mutex_);
    return admin_locked(sqe, options_.admin_timeout, what);
}

Result<std::uint32_t> Controller::admin_ok(const SubmissionEntry& sqe, std::string_view what) {
    DMAKIT_ASSIGN_OR_RETURN(AdminResult r, admin_named(sqe, what));
    if (!r.status.ok()) return status_error(r.status, what);
    return r.dw0;
}

Result<AdminResult> Controller::admin_locked(const SubmissionEntry& sqe, std::chrono::milliseconds timeout,
                                             std::string_view what) {
    struct Wait {
        bool done = false;
        Completion c;
    } wait;
    auto name = [&](std::uint16_t cid) {
        return (what.empty() ? std::string("admin command") : std::string(what)) + " (opcode " + hex(sqe.opcode()) +
               ", cid " + hex(cid) + ")";
    };
    if (removed()) return removed_error(what.empty() ? "admin command " + hex(sqe.opcode()) : std::string(what));
    if (admin_broken_) {
        return Error(EIO, std::string(what.empty() ? "admin command" : what) +
                              ": the admin queue is unusable (an earlier admin command timed out, the controller "
                              "reported fatal status or was stopped); call reset()");
    }
    const auto deadline = Clock::now() + timeout;
    DMAKIT_ASSIGN_OR_RETURN(std::uint16_t cid,
                            admin_->submit(sqe, [](void* u, const Completion& c) noexcept {
                                auto* w = static_cast<Wait*>(u);
                                w->done = true;
                                w->c = c;
                            }, &wait, deadline));
    admin_->ring_sq();
    std::uint32_t spins = 0;
    auto next_csts = Clock::now() + 1ms;
    while (!wait.done) {
        admin_->poll();
        if (wait.done) break;
        if ((++spins & 63) != 0) continue;
        const auto now = Clock::now();
        if (now > deadline || now >= next_csts) {
            // §10.5: with CSTS.CFS set (or the device gone) nothing will
            // complete; say so at once instead of waiting out the timeout.
            const Csts c = status();
            next_csts = now + 1ms;
            const bool stopped = c.fatal() || c.device_gone();
            if (stopped || now > deadline) {
                // Abandoned in whatever state the controller has it: its
                // data buffer (scratch_, a new queue's rings) is not reused
                // or freed until the controller is disabled (admin_broken_
                // refuses every admin command until reset() has done that).
                // The slot points at this stack frame: cancel it first.
                admin_->scan_timeouts(now, nullptr);
                admin_->cancel_all_and_reset();
                admin_broken_ = true;
                if (stopped) return Error(EIO, name(cid) + " did not complete: " + csts_text(c));
                return Error(ETIMEDOUT, name(cid) + " timed out after " + std::to_string(timeout.count()) + " ms; " +
                                            csts_text(c) + "; the controller needs reset()");
            }
        }
        std::this_thread::yield();
    }
    if (wait.c.cancelled) return Error(ECANCELED, name(cid) + " was cancelled");
    return AdminResult{wait.c.status, wait.c.dw0};
}

Error Controller::removed_error(std::string_view what) const {
    return Error(ENODEV, std::string(what) + ": NVMe controller " + bus_->name() +
                             " was removed (the kernel asked for it back and dmakit released it); "
                             "open it again once it is back (dmakit bind " + bus_->name() + ")");
}

bool Controller::check_removal() noexcept {
    if (removed()) return true;
    if (!bus_->removal_requested()) return false;
    std::lock_guard lock(admin_mutex_);
    if (removed()) return true;
    logger_->warning("nvme " + bus_->name() +
                     ": the kernel asked for the device back (hot unplug or unbind): disabling the controller, "
                     "cancelling the commands in flight and releasing the device");
    // Stop fetching and DMA while the device is still there (§7.6.1:
    // CC.EN=0); no wait: closing the device below makes vfio-pci reset the
    // function and clear Bus Master Enable anyway.
    ControllerConfig cc = ControllerConfig::decode(read32(reg::cc));
    cc.enable = false;
    write32(reg::cc, cc.encode());
    // The eventfds stay (another queue's thread may be waiting on one: it
    // times out); only the Interrupts' reference to the device goes.
    if (interrupts_) interrupts_->detach();
    if (admin_) admin_->cancel_all_and_reset();
    admin_broken_ = true;
    bus_->release();
    removed_.store(true, std::memory_order_release);
    return true;
}

QueueStats Controller::admin_stats() const {
    std::lock_guard lock(admin_mutex_);
    return admin_->stats();
}

Result<SmartLog> Controller::smart_log(std::uint32_t nsid) {
    std::lock_guard lock(admin_mutex_);
    std::memset(scratch_.cpu(), 0, log_page::smart_size);
    DMAKIT_ASSIGN_OR_RETURN(SubmissionEntry sqe, get_smart_log(DataPointer{scratch_.dma().value(), 0}, nsid));
    DMAKIT_ASSIGN_OR_RETURN(AdminResult r,
                            admin_locked(sqe, options_.admin_timeout, "Get Log Page SMART / Health Information"));
    if (!r.status.ok()) return status_error(r.status, "Get Log Page SMART / Health Information");
    return parse_smart_log(scratch_.bytes().first(log_page::smart_size));
}

Result<std::vector<ErrorLogEntry>> Controller::error_log(std::uint32_t entries) {
    // ELPE is 0-based (§5.15.2.1); at most a page here (64 entries of 64 bytes).
    const std::uint32_t max_entries = static_cast<std::uint32_t>(page_size_ / log_page::error_entry_size);
    if (entries == 0) entries = std::uint32_t{info_.elpe} + 1;
    entries = std::min(entries, max_entries);
    std::lock_guard lock(admin_mutex_);
    const std::size_t bytes = std::size_t{entries} * log_page::error_entry_size;
    std::memset(scratch_.cpu(), 0, bytes);
    DMAKIT_ASSIGN_OR_RETURN(SubmissionEntry sqe, get_error_log(entries, DataPointer{scratch_.dma().value(), 0}));
    DMAKIT_ASSIGN_OR_RETURN(AdminResult r, admin_locked(sqe, options_.admin_timeout, "Get Log Page Error Information"));
    if (!r.status.ok()) return status_error(r.status, "Get Log Page Error Information");
    return parse_error_log(scratch_.bytes().first(bytes));
}

Result<bool> Controller::abort(std::uint16_t sqid, std::uint16_t cid) {
    DMAKIT_ASSIGN_OR_RETURN(std::uint32_t dw0, admin_ok(abort_command(sqid, cid), "Abort"));
    return (dw0 & 1u) == 0;  // §5.1.1: bit 0 cleared = the command was aborted
}

void Controller::arm_async_events() {
    // AERL is 0-based (§5.15.2.1); at most half the admin queue, so admin
    // commands always find a slot.
    aers_wanted_ = std::min({options_.async_event_requests, std::uint32_t{info_.aerl} + 1,
                             options_.admin_queue_depth / 2});
    if (aers_wanted_ == 0) return;
    std::lock_guard lock(admin_mutex_);
    aer_completions_.clear();
    aer_completions_.reserve(aers_wanted_);
    const std::string_view what = "Set Features Asynchronous Event Configuration";
    auto configured = admin_locked(set_async_event_config(), options_.admin_timeout, what);
    if (!configured.ok()) {
        logger_->warning("nvme " + bus_->name() + ": " + dmakit::to_string(configured.error()) + "; no asynchronous events");
        aers_wanted_ = 0;
        return;
    }
    if (!configured->status.ok()) {
        // The controller's default configuration still reports some events.
        logger_->warning("nvme " + bus_->name() + ": " + status_error(configured->status, what).message());
    }
    while (aers_outstanding_ < aers_wanted_) {
        if (auto s = submit_async_event_locked(); !s.ok()) {
            logger_->warning("nvme " + bus_->name() + ": Asynchronous Event Request: " + dmakit::to_string(s.error()));
            aers_wanted_ = aers_outstanding_;
            break;
        }
    }
}

Status Controller::submit_async_event_locked() {
    if (removed()) return removed_error("Asynchronous Event Request");
    if (admin_broken_) return Error(EIO, "the admin queue is unusable; call reset()");
    // No deadline: an AER completes only when something happens (§5.2).
    DMAKIT_TRY(admin_->submit(async_event_request(), &Controller::on_async_event_completion, this, no_deadline));
    admin_->ring_sq();
    ++aers_outstanding_;
    return {};
}

void Controller::on_async_event_completion(void* self, const Completion& c) noexcept {
    auto* me = static_cast<Controller*>(self);
    if (me->aers_outstanding_ > 0) --me->aers_outstanding_;
    if (c.cancelled) return;  // the controller was disabled: nothing happened
    // One reserved slot per outstanding AER, so this never allocates.
    if (me->aer_completions_.size() < me->aer_completions_.capacity()) {
        me->aer_completions_.push_back({c.status, c.dw0});
    }
}

std::uint32_t Controller::async_events_outstanding() const {
    std::lock_guard lock(admin_mutex_);
    return aers_outstanding_;
}

std::uint64_t Controller::async_events_seen() const {
    std::lock_guard lock(admin_mutex_);
    return aers_seen_;
}

Result<std::uint32_t> Controller::process_events() {
    if (removed()) return removed_error("processing asynchronous events");
    constexpr std::size_t max_events = 64;
    std::vector<AsyncEvent> events;
    {
        std::lock_guard lock(admin_mutex_);
        if (admin_broken_) {
            return Error(EIO, "processing asynchronous events: the admin queue is unusable (an admin command timed "
                              "out, or the controller was stopped); call reset()");
        }
        while (events.size() < max_events) {
            admin_->poll();
            if (aer_completions_.empty()) break;
            // The log page reads below poll the admin queue too and may add
            // completions: take these first.
            std::vector<AerCompletion> batch;
            batch.swap(aer_completions_);
            aer_completions_.reserve(aers_wanted_);
            for (const AerCompletion& a : batch) {
                if (!a.status.ok()) {
                    // §5.2: refused (Asynchronous Event Request Limit Exceeded, ...): not
                    // resubmitted, or a device that fails every AER would keep us here.
                    aers_wanted_ = std::min(aers_wanted_, aers_outstanding_);
                    logger_->warning("nvme " + bus_->name() + ": " +
                                     status_error(a.status, "Asynchronous Event Request").message() +
                                     "; not submitted again (" + std::to_string(aers_outstanding_) + " outstanding)");
                    continue;
                }
                events.push_back(handle_async_event_locked(a.dw0));
                ++aers_seen_;
                if (admin_broken_ || aers_outstanding_ >= aers_wanted_) continue;
                if (auto s = submit_async_event_locked(); !s.ok()) {
                    logger_->warning("nvme " + bus_->name() + ": Asynchronous Event Request not submitted again: " +
                                     dmakit::to_string(s.error()));
                }
            }
        }
    }
    // No lock held: the callback may use the controller.
    if (options_.on_async_event != nullptr) {
        for (const AsyncEvent& e : events) options_.on_async_event(options_.async_event_user, e);
    }
    return static_cast<std::uint32_t>(events.size());
}

AsyncEvent Controller::handle_async_event_locked(std::uint32_t dw0) {
    AsyncEvent e;
    e.raw = AsyncEventCompletion::decode(dw0);
    e.description = async_event_name(e.raw);
    // §5.2: the event stays masked until its log page is read with RAE=0.
    const std::uint32_t bytes = clearing_log_bytes(e.raw.log_page, std::uint32_t{info_.elpe} + 1,
                                                   static_cast<std::uint32_t>(scratch_.size()));
    const std::string what = "Get Log Page " + hex(e.raw.log_page) + " (clears the event)";
    std::memset(scratch_.cpu(), 0, bytes);
    auto sqe = get_log_page({.lid = e.raw.log_page,
                             .nsid = nsid_all,
                             .bytes = bytes,
                             .offset = 0,
                             .retain_async_event = false,
                             .data = DataPointer{scratch_.dma().value(), 0}});
    std::string detail;
    if (!sqe.ok()) {
        e.log_error = sqe.error().message();
    } else if (auto r = admin_locked(*sqe, options_.admin_timeout, what); !r.ok()) {
        e.log_error = r.error().message();
    } else if (!r->status.ok()) {
        e.log_error = status_error(r->status, what).message();
    } else if (e.raw.log_page == log_page::smart_health) {
        auto smart = parse_smart_log(scratch_.bytes().first(log_page::smart_size));
        if (smart.ok()) {
            e.smart = *smart;
            detail = "critical warning " + hex(smart->critical_warning) + ", " +
                     std::to_string(smart->temperature_celsius()) + " C";
        } else {
            e.log_error = smart.error().message();
        }
    } else if (e.raw.log_page == log_page::changed_namespace_list) {
        auto changed = parse_changed_namespace_list(scratch_.bytes().first(log_page::changed_namespace_list_size));
        auto table = changed.ok() ? scan_namespaces_locked() : Result<std::vector<NamespaceInfo>>(changed.error());
        if (table.ok()) {
            e.changed_namespaces = changed->nsids;
            const auto current = namespaces();
            if (!std::equal(table->begin(), table->end(), current.begin(), current.end())) {
                publish_namespaces(std::move(table).value());
            }
            for (std::uint32_t id : e.changed_namespaces) detail += (detail.empty() ? "" : ", ") + std::to_string(id);
            detail = (changed->overflow ? "more than 1024 namespaces changed" : "namespaces changed: " + detail) +
                     "; " + std::to_string(namespaces().size()) + " active now";
        } else {
            e.log_error = table.error().message();
        }
    }
    std::string line = "nvme " + bus_->name() + ": asynchronous event: " + e.description + " (dw0 " + hex(dw0) + ")";
    if (!detail.empty()) line += "; " + detail;
    if (!e.log_error.empty()) line += "; reading log page " + hex(e.raw.log_page) + " failed: " + e.log_error;
    const bool notice = e.raw.type == static_cast<std::uint8_t>(AsyncEventType::notice);
    if (notice && e.log_error.empty()) {
        logger_->info(line);
    } else {
        logger_->warning(line);
    }
    return e;
}

Status Controller::create_queue_on_device(IoQueue& q, bool& maybe_held) {
    // An error status is a refusal: that queue was not created (§5.3, §5.4).
    // A command that timed out or was cut short by CSTS.CFS leaves it
    // unknown, and so does a CQ whose SQ was refused and that will not go
    // again: then the controller may hold the rings (`maybe_held`).
    maybe_held = false;
    const std::string qid = std::to_string(q.qid_);
    attach_shadow(*q.doorbells_, q.qid_);
    CreateCqParams cq;
    cq.qid = q.qid_;
    cq.entries = q.depth_;
    cq.base = q.cq_mem_.dma().value();
    cq.contiguous = true;
    if (q.vector_) {
        cq.irq_enabled = true;
        cq.vector = static_cast<std::uint16_t>(*q.vector_);
    }
    DMAKIT_ASSIGN_OR_RETURN(SubmissionEntry cqe, create_io_cq(cq));
    const std::string cq_what = "Create I/O Completion Queue " + qid;
    auto made_cq = admin_named(cqe, cq_what);
    if (!made_cq.ok()) {
        maybe_held = true;
        return std::move(made_cq).error();
    }
    if (!made_cq->status.ok()) return status_error(made_cq->status, cq_what);
    CreateSqParams sq;
    sq.qid = q.qid_;
    sq.entries = q.depth_;
    sq.base = q.sq_mem_.dma().value();
    sq.cqid = q.qid_;
    DMAKIT_ASSIGN_OR_RETURN(SubmissionEntry sqe, create_io_sq(sq));
    const std::string sq_what = "Create I/O Submission Queue " + qid;
    auto made_sq = admin_named(sqe, sq_what);
    if (!made_sq.ok()) {
        maybe_held = true;
        return std::move(made_sq).error();
    }
    if (!made_sq->status.ok()) {
        const Error refused = status_error(made_sq->status, sq_what);
        // The CQ goes again (§5.5), or the controller keeps our ring.
        if (auto gone = admin_ok(delete_io_cq(q.qid_), "Delete I/O Completion Queue " + qid); !gone.ok()) {
            maybe_held = true;
            return Error(refused.code(), refused.message() + "; then " + gone.error().message());
        }
        return refused;
    }
    return {};
}

Status Controller::delete_queue_on_device(IoQueue& q) {
    // SQ first: a CQ with an SQ still attached may not be deleted (§5.5), so
    // after a failed SQ delete the CQ delete is not even tried.
    DMAKIT_TRY(admin_ok(delete_io_sq(q.qid_), "Delete I/O Submission Queue " + std::to_string(q.qid_)));
    DMAKIT_TRY(admin_ok(delete_io_cq(q.qid_), "Delete I/O Completion Queue " + std::to_string(q.qid_)));
    return {};
}

Status Controller::stop_controller_dma(std::string_view why) {
    // §3.1.5/§7.6.2: CC.EN=0 and CSTS.RDY=0 within CAP.TO; after that the
    // controller owns no queue, PRP list or data buffer any more (§7.3.2).
    // A function reset is the fallback when it does not go quiet.
    for (auto& q : io_queues_) q->active_ = false;  // no doorbell for queues the controller drops
    auto s = disable_or_function_reset();
    admin_broken_ = true;  // the admin queue is gone with the rest: only reset() helps
    dbbuf_active_ = false;  // a disabled controller forgets the doorbell buffers (§5.7)
    if (!s.ok()) {
        dma_unsafe_ = true;
        return s.error().with_context(why);
    }
    // Nothing will complete any more: every command finishes as cancelled,
    // which unmaps buffers and returns PRP pages now that it is safe.
    for (auto& q : io_queues_) q->cancel_all();
    if (admin_) admin_->cancel_all_and_reset();
    forget_leaked();
    logger_->warning("nvme " + bus_->name() + ": " + std::string(why) +
                     "; controller disabled (CC.EN=0, CSTS.RDY=0) before freeing queue memory; call reset() to use it "
                     "again");
    return {};
}

void Controller::forget_leaked() noexcept {
    // Only once the controller is known quiet (disabled or reset).
    leaked_queues_.clear();
    dma_unsafe_ = false;
}

Result<IoQueue*> Controller::create_io_queue(std::uint32_t depth) {
    if (removed()) return removed_error("creating an I/O queue");
    if (shut_down_) return Error(ESHUTDOWN, "controller is shut down");
    if (depth == 0) depth = options_.io_queue_depth;
    if (depth > max_queue_depth) {
        return Error(EINVAL, "I/O queue depth " + std::to_string(depth) + " is above " +
                                 std::to_string(max_queue_depth) + ": deeper rings leave command IDs fewer than " +
                                 std::to_string(min_generation_bits) + " generation bits; ask for at most " +
                                 std::to_string(max_queue_depth));
    }
    if (admin_broken_) return Error(EIO, "the controller needs reset() (admin queue unusable)");
    depth = std::min(depth, cap_.max_queue_entries());
    if (depth < 2) return Error(EINVAL, "I/O queue depth must be at least 2");
    // Lowest free QID in 1..granted; a kept queue (see below) holds on to its QID.
    auto used = [&](std::uint32_t id) {
        for (const auto* list : {&io_queues_, &leaked_queues_}) {
            for (const auto& q : *list) {
                if (q->qid_ == id) return true;
            }
        }
        return false;
    };
    std::uint16_t qid = 0;
    for (std::uint32_t id = 1; id <= io_queues_granted_ && qid == 0; ++id) {
        if (!used(id)) qid = static_cast<std::uint16_t>(id);
    }
    if (qid == 0) {
        return Error(EBUSY, "all " + std::to_string(io_queues_granted_) +
                                " I/O queues the controller granted are in use; raise max_io_queues or delete one");
    }
    std::unique_ptr<IoQueue> q(new IoQueue(*this, qid, depth));
    if (interrupts_) q->vector_ = qid;  // vector 0 is left to the admin queue
    DMAKIT_TRY(q->init());
    bool maybe_held = false;
    if (auto s = create_queue_on_device(*q, maybe_held); !s.ok()) {
        if (!maybe_held) return std::move(s).error();  // refused: nothing of it on the controller, freed now
        // The controller may hold its rings: kept mapped and unused (and its
        // QID reserved) until the controller is disabled by reset() or at
        // destruction, like the buffer of a timed-out sync command.
        leaked_queues_.push_back(std::move(q));
        return Error(s.error().code(), s.error().message() + "; the queue's rings are kept (the controller may hold "
                                                             "them) until reset()");
    }
    q->active_ = true;
    io_queues_.push_back(std::move(q));
    return io_queues_.back().get();
}

Status Controller::delete_io_queue(IoQueue* queue) {
    auto it = std::find_if(io_queues_.begin(), io_queues_.end(), [&](const auto& q) { return q.get() == queue; });
    if (it == io_queues_.end()) return Error(EINVAL, "not an I/O queue of this controller");
    if (removed()) {
        // The device is released: nothing to tell it; what is left never completes.
        (*it)->cancel_all();
        io_queues_.erase(it);
        return {};
    }
    const std::string qname = "I/O queue " + std::to_string((*it)->qid_);
    if (!(*it)->active_ && !dma_unsafe_) {
        // Not on the controller: it was disabled since (and owns nothing),
        // or reset() did not create the queue again. No command to send.
        (*it)->cancel_all();
        io_queues_.erase(it);
        return {};
    }
    // With the admin queue unusable (a timed-out admin command, an earlier
    // failed delete) the commands cannot even be sent: stopping the
    // controller is the only way to take the queue back.
    Status deleted = admin_broken_ || !(*it)->active_ ? Status(Error(EIO, "admin queue unusable"))
                                                      : delete_queue_on_device(**it);
    if (deleted.ok()) {
        // Deleting the SQ aborted whatever was in it (§5.6); what is left never completes.
        (*it)->cancel_all();
        io_queues_.erase(it);
        return {};
    }
    // The controller may still own the rings, PRP lists and data buffers of
    // this queue: nothing is freed until it is disabled.
    const Status stopped = stop_controller_dma("deleting " + qname + " failed (" + deleted.error().message() + ")");
    if (stopped.ok()) {
        io_queues_.erase(std::find_if(io_queues_.begin(), io_queues_.end(),
                                      [&](const auto& q) { return q.get() == queue; }));
        return Error(deleted.error().code(), "deleting " + qname + " failed (" + deleted.error().message() +
                                                 "); the controller was disabled and the queue freed; call reset() "
                                                 "to use the controller again");
    }
    // It would not stop: leak the queue's memory deliberately, mapped and
    // never reused, rather than let a live device write freed memory.
    leaked_queues_.push_back(std::move(*it));
    io_queues_.erase(it);
    logger_->error("nvme " + bus_->name() + ": " + dmakit::to_string(stopped.error()) + "; the memory of " + qname +
                   " (rings, PRP lists, mapped buffers) is leaked deliberately, kept mapped and never reused");
    return Error(EIO, stopped.error().message() + "; the memory of " + qname +
                          " is leaked deliberately (kept mapped, never reused) until reset() succeeds");
}

Status Controller::reset() {
    if (removed()) return removed_error("reset");
    // §7.3.2 Controller Level Reset, host side: disable, complete what the
    // controller will never complete, bring it up again, rebuild the queues.
    // Until that has worked, admin commands and I/O are refused.
    admin_broken_ = true;
    dbbuf_active_ = false;
    for (auto& q : io_queues_) q->active_ = false;
    if (auto s = disable_or_function_reset(); !s.ok()) {
        // Still running: its memory stays untouched (and is leaked at
        // destruction unless a later disable works).
        dma_unsafe_ = true;
        return s;
    }
    for (auto& q : io_queues_) q->cancel_all();
    forget_leaked();
    // §3.1.1: CAP may differ after a reset (a firmware image activated at
    // reset, §5.12, brings its own MQES, DSTRD, TO ...): read and check it
    // again; a value the driver cannot use leaves the controller disabled.
    if (auto s = read_capabilities(); !s.ok()) return s.error().with_context("after the reset");
    DMAKIT_TRY(setup_admin_queue());
    DMAKIT_TRY(enable());
    admin_broken_ = false;
    DMAKIT_TRY(negotiate_queues());
    // §5.7: a reset forgets the doorbell buffers; before any queue is created again.
    DMAKIT_TRY(configure_doorbell_buffer());
    arm_async_events();
    // Every queue again with its old rings, sized by the new CAP. One the
    // controller refuses stays inactive (its memory is not the controller's);
    // one whose create is left unknown stops the controller again.
    std::string not_created;
    for (auto& q : io_queues_) {
        std::string why;
        bool maybe_held = false;
        if (q->qid_ > io_queues_granted_) {
            why = "the controller now grants " + std::to_string(io_queues_granted_) + " I/O queue(s)";
        } else if (auto fit = q->fit_to_controller(); !fit.ok()) {
            why = fit.error().message();
        } else if (auto made = create_queue_on_device(*q, maybe_held); !made.ok()) {
            if (maybe_held) {
                const std::string what = "after the reset, I/O queue " + std::to_string(q->qid_) + ": " +
                                         made.error().message();
                DMAKIT_TRY(stop_controller_dma(what));
                return Error(made.error().code(), what + "; the controller was disabled again; call reset()");
            }
            why = made.error().message();
        } else {
            q->active_ = true;
            continue;
        }
        not_created += (not_created.empty() ? "" : "; ") + ("I/O queue " + std::to_string(q->qid_) + ": " + why);
    }
    if (!not_created.empty()) {
        return Error(EIO, "after the reset some I/O queues were not created again (" + not_created +
                              "); delete them (delete_io_queue), the others work");
    }
    return {};
}

Status Controller::shutdown() {
    if (shut_down_) return {};
    if (removed()) {
        // Released for a hot unplug: the device is the kernel's now.
        for (auto& q : io_queues_) q->cancel_all();
        io_queues_.clear();
        shut_down_ = true;
        return {};
    }
    Status first;
    auto keep = [&](Status s) {
        if (!s.ok() && first.ok()) first = std::move(s);
    };
    // §7.6.2: delete I/O queues, then CC.SHN = 01b and wait for SHST = 10b.
    while (!io_queues_.empty()) keep(delete_io_queue(io_queues_.back().get()));
    if (!ControllerConfig::decode(read32(reg::cc)).enable) {
        // Disabled after a failed delete: nothing left to shut down.
        shut_down_ = true;
        return first;
    }
    if (failed()) {
        shut_down_ = true;
        return Error(EIO, "controller failed before shutdown: " + csts_text(status()));
    }
    ControllerConfig cc = ControllerConfig::decode(read32(reg::cc));
    cc.shutdown = ShutdownNotification::normal;
    write32(reg::cc, cc.encode());
    // RTD3E would bound this (§5.15.2.1); CAP.TO plus slack is the practical bound.
    const auto deadline = Clock::now() + std::chrono::milliseconds(std::max<std::uint32_t>(cap_.timeout_ms(), 5000));
    for (;;) {
        const Csts c = status();
        if (c.shutdown() == ShutdownStatus::complete) break;
        if (c.device_gone() || Clock::now() > deadline) {
            keep(Error(ETIMEDOUT, "shutdown did not complete: " + csts_text(c)));
            break;
        }
        std::this_thread::sleep_for(1ms);
    }
    shut_down_ = true;
    return first;
}

namespace {

// Memory the device may still write: never freed, never reused. Told to
// LeakSanitizer so ASan runs report the real leaks only.
struct AbandonedDmaMemory {
    std::vector<std::unique_ptr<IoQueue>> queues;
    std::vector<dma::CoherentBuffer> buffers;
};

void keep_forever(std::unique_ptr<AbandonedDmaMemory> memory) noexcept {
    [[maybe_unused]] AbandonedDmaMemory* kept = memory.release();
#if defined(__SANITIZE_ADDRESS__)
    __lsan_ignore_object(kept);
#endif
}

}  // namespace

Controller::~Controller() {
    if (abandoned_) {
        // Drop host state only; the device keeps its queues and stays enabled.
        // Its rings are freed with their pool, which stays mapped until the
        // PciDomain closes, so a late DMA lands in our own pool memory.
        for (auto& q : io_queues_) q->cancel_all();
        if (admin_) admin_->cancel_all_and_reset();
        return;
    }
    auto s = shutdown();
    if (!s.ok()) logger_->warning("nvme " + bus_->name() + ": shutdown: " + dmakit::to_string(s.error()));
    if (!dma_unsafe_ && admin_sq_mem_ && !removed()) {
        // §3.1.5, §7.6.2: EN=0 and CSTS.RDY=0 before the admin rings, the
        // scratch page and kept queues are freed: a controller that timed
        // out an admin command, reported CFS or did not shut down may still
        // write them. (A removed one was released: the kernel reset it, and
        // BAR0 is retired.)
        if (auto d = disable_or_function_reset(); !d.ok()) {
            dma_unsafe_ = true;
            logger_->warning("nvme " + bus_->name() + ": " + dmakit::to_string(d.error()));
        }
    }
    if (dma_unsafe_) {
        // The controller never went quiet: leak its queues' and admin memory.
        auto memory = std::make_unique<AbandonedDmaMemory>();
        memory->queues = std::move(leaked_queues_);
        for (auto* b : {&admin_sq_mem_, &admin_cq_mem_, &scratch_}) memory->buffers.push_back(std::move(*b));
        if (dbbuf_) {
            memory->buffers.push_back(dbbuf_.take_shadow());  // it may still write EventIdx
            memory->buffers.push_back(dbbuf_.take_event());
        }
        logger_->error("nvme " + bus_->name() + ": controller did not stop; " + std::to_string(memory->queues.size()) +
                       " I/O queue(s) and the admin rings are leaked deliberately (the device may still write them)");
        keep_forever(std::move(memory));
        return;
    }
    // Cancel before the rings and pools go away.
    if (admin_) admin_->cancel_all_and_reset();
    if (!admin_sq_mem_ && !removed()) {
        // Nothing of ours was given to it (open failed early): just EN=0.
        ControllerConfig cc = ControllerConfig::decode(read32(reg::cc));
        cc.enable = false;
        cc.shutdown = ShutdownNotification::none;
        write32(reg::cc, cc.encode());
    }
}

}  // namespace dmakit::nvme
