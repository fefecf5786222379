// virtio-net's control virtqueue (virtio 1.2 §5.1.6.5): one command at a
// time, each a chain of [class, command] (device-readable), the command's
// data (device-readable) and a one-byte ack the device writes (OK = 0).
// Used at open only (queue pairs, promiscuous mode), so it polls.
//
// Never trust the device: a command the device completes with a length that
// does not cover the ack, or more than the ack, an ack that is neither OK
// nor ERR, or no completion before the timeout, is an error naming the
// command; after a timeout the queue refuses further commands (the device
// may still hold the chain) until the port is reopened.
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/virtio/virtqueue.hpp>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>

namespace dmakit::net::virtio {

// The command block: coherent memory the chain points into.
struct CommandMemory {
    std::byte* cpu = nullptr;
    DeviceAddress dma = 0;
    std::size_t bytes = 0;
};

class ControlQueue {
public:
    static constexpr std::size_t command_bytes = 256;  // header, data (up to 64 bytes), ack
    static constexpr std::size_t max_data = 64;

    // EINVAL when `memory` is smaller than command_bytes.
    [[nodiscard]] static Result<ControlQueue> create(Virtqueue queue, CommandMemory memory, std::string device);

    ControlQueue(ControlQueue&&) noexcept = default;
    ControlQueue& operator=(ControlQueue&&) noexcept = default;

    [[nodiscard]] Virtqueue& virtqueue() noexcept { return queue_; }

    // Sends one command and waits up to `timeout` for the device's ack.
    [[nodiscard]] Status send(std::uint8_t command_class, std::uint8_t command, std::span<const std::uint8_t> data,
                              std::chrono::milliseconds timeout);

    // After the device was reset: forgets any chain the device held.
    void release();

private:
    ControlQueue(Virtqueue queue, CommandMemory memory, std::string device)
        : queue_(std::move(queue)), memory_(memory), device_(std::move(device)) {}

    Virtqueue queue_;
    CommandMemory memory_;
    std::string device_;
    bool stuck_ = false;  // a command timed out; the device may still own the block
};

}  // namespace dmakit::net::virtio
