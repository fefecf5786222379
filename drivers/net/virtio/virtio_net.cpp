// VirtioNic: a modern virtio-net function over VFIO and the DMA API.
//
// open(): OpenPort (function, ID check, pool) -> modern virtio-net only ->
// function reset when VFIO offers one -> config space -> virtio structures in mapped BARs
// (pci_structures) -> §3.1.1 bring-up (device_init) with our features ->
// one RX and one TX virtqueue per queue pair (+ the control queue) in
// coherent memory -> DRIVER_OK -> RX refill -> control commands (queue
// pairs, promiscuous mode) -> wait for link. Teardown resets the device
// before any memory it could write is given back.
//
// Threads: queue pair q is driven by one thread (rx_burst/tx_burst/wait on
// q). Each pair has a lock that its thread takes per burst, uncontended,
// so that a removal noticed on one queue can stop the port and take every
// buffer back while other queues' threads are still running.
#include <dmakit/drivers/net/virtio/virtio.hpp>

#include <dmakit/drivers/net/nic_open_context.hpp>
#include <dmakit/drivers/net/open_port.hpp>
#include <dmakit/drivers/net/packet_pool.hpp>
#include <dmakit/drivers/net/virtio/control_queue.hpp>
#include <dmakit/drivers/net/virtio/device_init.hpp>
#include <dmakit/drivers/net/virtio/net_queues.hpp>
#include <dmakit/drivers/net/virtio/pci_structures.hpp>
#include <dmakit/drivers/net/virtio/pci_transport.hpp>
#include <dmakit/drivers/net/virtio/spec.hpp>

#include <dmakit/vfio/interrupts.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

namespace dmakit::net::virtio {

Status check_pci_id(PciId id, std::string_view device) {
    if (id.vendor == pci_vendor && id.device == pci_device_net_modern) return {};
    const std::string name(device);
    if (id.vendor == pci_vendor && id.device == pci_device_net_transitional) {
        return Error(ENODEV, "virtio-net: " + name + " is a transitional (legacy-capable) virtio-net device (" +
                                 id.to_string() + "); dmakit drives modern virtio-net (1af4:1041) only; make it "
                                 "modern (for QEMU: -device virtio-net-pci,disable-legacy=on,iommu_platform=on)");
    }
    return Error(ENODEV, "virtio-net: " + name + " is " + id.to_string() + ", not a modern virtio-net device (1af4:1041)");
}

namespace {

constexpr std::uint32_t kHeadroom = 128;
constexpr std::uint32_t kBufferRoom = 2048;
constexpr std::uint32_t kRxMinRoom = 1518;   // 1514 + a VLAN tag; no MRG_RXBUF (§5.1.6.3.1)
static_assert(kRxMinRoom <= kBufferRoom);
constexpr std::uint32_t kMaxFrame = 1518;
constexpr std::size_t kBurst = 64;
constexpr std::uint32_t kRefillBatch = 32;
constexpr std::uint32_t kControlQueueSize = 16;
constexpr auto kControlTimeout = std::chrono::milliseconds(1000);
constexpr auto kTeardownResetTimeout = std::chrono::milliseconds(100);
constexpr std::uint8_t kStatusGone = 0xFF;

struct QueuePair {
    std::mutex lock;  // this pair's thread per burst; teardown
    dma::CoherentBuffer rx_memory;
    dma::CoherentBuffer tx_memory;
    std::optional<RxQueue> rx;
    std::optional<TxQueue> tx;
    std::optional<PacketPoolCache> cache;
    std::uint32_t bursts = 0;
    std::uint64_t tx_dropped = 0;
    std::uint64_t tx_ring_full = 0;
};

class VirtioNic final : public Nic {
public:
    explicit VirtioNic(const NicOpenContext& ctx)
        : logger_(ctx.logger),
          name_((ctx.function != nullptr ? ctx.function->address() : ctx.address).to_string()) {}
    ~VirtioNic() override { teardown(); }

    [[nodiscard]] Status start(NicOpenContext& ctx);

    std::string_view driver_name() const noexcept override { return "virtio-net"; }
    std::size_t queue_count() const noexcept override { return pairs_.size(); }
    Result<LinkStatus> link() override;
    MacAddress mac_address() const override { return mac_; }
    Status set_promiscuous(bool enabled) override;
    Result<NicStats> stats() override;
    PacketPool* packet_pool() noexcept override { return pool_; }

private:
    std::size_t receive(std::size_t queue, std::span<PacketBuffer*> out) override;
    std::size_t transmit(std::size_t queue, std::span<PacketBuffer* const> pkts) override;
    Result<bool> wait_for_work(std::size_t queue, std::chrono::milliseconds timeout) override;
    bool detect_removal() override;
    // Every 4096 bursts of a queue: the removal check is a system call.
    [[nodiscard]] static bool removal_check_due(QueuePair& q) noexcept { return (++q.bursts & 4095u) == 0; }

    void warn(const std::string& m) const {
        if (logger_ != nullptr) logger_->warning(m);
    }
    [[nodiscard]] Status open_device(NicOpenContext& ctx);
    [[nodiscard]] Status map_structures();
    [[nodiscard]] Result<Virtqueue> make_queue(std::uint16_t index, std::uint32_t wanted_size, bool interrupts,
                                               std::uint16_t vector, dma::CoherentBuffer& memory);
    [[nodiscard]] Status setup_control_queue(std::uint16_t max_pairs);
    [[nodiscard]] Status check_alive(const char* what);
    void refill_rx(QueuePair& q);
    void free_buffers(QueuePair& q, std::span<PacketBuffer* const> buffers);
    void teardown() noexcept;
    void reset_device() noexcept;

    const Logger* logger_;
    std::string name_;  // PCI address, for messages
    // Declaration order is destruction order reversed: the port (function,
    // DMA context, pool) outlives the rings' memory and the interrupts.
    std::optional<OpenPort> port_;
    vfio::Device* device_ = nullptr;
    dma::DmaDevice* dma_ = nullptr;
    std::array<vfio::Region, 6> bars_;
    std::optional<PciTransport> transport_;
    std::uint64_t features_ = 0;
    PacketPool* pool_ = nullptr;
    std::vector<std::unique_ptr<QueuePair>> pairs_;
    std::mutex control_lock_;
    dma::CoherentBuffer control_memory_;
    dma::CoherentBuffer command_memory_;
    std::optional<ControlQueue> control_;
    std::optional<vfio::Interrupts> interrupts_;
    std::mutex removal_lock_;
    MacAddress mac_;
    std::atomic<bool> running_{false};
};

Status VirtioNic::open_device(NicOpenContext& ctx) {
    PortPoolNeeds needs;
    needs.default_buffers =
        pairs_.size() * (std::size_t{ctx.rx_ring_size} + ctx.tx_ring_size) + 1024;
    needs.headroom = kHeadroom;
    needs.data_room = kBufferRoom;
    DMAKIT_ASSIGN_OR_RETURN(OpenPort port, OpenPort::open(ctx, driver, needs));
    port_.emplace(std::move(port));
    device_ = &port_->function().vfio();
    dma_ = &port_->function().dma();
    pool_ = &port_->pool();
    // OpenPort let a transitional device through (the driver claims its ID
    // only to say this): refuse it before anything is written to it.
    DMAKIT_ASSIGN_OR_RETURN(const std::uint16_t vendor, device_->config_read16(0x00));
    DMAKIT_ASSIGN_OR_RETURN(const std::uint16_t device_id, device_->config_read16(0x02));
    DMAKIT_TRY(check_pci_id(PciId{vendor, device_id}, name_));
    // The net header goes in the headroom (net_queues.hpp).
    if (pool_->headroom() < net_hdr::size) {
        return Error(EINVAL, "virtio-net " + name_ + ": pool buffers have " + std::to_string(pool_->headroom()) +
                                 " bytes of headroom; the 12-byte net header needs 12");
    }
    for (auto& q : pairs_) q->cache.emplace(pool_->make_cache());

    // A function reset when VFIO offers one (QEMU's virtio-net on the root
    // bus has none); the virtio reset below is what clears the queues.
    if (device_->supports_reset()) {
        auto reset = device_->reset();
        if (!reset.ok()) warn("virtio-net " + name_ + ": VFIO reset failed (" + dmakit::to_string(reset.error()) +
                              "); relying on the virtio reset");
    }
    return device_->enable_bus_master();
}

Status VirtioNic::map_structures() {
    // The standard config space holds the capability list (§4.1.4).
    std::vector<std::uint8_t> config(256);
    for (std::uint32_t at = 0; at < config.size(); at += 4) {
        DMAKIT_ASSIGN_OR_RETURN(const std::uint32_t word, device_->config_read32(at));
        for (std::uint32_t i = 0; i < 4; ++i) config[at + i] = static_cast<std::uint8_t>(word >> (8 * i));
    }
    auto found = find_structures(config);
    if (!found.ok()) return std::move(found).error().with_context("virtio-net " + name_);
    // Map each BAR a candidate names; one that cannot be mapped (an I/O BAR)
    // just leaves its candidates unusable.
    std::array<bool, 6> wanted{};
    auto want = [&](std::uint8_t bar) { wanted[bar] = true; };
    for (const auto& s : found->common) want(s.bar);
    for (const auto& n : found->notify) want(n.where.bar);
    for (const auto& s : found->device) want(s.bar);
    for (unsigned bar = 0; bar < wanted.size(); ++bar) {
        if (!wanted[bar]) continue;
        auto region = device_->map_bar(bar);
        if (region.ok()) bars_[bar] = std::move(region).value();
    }
    const MappedCheck mapped = [this](std::uint8_t bar, std::uint64_t offset, std::uint64_t length) {
        return bar < bars_.size() && bars_[bar].base() != nullptr && bars_[bar].is_mapped(offset, length);
    };
    DMAKIT_ASSIGN_OR_RETURN(const ChosenStructures chosen, choose_structures(*found, mapped, name_));
    std::array<volatile std::byte*, 6> bases{};
    for (std::size_t i = 0; i < bars_.size(); ++i) bases[i] = bars_[i].base();
    transport_.emplace(chosen, bases, name_);
    return {};
}

Result<Virtqueue> VirtioNic::make_queue(std::uint16_t index, std::uint32_t wanted_size, bool interrupts,
                                        std::uint16_t vector, dma::CoherentBuffer& memory) {
    DMAKIT_ASSIGN_OR_RETURN(const std::uint32_t max, queue_max_size(*transport_, index, name_));
    // The device's queue_size is its maximum; a smaller power of two is ours
    // to choose (§4.1.5.1.3). A hostile maximum that is no power of two is
    // rounded down.
    const std::uint32_t size = std::bit_floor(std::min({wanted_size, max, vring::max_size}));
    const RingLayout layout = RingLayout::for_size(size);
    DMAKIT_ASSIGN_OR_RETURN(memory, dma_->alloc_coherent(layout.bytes));
    DMAKIT_ASSIGN_OR_RETURN(Virtqueue queue, Virtqueue::create({memory.cpu(), memory.dma().value(), memory.size()},
                                                               size, interrupts));
    QueueSetup setup;
    setup.index = index;
    setup.size = size;
    setup.desc = queue.desc_dma();
    setup.driver = queue.driver_dma();
    setup.device = queue.device_dma();
    setup.msix_vector = vector;
    DMAKIT_ASSIGN_OR_RETURN(auto notifier, setup_queue(*transport_, setup, name_));
    queue.set_notifier(std::move(notifier));
    return queue;
}

Status VirtioNic::setup_control_queue(std::uint16_t max_pairs) {
    // §5.1.2: controlq follows every data queue the device has.
    const auto index = static_cast<std::uint16_t>((features_ & feature::bit(feature::net_mq)) ? 2 * max_pairs : 2);
    DMAKIT_ASSIGN_OR_RETURN(Virtqueue queue, make_queue(index, kControlQueueSize, false, no_vector, control_memory_));
    // The command block: its own small coherent buffer.
    DMAKIT_ASSIGN_OR_RETURN(command_memory_, dma_->alloc_coherent(ControlQueue::command_bytes));
    CommandMemory block{static_cast<std::byte*>(command_memory_.cpu()), command_memory_.dma().value(),
                        command_memory_.size()};
    DMAKIT_ASSIGN_OR_RETURN(ControlQueue control, ControlQueue::create(std::move(queue), block, name_));
    control_.emplace(std::move(control));
    return {};
}

Status VirtioNic::start(NicOpenContext& ctx) {
    if (ctx.rx_queues != ctx.tx_queues || ctx.rx_queues == 0) {
        return Error(EINVAL, "virtio-net " + name_ + ": queues come in pairs; ask for as many RX as TX queues, at "
                                 "least 1 (asked for " + std::to_string(ctx.rx_queues) + " RX, " +
                                 std::to_string(ctx.tx_queues) + " TX)");
    }
    for (std::uint32_t size : {ctx.rx_ring_size, ctx.tx_ring_size}) {
        if (size == 0 || size > vring::max_size || !std::has_single_bit(size)) {
            return Error(EINVAL, "virtio-net " + name_ + ": ring size " + std::to_string(size) +
                                     " must be a power of two from 1 to 32768 (virtio 1.2 §2.7)");
        }
    }
    const std::uint32_t pairs = ctx.rx_queues;
    for (std::uint32_t i = 0; i < pairs; ++i) pairs_.push_back(std::make_unique<QueuePair>());

    DMAKIT_TRY(open_device(ctx));
    DMAKIT_TRY(map_structures());
    Transport& t = *transport_;
    DMAKIT_TRY(begin_initialization(t, std::chrono::duration_cast<std::chrono::microseconds>(ctx.reset_timeout), name_));
    const std::uint64_t offered = read_device_features(t);
    auto chosen = choose_features(offered, FeatureRequest{pairs}, name_);
    if (!chosen.ok()) {
        set_failed(t);
        return std::move(chosen).error();
    }
    features_ = *chosen;
    DMAKIT_TRY(negotiate_features(t, features_, name_));
    DMAKIT_ASSIGN_OR_RETURN(const NetConfig config, read_net_config(t, features_, name_));
    if (pairs > config.max_queue_pairs) {
        set_failed(t);
        return Error(EINVAL, "virtio-net " + name_ + ": asked for " + std::to_string(pairs) +
                                 " queue pairs, the device offers " + std::to_string(config.max_queue_pairs) +
                                 " (max_virtqueue_pairs, virtio 1.2 §5.1.4); ask for fewer, or give it more (for "
                                 "QEMU: mq=on,vectors=" + std::to_string(2 * pairs + 2) + " and a netdev with " +
                                 std::to_string(pairs) + " queues; a hubport has one)");
    }
    mac_ = config.mac;
    if (!mac_.is_valid_unicast()) {
        // §5.1.4.2: without a usable MAC from the device, a random
        // locally administered one.
        if (features_ & feature::bit(feature::net_mac)) {
            warn("virtio-net " + name_ + ": the device's MAC " + mac_.to_string() +
                 " is not a unicast address; using a random locally administered one");
        }
        std::random_device random;
        for (auto& b : mac_.bytes) b = static_cast<std::uint8_t>(random());
        mac_.bytes[0] = static_cast<std::uint8_t>((mac_.bytes[0] & 0xFE) | 0x02);
    }

    const bool msix = ctx.interrupts == InterruptMode::msix;
    if (msix) {
        // One vector per queue pair (RX completions of pair q wake its
        // thread); configuration changes signal nothing.
        auto irqs = vfio::Interrupts::enable(*device_, vfio::IrqKind::msix, pairs);
        if (!irqs.ok()) return std::move(irqs).error().with_context("virtio-net " + name_ + ": enabling MSI-X");
        interrupts_.emplace(std::move(irqs).value());
    }
    DMAKIT_TRY(set_config_vector(t, no_vector, name_));
    for (std::uint32_t p = 0; p < pairs; ++p) {
        QueuePair& q = *pairs_[p];
        const auto vector = msix ? static_cast<std::uint16_t>(p) : no_vector;
        DMAKIT_ASSIGN_OR_RETURN(Virtqueue rx, make_queue(rx_queue_index(p), ctx.rx_ring_size, msix, vector, q.rx_memory));
        // TX completions signal nothing (VRING_AVAIL_F_NO_INTERRUPT, no
        // vector): the driver reclaims them on its own calls, and QEMU would
        // otherwise raise an interrupt per frame sent.
        DMAKIT_ASSIGN_OR_RETURN(Virtqueue tx, make_queue(tx_queue_index(p), ctx.tx_ring_size, false, no_vector, q.tx_memory));
        DMAKIT_ASSIGN_OR_RETURN(RxQueue rxq, RxQueue::create(std::move(rx), kRxMinRoom));
        DMAKIT_ASSIGN_OR_RETURN(TxQueue txq, TxQueue::create(std::move(tx), kMaxFrame));
        q.rx.emplace(std::move(rxq));
        q.tx.emplace(std::move(txq));
    }
    if (features_ & feature::bit(feature::net_ctrl_vq)) DMAKIT_TRY(setup_control_queue(config.max_queue_pairs));

    set_driver_ok(t);
    running_.store(true, std::memory_order_release);
    // §3.1.1: no buffer notification before DRIVER_OK, so the RX queues
    // are filled now.
    for (auto& q : pairs_) {
        refill_rx(*q);
        if (q->rx->posted() == 0) return Error(ENOMEM, "virtio-net " + name_ + ": no RX buffers from the pool");
    }
    if (features_ & feature::bit(feature::net_mq)) {
        // §5.1.6.5.6: every queue is configured; now let the device use them.
        const std::array<std::uint8_t, 2> data{static_cast<std::uint8_t>(pairs), static_cast<std::uint8_t>(pairs >> 8)};
        DMAKIT_TRY(control_->send(ctrl::class_mq, ctrl::mq_vq_pairs_set, data, kControlTimeout));
    }
    if (features_ & feature::bit(feature::net_ctrl_rx)) DMAKIT_TRY(set_promiscuous(ctx.promiscuous));

    // Not fatal: the port runs once the link is up.
    const auto deadline = std::chrono::steady_clock::now() + ctx.link_timeout;
    for (;;) {
        DMAKIT_ASSIGN_OR_RETURN(const LinkStatus l, link());
        if (l.up) break;
        if (std::chrono::steady_clock::now() >= deadline) {
            warn("virtio-net " + name_ + ": link still down after " + std::to_string(ctx.link_timeout.count()) +
                 " ms; check the netdev");
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return {};
}

Status VirtioNic::check_alive(const char* what) {
    const std::uint8_t s = device_status(*transport_);
    if (s == kStatusGone) {
        return Error(ENODEV, "virtio-net " + name_ + ": " + what + ": device_status reads 0xff; the device is gone");
    }
    if ((s & status::device_needs_reset) != 0) {
        return Error(EIO, "virtio-net " + name_ + ": " + what +
                              ": the device set DEVICE_NEEDS_RESET (virtio 1.2 §2.1); close and reopen the port");
    }
    return {};
}

Result<LinkStatus> VirtioNic::link() {
    if (removed()) return removed_error("link");
    DMAKIT_TRY(check_alive("reading the link"));
    LinkStatus l;
    l.up = true;  // §5.1.4.2: without VIRTIO_NET_F_STATUS, assume the link is up
    if (features_ & feature::bit(feature::net_status)) {
        DMAKIT_ASSIGN_OR_RETURN(const std::uint16_t s, transport_->device_read16(net_config::status));
        l.up = (s & net_config::status_link_up) != 0;
    }
    l.duplex = Duplex::full;
    l.speed_mbps = 0;  // virtio-net reports no speed without SPEED_DUPLEX, which is not negotiated
    return l;
}

Status VirtioNic::set_promiscuous(bool enabled) {
    if (removed()) return removed_error("set_promiscuous");
    if (!(features_ & feature::bit(feature::net_ctrl_rx)) || !control_) {
        return Error(ENOTSUP, "virtio-net " + name_ + ": the device offers no VIRTIO_NET_F_CTRL_RX, so its "
                                                       "receive filter cannot be changed");
    }
    std::lock_guard lock(control_lock_);
    const std::array<std::uint8_t, 1> on{static_cast<std::uint8_t>(enabled ? 1 : 0)};
    return control_->send(ctrl::class_rx, ctrl::rx_promisc, on, kControlTimeout);
}

void VirtioNic::free_buffers(QueuePair& q, std::span<PacketBuffer* const> buffers) {
    // Fast path: all ours, into the queue's cache. Mixed pools (forwarding):
    // each back to its owner.
    const bool all_ours = std::all_of(buffers.begin(), buffers.end(),
                                      [&](const PacketBuffer* b) { return b != nullptr && b->pool == pool_; });
    Status status = all_ours && q.cache ? q.cache->free_burst(buffers) : free_to_owners(buffers);
    if (!status.ok()) warn("virtio-net: " + dmakit::to_string(status.error()));
}

void VirtioNic::refill_rx(QueuePair& q) {
    std::uint32_t wanted = q.rx->wanted();
    if (wanted == 0) {
        (void)q.rx->refill({});  // recycled buffers go back even when the pool is dry
        return;
    }
    std::array<PacketBuffer*, kBurst> fresh;
    while (wanted != 0) {
        const std::size_t got = q.cache->alloc_burst(std::span(fresh).first(std::min<std::size_t>(wanted, kBurst)));
        const std::size_t taken = q.rx->refill(std::span(fresh).first(got));
        if (taken < got) free_buffers(q, std::span(fresh).subspan(taken, got - taken));
        if (got == 0 || taken < got) break;
        wanted -= static_cast<std::uint32_t>(taken);
    }
}

std::size_t VirtioNic::receive(std::size_t queue, std::span<PacketBuffer*> out) {
    QueuePair& q = *pairs_[queue];
    if (removal_check_due(q) && detect_removal()) [[unlikely]] return 0;
    std::lock_guard lock(q.lock);
    if (!running_.load(std::memory_order_acquire)) return 0;
    const std::size_t n = q.rx->harvest(out);
    // Refill in batches: one index store (and at most one doorbell) per batch.
    if (n != 0 || q.rx->free_slots() >= kRefillBatch) refill_rx(q);
    return n;
}

std::size_t VirtioNic::transmit(std::size_t queue, std::span<PacketBuffer* const> pkts) {
    QueuePair& q = *pairs_[queue];
    if (removal_check_due(q) && detect_removal()) [[unlikely]] return 0;
    std::lock_guard lock(q.lock);
    if (!running_.load(std::memory_order_acquire)) return 0;
    // Reclaim only when this burst needs the room, or when asked to (an
    // empty burst), as DPDK's virtio PMD does. Reclaiming on every call
    // republished a few slots at a time; against QEMU each small publish
    // risks landing just after the device re-enabled notifications, and
    // that doorbell waits for QEMU's lock while it sends the other ports'
    // frames: twice the doorbells, 0.95x testpmd instead of 1.02x
    // (docs/performance.md, "Lazy TX reclaim").
    if (pkts.empty() || q.tx->free_slots() < pkts.size()) {
        std::array<PacketBuffer*, kBurst> done;
        for (;;) {
            const std::size_t n = q.tx->reclaim(done);
            if (n != 0) free_buffers(q, std::span(done).first(n));
            if (n < done.size()) break;
        }
    }
    std::size_t sent = 0;
    bool full = false;
    while (sent < pkts.size()) {
        sent += q.tx->enqueue(pkts.subspan(sent));
        if (sent == pkts.size()) break;
        PacketBuffer* bad = pkts[sent];
        if (q.tx->sendable(bad)) {  // stopped for lack of room: back-pressure
            full = true;
            break;
        }
        // The contract: a packet the device cannot send is taken, freed, counted.
        ++q.tx_dropped;
        if (bad != nullptr) free_buffers(q, std::span(&pkts[sent], 1));
        ++sent;
    }
    if (full) ++q.tx_ring_full;
    return sent;
}

Result<bool> VirtioNic::wait_for_work(std::size_t queue, std::chrono::milliseconds timeout) {
    if (!interrupts_) return true;
    // About to sleep: a system call more is nothing.
    if (detect_removal()) return removed_error("wait");
    {
        // Frames already waiting: no need to sleep (their interrupt may
        // have been consumed by an earlier wait).
        QueuePair& q = *pairs_[queue];
        std::lock_guard lock(q.lock);
        if (q.rx && q.rx->virtqueue().has_used()) return true;
    }
    DMAKIT_ASSIGN_OR_RETURN(const std::uint64_t fired, interrupts_->wait(static_cast<std::uint32_t>(queue), timeout));
    return fired != 0;
}

Result<NicStats> VirtioNic::stats() {
    if (removed()) return removed_error("stats");
    DMAKIT_TRY(check_alive("reading statistics"));
    NicStats s;
    std::uint64_t rx_bad_index = 0, rx_bad_id = 0, tx_bad_index = 0, tx_bad_id = 0;
    std::uint64_t length_errors = 0, header_errors = 0, notifications = 0, suppressed = 0;
    for (auto& qp : pairs_) {
        QueuePair& q = *qp;
        std::lock_guard lock(q.lock);
        const RxQueueStats& r = q.rx->stats();
        const TxQueueStats& t = q.tx->stats();
        const VirtqueueStats& rv = q.rx->virtqueue().stats();
        const VirtqueueStats& tv = q.tx->virtqueue().stats();
        QueueStats out;
        out.rx_packets = r.packets;
        out.rx_bytes = r.bytes;
        out.rx_dropped = r.dropped();
        out.rx_errors = r.dropped() + rv.bad_used_id + rv.bad_used_index;
        out.tx_packets = t.packets;
        out.tx_bytes = t.bytes;
        out.tx_dropped = q.tx_dropped;
        out.tx_errors = q.tx_dropped + tv.bad_used_id + tv.bad_used_index;
        out.tx_ring_full = q.tx_ring_full;
        s.queues.push_back(out);
        rx_bad_index += rv.bad_used_index;
        rx_bad_id += rv.bad_used_id;
        tx_bad_index += tv.bad_used_index;
        tx_bad_id += tv.bad_used_id;
        length_errors += r.length_errors;
        header_errors += r.header_errors;
        notifications += rv.notifications + tv.notifications;
        suppressed += rv.notify_suppressed + tv.notify_suppressed;
    }
    // virtio-net keeps no statistics of its own: the device counters stay
    // zero, and `all` lists what the driver counted of the device's doings.
    s.device.all = {{"rx_bad_used_index", rx_bad_index}, {"rx_bad_used_id", rx_bad_id},
                    {"tx_bad_used_index", tx_bad_index}, {"tx_bad_used_id", tx_bad_id},
                    {"rx_length_errors", length_errors}, {"rx_header_errors", header_errors},
                    {"doorbells", notifications},        {"doorbells_suppressed", suppressed}};
    return s;
}

bool VirtioNic::detect_removal() {
    std::lock_guard guard(removal_lock_);
    if (removed()) return true;
    if (device_ == nullptr || !device_->removal_requested()) return false;
    warn("virtio-net " + name_ +
         ": the kernel asked for the device back (hot unplug or unbind): stopping the port, returning its "
         "buffers to the pool and releasing the device");
    // Reset while the device is still there, every buffer back in its pool;
    // then the BARs retired (they read all ones) and the fd closed, which
    // lets the kernel finish the removal. The interrupts are detached, not
    // destroyed: a thread blocked in wait() keeps polling live eventfds and
    // times out into ENODEV.
    if (interrupts_) interrupts_->detach();
    teardown();
    for (auto& bar : bars_) bar.retire();
    device_->release();
    mark_removed(name_);
    return true;
}

void VirtioNic::reset_device() noexcept {
    if (!transport_) return;
    Transport& t = *transport_;
    t.write8(common::device_status, 0);
    const auto deadline = std::chrono::steady_clock::now() + kTeardownResetTimeout;
    for (;;) {
        const std::uint8_t s = t.read8(common::device_status);
        if (s == 0) return;
        if (s == kStatusGone || std::chrono::steady_clock::now() >= deadline) break;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    // The device did not confirm the reset: cut its DMA off before its ring
    // and buffer memory goes back.
    warn("virtio-net " + name_ + ": the device did not finish its reset; turning bus mastering off");
    if (device_ != nullptr) (void)device_->disable_bus_master();
}

void VirtioNic::teardown() noexcept {
    std::vector<std::unique_lock<std::mutex>> locks;
    for (auto& q : pairs_) locks.emplace_back(q->lock);
    // §2.4: after a reset the device uses no ring or buffer of ours.
    reset_device();
    running_.store(false, std::memory_order_release);
    if (interrupts_ && !interrupts_->detached()) interrupts_.reset();
    for (auto& qp : pairs_) {
        QueuePair& q = *qp;
        std::vector<PacketBuffer*> held;
        if (q.rx) q.rx->release_buffers(held);
        if (q.tx) q.tx->release_buffers(held);
        if (!held.empty()) free_buffers(q, held);
        if (q.cache) q.cache->flush();
        q.cache.reset();
    }
    if (control_) control_->release();
}

}  // namespace

Result<std::unique_ptr<Nic>> open(NicOpenContext& context) { return start_port<VirtioNic>(context); }

}  // namespace dmakit::net::virtio
