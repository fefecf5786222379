// E1000eNic: the 82574 port over VFIO and the DMA API (public dmakit API only).
//
// open(): OpenPort (function, ID check, pool) -> function reset
// (VFIO_DEVICE_RESET, so a port left running by a crashed process starts
// clean) -> BAR0 -> rings in coherent memory -> bring_up
// (global reset, link, MAC, RX/TX set-up; §4.6) -> RX refill -> optional
// MSI-X -> wait for link. Teardown reverses it and returns every buffer.
//
// Threads: the one queue is driven by one thread. It takes lock_ per burst,
// uncontended, so that a removal noticed through check_removal() on another
// thread, or stats() read there, never meets a burst half-way (the
// virtio-net driver does the same per queue pair).
#include <dmakit/drivers/net/e1000e/e1000e.hpp>

#include <dmakit/drivers/net/nic_open_context.hpp>
#include <dmakit/drivers/net/open_port.hpp>
#include <dmakit/drivers/net/packet_pool.hpp>
#include <dmakit/drivers/net/e1000e/bar_registers.hpp>
#include <dmakit/drivers/net/e1000e/bring_up.hpp>
#include <dmakit/drivers/net/e1000e/hw_stats.hpp>
#include <dmakit/drivers/net/e1000e/regs.hpp>
#include <dmakit/drivers/net/e1000e/rings.hpp>

#include <dmakit/vfio/interrupts.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <mutex>
#include <optional>
#include <thread>

namespace dmakit::net::e1000e {

namespace {

constexpr std::uint32_t kHeadroom = 128;
constexpr std::uint32_t kRxBufferSize = 2048;  // RCTL.BSIZE = 2048, BSEX = 0
constexpr std::size_t kBurst = 64;
// MSI-X vectors: RX queue 0, TX queue 0, other causes (link).
constexpr std::uint32_t kVecRx = 0, kVecTx = 1, kVecOther = 2, kVectors = 3;
constexpr std::uint32_t kMsixCauses = bits::INT_RXQ0 | bits::INT_TXQ0 | bits::INT_LSC | bits::INT_OTHER;

class E1000eNic final : public Nic {
public:
    explicit E1000eNic(const NicOpenContext& ctx)
        : logger_(ctx.logger), name_((ctx.function != nullptr ? ctx.function->address() : ctx.address).to_string()) {}
    ~E1000eNic() override { teardown(); }

    [[nodiscard]] Status start(NicOpenContext& ctx);

    std::string_view driver_name() const noexcept override { return "e1000e"; }
    std::size_t queue_count() const noexcept override { return 1; }
    Result<LinkStatus> link() override {
        if (removed()) return removed_error("link");
        return read_link(*regs_);
    }
    MacAddress mac_address() const override { return mac_; }
    Status set_promiscuous(bool enabled) override {
        if (removed()) return removed_error("set_promiscuous");
        DMAKIT_TRY(check_present(*regs_, "setting promiscuous mode"));
        e1000e::set_promiscuous(*regs_, enabled);
        return {};
    }
    Result<NicStats> stats() override;
    PacketPool* packet_pool() noexcept override { return pool_; }

private:
    std::size_t receive(std::size_t queue, std::span<PacketBuffer*> out) override;
    std::size_t transmit(std::size_t queue, std::span<PacketBuffer* const> pkts) override;
    Result<bool> wait_for_work(std::size_t queue, std::chrono::milliseconds timeout) override;
    bool detect_removal() override;
    // Every 4096 bursts: the removal check is a system call.
    [[nodiscard]] bool removal_check_due() noexcept { return (++bursts_ & 4095u) == 0; }

    void warn(const std::string& m) const {
        if (logger_ != nullptr) logger_->warning(m);
    }
    void refill_rx();
    void free_buffers(std::span<PacketBuffer* const> buffers);
    [[nodiscard]] bool sendable(const PacketBuffer* p) const noexcept {
        return p != nullptr && p->length != 0 && p->length <= max_frame_ &&
               p->headroom <= p->capacity && p->length <= p->room() && p->data_dma() != 0;
    }
    [[nodiscard]] Status enable_msix();
    void teardown() noexcept;

    const Logger* logger_;
    std::string name_;  // PCI address, for messages
    std::uint32_t bursts_ = 0;
    // Declaration order is destruction order reversed: the port (function,
    // DMA context, pool) outlives the rings' memory and the interrupts.
    std::optional<OpenPort> port_;
    vfio::Device* device_ = nullptr;
    dma::DmaDevice* dma_ = nullptr;
    vfio::Region bar0_;
    std::optional<BarRegisters> regs_;
    PacketPool* pool_ = nullptr;
    std::optional<PacketPoolCache> cache_;  // the queue's private stash (one polling thread)
    dma::CoherentBuffer rx_memory_;
    dma::CoherentBuffer tx_memory_;
    std::optional<RxRing> rx_;
    std::optional<TxRing> tx_;
    HwStats hw_stats_;
    MacAddress mac_;
    std::uint32_t max_frame_ = 1518;
    std::uint64_t tx_dropped_ = 0;   // invalid packets taken and freed
    std::uint64_t tx_ring_full_ = 0;
    std::optional<vfio::Interrupts> interrupts_;
    std::mutex lock_;  // the queue's thread per burst; stats(), teardown
    bool running_ = false;  // under lock_ once started
};

Status E1000eNic::start(NicOpenContext& ctx) {
    if (ctx.rx_queues != 1 || ctx.tx_queues != 1) {
        return Error(EINVAL, "e1000e " + name_ + ": this driver runs one RX and one TX queue (asked for " +
                                 std::to_string(ctx.rx_queues) + "/" + std::to_string(ctx.tx_queues) + ")");
    }
    PortPoolNeeds needs;
    needs.default_buffers = std::size_t{ctx.rx_ring_size} + ctx.tx_ring_size + 1024;
    needs.headroom = kHeadroom;
    needs.data_room = kRxBufferSize;
    DMAKIT_ASSIGN_OR_RETURN(OpenPort port, OpenPort::open(ctx, driver, needs));
    port_.emplace(std::move(port));
    device_ = &port_->function().vfio();
    dma_ = &port_->function().dma();
    pool_ = &port_->pool();
    const std::string& name = name_;

    // Function-level reset first: whatever the last user left (rings enabled,
    // DMA in flight, interrupts armed) is gone before we allocate anything.
    if (device_->supports_reset()) {
        auto reset = device_->reset();
        if (!reset.ok()) warn("e1000e " + name + ": VFIO reset failed (" + dmakit::to_string(reset.error()) +
                              "); relying on the global reset (CTRL.RST)");
    }
    DMAKIT_TRY(device_->enable_bus_master());

    DMAKIT_ASSIGN_OR_RETURN(bar0_, device_->map_bar(0));
    if (!bar0_.is_mapped(0, bar0_size)) {
        return Error(EIO, "e1000e " + name + ": BAR0 is not mappable as 128 KiB of registers");
    }
    regs_.emplace(bar0_.base());

    const std::uint32_t rx_size = ctx.rx_ring_size;
    const std::uint32_t tx_size = ctx.tx_ring_size;
    // alloc_coherent aligns to the power-of-two size: at least 128 bytes (RDLEN rule).
    DMAKIT_ASSIGN_OR_RETURN(rx_memory_, dma_->alloc_coherent(std::max<std::size_t>(rx_size, 8) * 16));
    DMAKIT_ASSIGN_OR_RETURN(tx_memory_, dma_->alloc_coherent(std::max<std::size_t>(tx_size, 8) * 16));

    cache_.emplace(pool_->make_cache());

    BringUpConfig config;
    config.timeouts.reset = std::chrono::duration_cast<std::chrono::microseconds>(ctx.reset_timeout);
    config.rx_ring = RingPlacement{rx_memory_.dma().value(), rx_size};
    config.tx_ring = RingPlacement{tx_memory_.dma().value(), tx_size};
    config.promiscuous = ctx.promiscuous;

    // Rings are validated (size, alignment) before the device is told about them.
    DescriptorMemory rx_mem{rx_memory_.cpu(), rx_memory_.dma().value(), rx_memory_.size()};
    DescriptorMemory tx_mem{tx_memory_.cpu(), tx_memory_.dma().value(), tx_memory_.size()};
    DMAKIT_ASSIGN_OR_RETURN(RxRing rx, RxRing::create(rx_mem, *regs_, {rx_size, kRxBufferSize, 0}));
    TxRing::Config tx_config;
    tx_config.size = tx_size;
    tx_config.rs_interval = std::min<std::uint32_t>(32, tx_size / 4);
    DMAKIT_ASSIGN_OR_RETURN(TxRing tx, TxRing::create(tx_mem, *regs_, tx_config));
    rx_.emplace(std::move(rx));
    tx_.emplace(std::move(tx));
    max_frame_ = tx_config.max_frame;

    if (ctx.interrupts == InterruptMode::msix) DMAKIT_TRY(enable_msix());
    DMAKIT_ASSIGN_OR_RETURN(mac_, bring_up(*regs_, config, hw_stats_));
    running_ = true;
    if (interrupts_) {
        // bring_up left every cause masked; route and unmask ours (§10.2.4, IVAR/IMS).
        regs_->write32(reg::IVAR, ((bits::IVAR_VALID | kVecRx) << bits::IVAR_RXQ0_SHIFT) |
                                      ((bits::IVAR_VALID | kVecTx) << bits::IVAR_TXQ0_SHIFT) |
                                      ((bits::IVAR_VALID | kVecOther) << bits::IVAR_OTHER_SHIFT));
        regs_->write32(reg::EIAC, bits::INT_RXQ0 | bits::INT_TXQ0 | bits::INT_OTHER);
        regs_->write32(reg::ITR, 0);
        for (std::uint32_t v = 0; v < 5; ++v) regs_->write32(reg::EITR0 + 4 * v, 0);
        regs_->write32(reg::IMS, kMsixCauses);
    }
    refill_rx();
    if (rx_->posted() == 0) return Error(ENOMEM, "e1000e " + name + ": no RX buffers from the pool");

    // RX needs STATUS.LU; the emulated PHY finishes auto-negotiation a little
    // after the reset. Not fatal: the port runs once the link is up.
    const auto deadline = std::chrono::steady_clock::now() + ctx.link_timeout;
    for (;;) {
        DMAKIT_ASSIGN_OR_RETURN(const LinkStatus l, read_link(*regs_));
        if (l.up) break;
        if (std::chrono::steady_clock::now() >= deadline) {
            warn("e1000e " + name + ": link still down after " +
                 std::to_string(ctx.link_timeout.count()) + " ms; check the cable / netdev");
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return {};
}

Status E1000eNic::enable_msix() {
    auto irqs = vfio::Interrupts::enable(*device_, vfio::IrqKind::msix, kVectors);
    if (!irqs.ok()) return std::move(irqs).error().with_context("e1000e: enabling MSI-X");
    interrupts_.emplace(std::move(irqs).value());
    return {};
}

void E1000eNic::free_buffers(std::span<PacketBuffer* const> buffers) {
    // Fast path: all ours, into the queue's cache. Mixed pools (forwarding):
    // each back to its owner.
    const bool all_ours = std::all_of(buffers.begin(), buffers.end(),
                                      [&](const PacketBuffer* b) { return b != nullptr && b->pool == pool_; });
    Status status = all_ours ? cache_->free_burst(buffers) : free_to_owners(buffers);
    if (!status.ok()) warn("e1000e: " + dmakit::to_string(status.error()));
}

void E1000eNic::refill_rx() {
    std::uint32_t wanted = rx_->wanted();
    std::array<PacketBuffer*, kBurst> fresh;
    // Recycled slots go back even when the pool is dry.
    if (wanted == 0) {
        (void)rx_->refill({});
        return;
    }
    while (wanted != 0) {
        const std::size_t got = cache_->alloc_burst(std::span(fresh).first(std::min<std::size_t>(wanted, kBurst)));
        const std::size_t taken = rx_->refill(std::span(fresh).first(got));
        if (taken < got) free_buffers(std::span(fresh).subspan(taken, got - taken));
        if (got == 0 || taken < got) break;
        wanted -= static_cast<std::uint32_t>(taken);
    }
}

// One queue (queue_count() 1): Nic checked the index before these calls.
std::size_t E1000eNic::receive(std::size_t /*queue*/, std::span<PacketBuffer*> out) {
    if (removal_check_due() && detect_removal()) [[unlikely]] return 0;
    std::lock_guard lock(lock_);
    if (!running_) return 0;
    const std::size_t n = rx_->harvest(out);
    // Refill in batches: one RDT write per batch, not per frame.
    if (n != 0 || rx_->free_slots() >= 32) refill_rx();
    return n;
}

std::size_t E1000eNic::transmit(std::size_t /*queue*/, std::span<PacketBuffer* const> pkts) {
    if (removal_check_due() && detect_removal()) [[unlikely]] return 0;
    std::lock_guard lock(lock_);
    if (!running_) return 0;
    std::array<PacketBuffer*, kBurst> done;
    for (;;) {
        const std::size_t n = tx_->reclaim(done);
        if (n != 0) free_buffers(std::span(done).first(n));
        if (n < done.size()) break;
    }
    std::size_t sent = 0;
    bool full = false;
    while (sent < pkts.size()) {
        sent += tx_->enqueue(pkts.subspan(sent));
        if (sent == pkts.size()) break;
        PacketBuffer* bad = pkts[sent];
        if (sendable(bad)) {  // stopped for lack of room: back-pressure
            full = true;
            break;
        }
        // The contract: a packet the device cannot send is taken, freed, counted.
        ++tx_dropped_;
        if (bad != nullptr) free_buffers(std::span(&pkts[sent], 1));
        ++sent;
    }
    if (full) ++tx_ring_full_;
    return sent;
}

Result<NicStats> E1000eNic::stats() {
    std::lock_guard lock(lock_);
    if (removed()) return removed_error("stats");  // under the lock: not mid-removal
    DMAKIT_TRY(hw_stats_.fold(*regs_));
    NicStats s;
    QueueStats q;
    const RxRingStats& r = rx_->stats();
    const TxRingStats& t = tx_->stats();
    q.rx_packets = r.packets;
    q.rx_bytes = r.bytes;
    q.rx_dropped = r.dropped();
    q.rx_errors = r.frame_errors + r.length_errors + r.spurious_done;
    q.tx_packets = t.packets;
    q.tx_bytes = t.bytes;
    q.tx_dropped = tx_dropped_;
    q.tx_errors = tx_dropped_ + t.spurious_done;
    q.tx_ring_full = tx_ring_full_;
    s.queues.push_back(q);
    s.device = hw_stats_.counters();
    return s;
}

Result<bool> E1000eNic::wait_for_work(std::size_t /*queue*/, std::chrono::milliseconds timeout) {
    if (!interrupts_) return true;
    // About to sleep: a system call more is nothing.
    if (detect_removal()) return removed_error("wait");
    // A signalled cause is auto-cleared from ICR and auto-masked in IMS (EIAC;
    // QEMU's model does the same), as the kernel driver's NAPI relies on:
    // re-arm before sleeping. A cause that came in while masked is still
    // latched in ICR and fires as soon as IMS unmasks it, so none is lost.
    regs_->write32(reg::IMS, kMsixCauses);
    DMAKIT_ASSIGN_OR_RETURN(const auto fired, interrupts_->wait_any(timeout));
    return fired.has_value();
}

bool E1000eNic::detect_removal() {
    std::lock_guard lock(lock_);
    if (removed()) return true;
    if (device_ == nullptr || !device_->removal_requested()) return false;
    warn("e1000e " + name_ +
         ": the kernel asked for the device back (hot unplug or unbind): stopping the port, returning its "
         "buffers to the pool and releasing the device");
    // Stopped and reset while the device is still there, every ring buffer
    // back in the pool; then BAR0 retired (reads all ones) and the fd closed,
    // which lets the kernel finish the removal. The interrupts are detached,
    // not destroyed: a thread blocked in wait() keeps polling live eventfds
    // and times out into ENODEV.
    if (interrupts_) interrupts_->detach();
    teardown();
    bar0_.retire();
    device_->release();
    mark_removed(name_);
    return true;
}

void E1000eNic::teardown() noexcept {
    if (regs_ && running_) {
        // Stop both directions and mask interrupts before any memory the
        // device could still write is given back (§4.6 in reverse).
        mask_interrupts(*regs_);
        disable_rx_tx(*regs_);
        // The global reset also drops whatever the device had fetched.
        (void)reset(*regs_, Timeouts{}, {});
    }
    running_ = false;
    if (interrupts_ && !interrupts_->detached()) interrupts_.reset();
    std::vector<PacketBuffer*> held;
    if (rx_) rx_->release_buffers(held);
    if (tx_) tx_->release_buffers(held);
    if (!held.empty()) free_buffers(held);
    if (cache_) cache_->flush();
    cache_.reset();
}

}  // namespace

Result<std::unique_ptr<Nic>> open(NicOpenContext& context) { return start_port<E1000eNic>(context); }

}  // namespace dmakit::net::e1000e
