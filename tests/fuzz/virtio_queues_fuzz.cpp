// Fuzzes virtio-net's RX and TX queues on split virtqueues
// (drivers/net/virtio/virtqueue.*, net_queues.*) against a device that
// writes anything into the used ring at any time: any entry, any used index,
// any flags, scribbles on the descriptor table and the available ring, and
// sometimes behaves (takes an available chain, completes it with some
// length). The input is a script of driver steps and device writes. The
// harness owns a small set of packet buffers and tracks who holds each;
// after every step:
//   - a buffer a queue hands back is one it was given, and only once;
//   - a harvested frame's length is at least 1 and fits its buffer;
//   - a queue never holds more buffers than it was given, nor more chains
//     than it has descriptors; in_flight + free descriptors == size;
// and at the end release_buffers returns every buffer still held (no leak).
#include "fuzz_buffers.hpp"
#include "fuzz_check.hpp"

#include <dmakit/drivers/net/virtio/net_queues.hpp>
#include <dmakit/drivers/net/virtio/spec.hpp>
#include <dmakit/drivers/net/virtio/virtqueue.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

using namespace dmakit::net;
using namespace dmakit::net::virtio;
using fuzz::Owner;

namespace {

constexpr std::uint32_t kBufferCount = 48;
constexpr std::uint32_t kBufferSize = 2048 + 128;
constexpr std::uint64_t kRingDma = 0x10000;
constexpr std::uint64_t kBufferDma = 0x100000;

// One queue's ring memory and the device's view of it.
struct Ring {
    std::vector<std::byte> memory;
    RingLayout layout;
    std::uint16_t last_avail = 0;
    std::uint16_t used_idx = 0;

    explicit Ring(std::uint32_t size) : memory(RingLayout::for_size(size).bytes + 64), layout(RingLayout::for_size(size)) {}
    // 16-byte aligned start inside `memory`.
    std::byte* base() {
        auto p = reinterpret_cast<std::uintptr_t>(memory.data());
        return memory.data() + ((16 - p % 16) % 16);
    }
    template <typename T>
    T load(std::size_t at) {
        T v;
        std::memcpy(&v, base() + at, sizeof v);
        return v;
    }
    template <typename T>
    void store(std::size_t at, T v) {
        std::memcpy(base() + at, &v, sizeof v);
    }
};

struct NullNotifier final : QueueNotifier {
    void notify() override {}
};

// The device misbehaves (or behaves) on one ring.
void device_step(FuzzedDataProvider& in, Ring& r, fuzz::FuzzBuffers& b, bool rx) {
    const std::uint32_t size = r.layout.size;
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
        case 0: {  // take an available chain and complete it, writing into it for RX
            const std::uint16_t avail_idx = r.load<std::uint16_t>(r.layout.avail + 2);
            if (avail_idx == r.last_avail) break;
            const std::uint16_t head = r.load<std::uint16_t>(r.layout.avail + 4 + 2 * (r.last_avail % size));
            ++r.last_avail;
            std::uint32_t length = 0;
            if (rx && head < size) {
                const auto addr = r.load<std::uint64_t>(r.layout.desc + 16 * head);
                const auto cap = r.load<std::uint32_t>(r.layout.desc + 16 * head + 8);
                length = in.ConsumeIntegralInRange<std::uint32_t>(0, cap + 16);
                const std::uint32_t written = std::min(length, cap);
                if (std::byte* p = b.translate(addr, written)) std::memset(p, in.ConsumeIntegral<std::uint8_t>() & 1, std::min<std::uint32_t>(written, 12));
            }
            const std::size_t e = r.layout.used + 4 + 8 * (r.used_idx % size);
            r.store<std::uint32_t>(e, head);
            r.store<std::uint32_t>(e + 4, length);
            ++r.used_idx;
            r.store<std::uint16_t>(r.layout.used + 2, r.used_idx);
            break;
        }
        case 1: {  // any used entry
            const std::size_t e = r.layout.used + 4 + 8 * in.ConsumeIntegralInRange<std::uint32_t>(0, size - 1);
            r.store<std::uint32_t>(e, in.ConsumeIntegralInRange<std::uint32_t>(0, size + 2));
            r.store<std::uint32_t>(e + 4, in.ConsumeIntegral<std::uint32_t>());
            break;
        }
        case 2:  // any used index
            r.used_idx = in.ConsumeIntegral<std::uint16_t>();
            r.store<std::uint16_t>(r.layout.used + 2, r.used_idx);
            break;
        case 3:  // bump the used index a little (publishing whatever is there)
            r.used_idx = static_cast<std::uint16_t>(r.used_idx + in.ConsumeIntegralInRange<int>(1, 3));
            r.store<std::uint16_t>(r.layout.used + 2, r.used_idx);
            break;
        case 4:  // used flags (NO_NOTIFY or garbage)
            r.store<std::uint16_t>(r.layout.used, in.ConsumeIntegral<std::uint16_t>());
            break;
        default: {  // scribble on the descriptor table or the available ring
            const std::size_t span = r.layout.used;  // desc + avail
            const std::size_t at = in.ConsumeIntegralInRange<std::size_t>(0, span - 1);
            r.base()[at] = std::byte{in.ConsumeIntegral<std::uint8_t>()};
            break;
        }
    }
}

void check_queue(const Virtqueue& q) {
    FUZZ_CHECK(q.in_flight() + q.free_descriptors() <= q.size());
    FUZZ_CHECK(q.free_descriptors() <= q.size());
}

enum class Step : std::uint8_t { rx_refill, rx_device, rx_harvest, tx_enqueue, tx_device, tx_reclaim, release, count };

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    const std::uint32_t ring_size = 1u << in.ConsumeIntegralInRange<int>(0, 5);  // 1..32
    Ring rx_ring(ring_size), tx_ring(ring_size);
    auto rx_vq = Virtqueue::create({rx_ring.base(), kRingDma, rx_ring.layout.bytes}, ring_size, in.ConsumeBool());
    auto tx_vq = Virtqueue::create({tx_ring.base(), kRingDma + 0x8000, tx_ring.layout.bytes}, ring_size, false);
    FUZZ_CHECK(rx_vq.ok() && tx_vq.ok());
    rx_vq->set_notifier(std::make_unique<NullNotifier>());
    auto rx_made = RxQueue::create(std::move(rx_vq).value(), 1518);
    auto tx_made = TxQueue::create(std::move(tx_vq).value(), 1518);
    FUZZ_CHECK(rx_made.ok() && tx_made.ok());
    RxQueue rx = std::move(rx_made).value();
    TxQueue tx = std::move(tx_made).value();
    fuzz::FuzzBuffers b(kBufferCount, kBufferSize, 128, kBufferDma);

    while (in.remaining_bytes() > 0) {
        switch (static_cast<Step>(in.ConsumeIntegralInRange<int>(0, static_cast<int>(Step::count) - 1))) {
            case Step::rx_refill: {
                auto fresh = b.take(in.ConsumeIntegralInRange<std::size_t>(0, rx.wanted()));
                const std::size_t taken = rx.refill(fresh);
                FUZZ_CHECK(taken <= fresh.size());
                b.hand_over(std::span(fresh).first(taken), Owner::rx);
                break;
            }
            case Step::rx_device:
                device_step(in, rx_ring, b, true);
                break;
            case Step::rx_harvest: {
                std::vector<PacketBuffer*> out(in.ConsumeIntegralInRange<std::size_t>(0, ring_size + 2));
                const std::size_t n = rx.harvest(out);
                FUZZ_CHECK(n <= out.size());
                out.resize(n);
                for (PacketBuffer* p : out) FUZZ_CHECK(p->length > 0 && p->length <= p->room());
                b.give_back(out, Owner::rx);
                break;
            }
            case Step::tx_enqueue: {
                auto pkts = b.take(in.ConsumeIntegralInRange<std::size_t>(0, ring_size + 2));
                for (PacketBuffer* p : pkts) p->length = in.ConsumeIntegralInRange<std::uint32_t>(0, 1600);
                const std::size_t queued = tx.enqueue(pkts);
                FUZZ_CHECK(queued <= pkts.size());
                pkts.resize(queued);
                for (PacketBuffer* p : pkts) FUZZ_CHECK(p->length > 0 && p->length <= 1518);
                b.hand_over(pkts, Owner::tx);
                break;
            }
            case Step::tx_device:
                device_step(in, tx_ring, b, false);
                break;
            case Step::tx_reclaim: {
                std::vector<PacketBuffer*> out(in.ConsumeIntegralInRange<std::size_t>(0, ring_size + 2));
                const std::size_t n = tx.reclaim(out);
                FUZZ_CHECK(n <= out.size());
                b.give_back(std::span(out).first(n), Owner::tx);
                break;
            }
            case Step::release: {  // device reset and teardown of one queue
                std::vector<PacketBuffer*> held;
                if (in.ConsumeBool()) {
                    rx.release_buffers(held);
                    b.give_back(held, Owner::rx);
                    rx_ring.last_avail = rx_ring.used_idx = 0;
                } else {
                    tx.release_buffers(held);
                    b.give_back(held, Owner::tx);
                    tx_ring.last_avail = tx_ring.used_idx = 0;
                }
                break;
            }
            case Step::count:
                break;
        }
        check_queue(rx.virtqueue());
        check_queue(tx.virtqueue());
        FUZZ_CHECK(rx.posted() <= b.held_by(Owner::rx));
        FUZZ_CHECK(tx.in_flight() == b.held_by(Owner::tx));
        // Posted plus parked (dropped frames' buffers) never exceeds the ring.
        FUZZ_CHECK(b.held_by(Owner::rx) <= ring_size);
    }
    std::vector<PacketBuffer*> held;
    rx.release_buffers(held);
    b.give_back(held, Owner::rx);
    held.clear();
    tx.release_buffers(held);
    b.give_back(held, Owner::tx);
    FUZZ_CHECK(b.held_by(Owner::harness) == b.count());
    return 0;
}
