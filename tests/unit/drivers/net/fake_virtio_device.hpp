// A software virtio-net device behind the driver's Transport, for the unit
// tests: the common configuration registers (virtio 1.2 §4.1.4.3) with the
// reset / FEATURES_OK behaviour of QEMU's virtio-pci, per-queue state, the
// device configuration (§5.1.4), and the device side of each split
// virtqueue (§2.7) read and written through TestMemory::translate as an
// IOMMU would. Plus what no correct device does, for the never-trust tests:
// stuck in reset, refusing features, lying used rings.
#pragma once

#include "test_memory.hpp"

#include <dmakit/drivers/net/virtio/spec.hpp>
#include <dmakit/drivers/net/virtio/transport.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace dmakit::net::test {

// The device side of one split virtqueue.
class DeviceQueue {
public:
    struct Buffer {
        std::uint64_t addr = 0;
        std::uint32_t length = 0;
        bool writable = false;
    };
    struct Chain {
        std::uint16_t head = 0;
        std::vector<Buffer> buffers;
    };

    DeviceQueue(TestMemory& memory, std::uint32_t size, std::uint64_t desc, std::uint64_t avail, std::uint64_t used)
        : memory_(&memory), size_(size), desc_(desc), avail_(avail), used_(used) {}

    [[nodiscard]] std::uint32_t size() const { return size_; }
    [[nodiscard]] std::uint16_t avail_flags() const { return load16(avail_); }
    [[nodiscard]] std::uint16_t avail_idx() const { return load16(avail_ + 2); }
    [[nodiscard]] std::uint16_t pending() const { return static_cast<std::uint16_t>(avail_idx() - last_avail_); }

    // Takes the next available chain (following at most size descriptors).
    std::optional<Chain> pop() {
        if (pending() == 0) return std::nullopt;
        Chain c;
        c.head = load16(avail_ + 4 + 2 * (last_avail_ % size_));
        ++last_avail_;
        std::uint16_t id = c.head;
        for (std::uint32_t n = 0; n < size_; ++n) {
            const std::uint64_t d = desc_ + 16 * std::uint64_t{id};
            Buffer b;
            std::memcpy(&b.addr, at(d, 8), 8);
            std::memcpy(&b.length, at(d + 8, 4), 4);
            const std::uint16_t flags = load16(d + 12);
            b.writable = (flags & virtio::vring::desc_f_write) != 0;
            c.buffers.push_back(b);
            if ((flags & virtio::vring::desc_f_next) == 0) break;
            id = load16(d + 14);
        }
        return c;
    }

    // Writes one used entry and publishes it (used->idx += 1).
    void push_used(std::uint32_t id, std::uint32_t length) {
        write_entry(used_idx_, id, length);
        ++used_idx_;
        set_used_idx(used_idx_);
    }
    // Hostile helpers: an entry without publishing, any index, any flags.
    void write_entry(std::uint16_t slot, std::uint32_t id, std::uint32_t length) {
        const std::uint64_t e = used_ + 4 + 8 * std::uint64_t{slot % size_};
        std::memcpy(at(e, 4), &id, 4);
        std::memcpy(at(e + 4, 4), &length, 4);
    }
    void set_used_idx(std::uint16_t idx) {
        used_idx_ = idx;
        std::memcpy(at(used_ + 2, 2), &idx, 2);
    }
    [[nodiscard]] std::uint16_t used_idx() const { return used_idx_; }
    void set_used_flags(std::uint16_t flags) { std::memcpy(at(used_, 2), &flags, 2); }

    std::byte* at(std::uint64_t dma, std::size_t length) const {
        std::byte* p = memory_->translate(dma, length);
        if (p == nullptr) std::abort();  // a test wiring error, not a device case
        return p;
    }

private:
    std::uint16_t load16(std::uint64_t dma) const {
        std::uint16_t v;
        std::memcpy(&v, at(dma, 2), 2);
        return v;
    }

    TestMemory* memory_;
    std::uint32_t size_;
    std::uint64_t desc_, avail_, used_;
    std::uint16_t last_avail_ = 0;
    std::uint16_t used_idx_ = 0;
};

class FakeVirtioDevice final : public virtio::Transport {
public:
    struct Behaviour {
        std::uint64_t features = virtio::feature::bit(virtio::feature::version_1) |
                                 virtio::feature::bit(virtio::feature::access_platform) |
                                 virtio::feature::bit(virtio::feature::net_mac) |
                                 virtio::feature::bit(virtio::feature::net_status) |
                                 virtio::feature::bit(virtio::feature::net_ctrl_vq) |
                                 virtio::feature::bit(virtio::feature::net_ctrl_rx) |
                                 virtio::feature::bit(virtio::feature::net_mrg_rxbuf) |
                                 virtio::feature::bit(virtio::feature::ring_event_idx);
        std::uint16_t max_pairs = 1;
        std::uint16_t queue_max = 256;
        std::uint16_t msix_vectors = 0;       // vectors it accepts (0..n-1)
        bool stuck_in_reset = false;
        bool refuse_features = false;
        bool gone = false;                    // every read returns all ones
        std::uint16_t notify_off_limit = 64;  // queue_notify_off beyond which notifier() fails
        bool answer_control = true;           // process control commands on notify
        std::uint8_t control_ack = virtio::ctrl::ok;
        std::uint32_t control_used_length = 1;
    };

    FakeVirtioDevice(TestMemory& memory, Behaviour behaviour) : memory_(&memory), b_(behaviour) {
        config_[0] = 0x52, config_[1] = 0x54, config_[2] = 0x00, config_[3] = 0x12, config_[4] = 0x34,
        config_[5] = 0x56;
        config_[6] = virtio::net_config::status_link_up;
        std::memcpy(&config_[8], &b_.max_pairs, 2);
    }

    // ---- Transport ----
    std::uint8_t read8(std::uint32_t offset) override {
        if (b_.gone) return 0xFF;
        if (offset == virtio::common::device_status) return status_;
        if (offset == virtio::common::config_generation) return generation_;
        return 0;
    }
    std::uint16_t read16(std::uint32_t offset) override {
        if (b_.gone) return 0xFFFF;
        namespace c = virtio::common;
        switch (offset) {
            case c::num_queues: return static_cast<std::uint16_t>(2 * b_.max_pairs + 1);
            case c::queue_size: return selected_valid() ? queue().size : 0;
            case c::queue_msix_vector: return selected_valid() ? queue().vector : virtio::no_vector;
            case c::queue_enable: return selected_valid() ? queue().enabled : 0;
            case c::queue_notify_off: return queue_select_;
            case c::config_msix_vector: return config_vector_;
            default: return 0;
        }
    }
    std::uint32_t read32(std::uint32_t offset) override {
        if (b_.gone) return 0xFFFFFFFF;
        if (offset == virtio::common::device_feature) {
            return feature_select_ == 0 ? static_cast<std::uint32_t>(b_.features)
                   : feature_select_ == 1 ? static_cast<std::uint32_t>(b_.features >> 32)
                                          : 0;
        }
        return 0;
    }
    void write8(std::uint32_t offset, std::uint8_t value) override {
        if (offset != virtio::common::device_status) return;
        log_.push_back(value);
        if (value == 0) {
            if (!b_.stuck_in_reset) reset();
            else status_ = 0x03;  // never gets to 0
            return;
        }
        if ((value & virtio::status::features_ok) && !(status_ & virtio::status::features_ok)) {
            // QEMU's check: only offered bits, else FEATURES_OK is not set.
            if (b_.refuse_features || (driver_features_ & ~b_.features) != 0) {
                value = static_cast<std::uint8_t>(value & ~virtio::status::features_ok);
            }
        }
        status_ = value;
    }
    void write16(std::uint32_t offset, std::uint16_t value) override {
        namespace c = virtio::common;
        switch (offset) {
            case c::queue_select: queue_select_ = value; break;
            case c::queue_size:
                if (selected_valid()) queue().size = value;
                break;
            case c::queue_msix_vector:
                if (selected_valid()) queue().vector = value < b_.msix_vectors ? value : virtio::no_vector;
                break;
            case c::config_msix_vector: config_vector_ = value < b_.msix_vectors ? value : virtio::no_vector; break;
            case c::queue_enable:
                if (selected_valid() && value == 1) {
                    QueueRegs& q = queue();
                    q.enabled = 1;
                    rings_[queue_select_] = std::make_unique<DeviceQueue>(*memory_, q.size, q.desc, q.driver, q.device);
                }
                break;
            default: break;
        }
    }
    void write32(std::uint32_t offset, std::uint32_t value) override {
        namespace c = virtio::common;
        auto half = [&](std::uint64_t& field, std::uint32_t base) {
            if (offset == base) field = (field & ~0xFFFFFFFFull) | value;
            else field = (field & 0xFFFFFFFFull) | (std::uint64_t{value} << 32);
        };
        switch (offset) {
            case c::device_feature_select: feature_select_ = value; break;
            case c::driver_feature_select: driver_select_ = value; break;
            case c::driver_feature:
                if (driver_select_ == 0) driver_features_ = (driver_features_ & ~0xFFFFFFFFull) | value;
                else if (driver_select_ == 1) driver_features_ = (driver_features_ & 0xFFFFFFFFull) | (std::uint64_t{value} << 32);
                break;
            case c::queue_desc: case c::queue_desc + 4:
                if (selected_valid()) half(queue().desc, c::queue_desc);
                break;
            case c::queue_driver: case c::queue_driver + 4:
                if (selected_valid()) half(queue().driver, c::queue_driver);
                break;
            case c::queue_device: case c::queue_device + 4:
                if (selected_valid()) half(queue().device, c::queue_device);
                break;
            default: break;
        }
    }
    Result<std::uint8_t> device_read8(std::uint32_t offset) override {
        if (offset >= config_.size()) return Error(EPROTO, "past the device configuration");
        return b_.gone ? std::uint8_t{0xFF} : config_[offset];
    }
    Result<std::uint16_t> device_read16(std::uint32_t offset) override {
        if (offset + 2 > config_.size()) return Error(EPROTO, "past the device configuration");
        std::uint16_t v;
        std::memcpy(&v, &config_[offset], 2);
        return b_.gone ? std::uint16_t{0xFFFF} : v;
    }
    Result<std::unique_ptr<virtio::QueueNotifier>> notifier(std::uint16_t queue_index,
                                                            std::uint16_t notify_off) override {
        if (notify_off >= b_.notify_off_limit) return Error(EPROTO, "doorbell outside the notification structure");
        return std::unique_ptr<virtio::QueueNotifier>(std::make_unique<Doorbell>(*this, queue_index));
    }

    // ---- the test's side ----
    [[nodiscard]] std::uint8_t status() const { return status_; }
    [[nodiscard]] std::uint64_t driver_features() const { return driver_features_; }
    [[nodiscard]] const std::vector<std::uint8_t>& status_log() const { return log_; }
    [[nodiscard]] std::uint64_t notifications(std::uint16_t queue) const {
        auto it = notified_.find(queue);
        return it == notified_.end() ? 0 : it->second;
    }
    // The device side of an enabled queue (nullptr if not enabled).
    DeviceQueue* ring(std::uint16_t queue) {
        auto it = rings_.find(queue);
        return it == rings_.end() ? nullptr : it->second.get();
    }
    [[nodiscard]] std::uint16_t queue_vector(std::uint16_t queue) const {
        auto it = queues_.find(queue);
        return it == queues_.end() ? virtio::no_vector : it->second.vector;
    }
    [[nodiscard]] std::uint32_t queue_size(std::uint16_t queue) const {
        auto it = queues_.find(queue);
        return it == queues_.end() ? 0 : it->second.size;
    }
    // Commands the device executed: (class, command, data).
    struct Command {
        std::uint8_t command_class = 0, command = 0;
        std::vector<std::uint8_t> data;
    };
    [[nodiscard]] const std::vector<Command>& commands() const { return commands_; }
    Behaviour& behaviour() { return b_; }
    void set_link(bool up) { config_[6] = up ? virtio::net_config::status_link_up : 0; }
    void set_config_byte(std::size_t at, std::uint8_t v) { config_[at] = v; }

    // RX: writes `frame` (with a zero header) into the next buffer of
    // receive queue `pair`; false when the queue has none.
    bool deliver(std::uint32_t pair, const std::vector<std::byte>& frame) {
        DeviceQueue* q = ring(virtio::rx_queue_index(pair));
        if (q == nullptr) return false;
        auto chain = q->pop();
        if (!chain) return false;
        const DeviceQueue::Buffer& b = chain->buffers.at(0);
        const std::size_t total = virtio::net_hdr::size + frame.size();
        if (!b.writable || b.length < total) std::abort();  // the driver posted a bad buffer: a test failure
        std::byte* p = q->at(b.addr, total);
        std::memset(p, 0, virtio::net_hdr::size);
        std::memcpy(p + virtio::net_hdr::size, frame.data(), frame.size());
        q->push_used(chain->head, static_cast<std::uint32_t>(total));
        return true;
    }
    // TX: consumes every available chain of transmit queue `pair`, keeping
    // the frames (header checked to be zero) unless `complete` is false.
    std::size_t run_tx(std::uint32_t pair, bool complete = true) {
        DeviceQueue* q = ring(virtio::tx_queue_index(pair));
        std::size_t n = 0;
        while (q != nullptr) {
            auto chain = q->pop();
            if (!chain) break;
            const DeviceQueue::Buffer& b = chain->buffers.at(0);
            if (b.writable || b.length <= virtio::net_hdr::size) std::abort();
            const std::byte* p = q->at(b.addr, b.length);
            for (std::uint32_t i = 0; i < virtio::net_hdr::size; ++i) {
                if (p[i] != std::byte{0}) ++bad_tx_headers_;
            }
            sent_.emplace_back(p + virtio::net_hdr::size, p + b.length);
            if (complete) q->push_used(chain->head, 0);
            else held_.push_back(chain->head);
            ++n;
        }
        return n;
    }
    // Completes chains held back by run_tx(pair, false).
    void complete_held(std::uint32_t pair) {
        DeviceQueue* q = ring(virtio::tx_queue_index(pair));
        for (std::uint16_t id : held_) q->push_used(id, 0);
        held_.clear();
    }
    [[nodiscard]] const std::vector<std::vector<std::byte>>& sent() const { return sent_; }
    [[nodiscard]] std::uint64_t bad_tx_headers() const { return bad_tx_headers_; }

private:
    struct QueueRegs {
        std::uint16_t size = 0;
        std::uint16_t vector = virtio::no_vector;
        std::uint16_t enabled = 0;
        std::uint64_t desc = 0, driver = 0, device = 0;
    };
    class Doorbell final : public virtio::QueueNotifier {
    public:
        Doorbell(FakeVirtioDevice& d, std::uint16_t q) : device_(&d), queue_(q) {}
        void notify() override { device_->notified(queue_); }

    private:
        FakeVirtioDevice* device_;
        std::uint16_t queue_;
    };

    [[nodiscard]] std::uint16_t control_index() const {
        return (driver_features_ & virtio::feature::bit(virtio::feature::net_mq)) ? 2 * b_.max_pairs : 2;
    }
    [[nodiscard]] bool selected_valid() const { return queue_select_ <= 2 * b_.max_pairs; }
    QueueRegs& queue() {
        auto [it, fresh] = queues_.try_emplace(queue_select_);
        if (fresh) it->second.size = b_.queue_max;
        return it->second;
    }
    void reset() {
        status_ = 0;
        driver_features_ = 0;
        queues_.clear();
        rings_.clear();
        config_vector_ = virtio::no_vector;
    }
    void notified(std::uint16_t queue) {
        ++notified_[queue];
        if (queue == control_index() && b_.answer_control) run_control();
    }
    void run_control() {
        DeviceQueue* q = ring(control_index());
        while (q != nullptr) {
            auto chain = q->pop();
            if (!chain) break;
            Command cmd;
            const auto& bufs = chain->buffers;
            const std::byte* header = q->at(bufs.at(0).addr, 2);
            cmd.command_class = static_cast<std::uint8_t>(header[0]);
            cmd.command = static_cast<std::uint8_t>(header[1]);
            for (std::size_t i = 1; i + 1 < bufs.size(); ++i) {
                const std::byte* d = q->at(bufs[i].addr, bufs[i].length);
                for (std::uint32_t k = 0; k < bufs[i].length; ++k) cmd.data.push_back(static_cast<std::uint8_t>(d[k]));
            }
            commands_.push_back(cmd);
            *q->at(bufs.back().addr, 1) = std::byte{b_.control_ack};
            q->push_used(chain->head, b_.control_used_length);
        }
    }

    TestMemory* memory_;
    Behaviour b_;
    std::uint8_t status_ = 0;
    std::uint8_t generation_ = 0;
    std::uint32_t feature_select_ = 0, driver_select_ = 0;
    std::uint64_t driver_features_ = 0;
    std::uint16_t queue_select_ = 0;
    std::uint16_t config_vector_ = virtio::no_vector;
    std::map<std::uint16_t, QueueRegs> queues_;
    std::map<std::uint16_t, std::unique_ptr<DeviceQueue>> rings_;
    std::map<std::uint16_t, std::uint64_t> notified_;
    std::vector<std::uint8_t> config_ = std::vector<std::uint8_t>(12, 0);
    std::vector<std::uint8_t> log_;
    std::vector<Command> commands_;
    std::vector<std::vector<std::byte>> sent_;
    std::vector<std::uint16_t> held_;
    std::uint64_t bad_tx_headers_ = 0;
};

}  // namespace dmakit::net::test
