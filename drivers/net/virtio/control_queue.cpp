#include <dmakit/drivers/net/virtio/control_queue.hpp>

#include <dmakit/drivers/net/virtio/spec.hpp>

#include <dmakit/support/mmio.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

namespace dmakit::net::virtio {
namespace {

constexpr std::size_t kHeaderAt = 0;
constexpr std::size_t kDataAt = 64;
constexpr std::size_t kAckAt = 192;
constexpr std::uint8_t kAckUnwritten = 0xFF;

std::string command_name(std::uint8_t command_class, std::uint8_t command) {
    if (command_class == ctrl::class_mq && command == ctrl::mq_vq_pairs_set) return "VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET";
    if (command_class == ctrl::class_rx && command == ctrl::rx_promisc) return "VIRTIO_NET_CTRL_RX_PROMISC";
    return "control command " + std::to_string(command_class) + "/" + std::to_string(command);
}

}  // namespace

Result<ControlQueue> ControlQueue::create(Virtqueue queue, CommandMemory memory, std::string device) {
    if (memory.cpu == nullptr || memory.bytes < command_bytes) {
        return Error(EINVAL, "virtio-net control queue needs " + std::to_string(command_bytes) +
                                 " bytes of command memory");
    }
    return ControlQueue(std::move(queue), memory, std::move(device));
}

Status ControlQueue::send(std::uint8_t command_class, std::uint8_t command, std::span<const std::uint8_t> data,
                          std::chrono::milliseconds timeout) {
    const std::string what = "virtio-net " + device_ + ": " + command_name(command_class, command);
    if (stuck_) {
        return Error(EBUSY, what + ": an earlier control command never completed; reopen the port");
    }
    if (data.size() > max_data) return Error(EINVAL, what + ": command data larger than 64 bytes");
    if (queue_.free_descriptors() < 3) return Error(EBUSY, what + ": control queue has no free descriptors");

    volatile std::byte* block = memory_.cpu;
    block[kHeaderAt] = std::byte{command_class};
    block[kHeaderAt + 1] = std::byte{command};
    for (std::size_t i = 0; i < data.size(); ++i) block[kDataAt + i] = std::byte{data[i]};
    block[kAckAt] = std::byte{kAckUnwritten};

    std::array<Segment, 3> chain;
    std::size_t n = 0;
    chain[n++] = Segment{memory_.dma + kHeaderAt, 2, false};
    if (!data.empty()) chain[n++] = Segment{memory_.dma + kDataAt, static_cast<std::uint32_t>(data.size()), false};
    chain[n++] = Segment{memory_.dma + kAckAt, 1, true};
    const std::uint16_t head = queue_.add(std::span(chain).first(n));
    if (head == Virtqueue::no_id) return Error(EBUSY, what + ": control queue is full");
    queue_.publish();

    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        Completion c;
        if (queue_.collect(std::span(&c, 1)) == 1) {
            if (c.id != head) {
                return Error(EPROTO, what + ": the device completed a control chain it was never given");
            }
            mmio::dma_rmb();
            const auto ack = static_cast<std::uint8_t>(block[kAckAt]);
            if (c.length != 1) {
                return Error(EPROTO, what + ": the device reported writing " + std::to_string(c.length) +
                                         " bytes into the 1-byte ack (virtio 1.2 §5.1.6.5)");
            }
            if (ack == ctrl::ok) return {};
            if (ack == ctrl::err) return Error(EIO, what + ": the device refused it (ack VIRTIO_NET_ERR)");
            return Error(EPROTO, what + ": the device wrote ack " + std::to_string(ack) + ", neither OK nor ERR");
        }
        if (queue_.broken()) {
            return Error(EPROTO, what + ": the device's used index on the control queue is corrupt");
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            stuck_ = true;
            return Error(ETIMEDOUT, what + ": no answer from the device within " + std::to_string(timeout.count()) +
                                        " ms");
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

void ControlQueue::release() {
    std::vector<std::uint16_t> heads;
    queue_.release_all(heads);
    stuck_ = false;
}

}  // namespace dmakit::net::virtio
