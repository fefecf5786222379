// Fuzzes the 82574 RX and TX rings (drivers/net/e1000e/rings.*) against a
// device that writes any descriptor words into any slot at any time. The
// input is a script of driver steps (refill, harvest, enqueue, reclaim,
// release) and device writes. The harness owns a small set of packet
// buffers and tracks who holds each; after every step:
//   - a buffer the ring hands back is one it was given, and only once;
//   - in_flight() equals the TX buffers the harness gave; posted() is at most
//     the RX buffers given (a dropped frame's buffer stays, unposted, for reuse);
//   - a harvested frame's length fits its buffer;
//   - tail register writes stay inside the ring;
// and at the end release_buffers returns every buffer still held (no leak).
#include "fuzz_buffers.hpp"
#include "fuzz_check.hpp"

#include <dmakit/drivers/net/e1000e/descriptors.hpp>
#include <dmakit/drivers/net/e1000e/rings.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

using namespace dmakit::net;
using namespace dmakit::net::e1000e;
using fuzz::Owner;

namespace {

constexpr std::uint32_t kBufferCount = 48;
constexpr std::uint32_t kBufferSize = 2048;

// BAR0 as far as the rings use it: only tail writes, checked against the ring.
struct TailRegisters final : RegisterAccess {
    std::uint32_t ring_size = 0;
    std::uint32_t read32(std::uint32_t /*offset*/) override { return 0; }
    void write32(std::uint32_t /*offset*/, std::uint32_t value) override { FUZZ_CHECK(value < ring_size); }
};

// The device writes one descriptor of a ring: the write-back word, and
// sometimes the address word too (a device may scribble on either).
void device_writes(FuzzedDataProvider& in, std::vector<std::uint64_t>& words) {
    const auto slot = in.ConsumeIntegralInRange<std::size_t>(0, words.size() / 2 - 1);
    if (in.ConsumeBool()) words[2 * slot] = in.ConsumeIntegral<std::uint64_t>();
    words[2 * slot + 1] = in.ConsumeIntegral<std::uint64_t>();
}

enum class Step : std::uint8_t { rx_refill, rx_device, rx_harvest, tx_enqueue, tx_device, tx_reclaim, release, count };

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    const std::uint32_t ring_size = min_ring_size << in.ConsumeIntegralInRange<int>(0, 3);  // 8..64
    const auto rs_interval = in.ConsumeIntegralInRange<std::uint32_t>(1, ring_size / 2);  // TxRing allows up to half

    // Descriptor memory: exact size, 16-byte aligned (std::uint64_t words from new are).
    std::vector<std::uint64_t> rx_words(2 * ring_size);
    std::vector<std::uint64_t> tx_words(2 * ring_size);
    TailRegisters regs;
    regs.ring_size = ring_size;
    auto rx_made = RxRing::create({rx_words.data(), 0x10000, ring_size * descriptor_size}, regs,
                                  {.size = ring_size, .buffer_size = kBufferSize, .queue = 0});
    auto tx_made = TxRing::create({tx_words.data(), 0x20000, ring_size * descriptor_size}, regs,
                                  {.size = ring_size, .queue = 0, .rs_interval = rs_interval, .max_frame = 1518});
    FUZZ_CHECK(rx_made.ok() && tx_made.ok());
    RxRing rx = std::move(rx_made).value();
    TxRing tx = std::move(tx_made).value();
    fuzz::FuzzBuffers b(kBufferCount, kBufferSize, 0, 0x100000);

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
                device_writes(in, rx_words);
                break;
            case Step::rx_harvest: {
                std::vector<PacketBuffer*> out(in.ConsumeIntegralInRange<std::size_t>(0, ring_size));
                const std::size_t n = rx.harvest(out);
                FUZZ_CHECK(n <= out.size());
                out.resize(n);
                for (PacketBuffer* p : out) FUZZ_CHECK(p->length > 0 && p->length <= p->room());
                b.give_back(out, Owner::rx);
                break;
            }
            case Step::tx_enqueue: {
                auto pkts = b.take(in.ConsumeIntegralInRange<std::size_t>(0, ring_size));
                for (PacketBuffer* p : pkts) p->length = in.ConsumeIntegralInRange<std::uint32_t>(0, 1600);
                const std::size_t queued = tx.enqueue(pkts);
                FUZZ_CHECK(queued <= pkts.size());
                pkts.resize(queued);
                for (PacketBuffer* p : pkts) FUZZ_CHECK(p->length > 0 && p->length <= 1518);
                b.hand_over(pkts, Owner::tx);
                break;
            }
            case Step::tx_device:
                device_writes(in, tx_words);
                break;
            case Step::tx_reclaim: {
                std::vector<PacketBuffer*> out(in.ConsumeIntegralInRange<std::size_t>(0, ring_size));
                const std::size_t n = tx.reclaim(out);
                FUZZ_CHECK(n <= out.size());
                b.give_back(std::span(out).first(n), Owner::tx);
                break;
            }
            case Step::release: {  // teardown/restart of one ring
                std::vector<PacketBuffer*> held;
                if (in.ConsumeBool()) {
                    rx.release_buffers(held);
                    b.give_back(held, Owner::rx);
                    std::memset(rx_words.data(), 0, rx_words.size() * sizeof(std::uint64_t));
                } else {
                    tx.release_buffers(held);
                    b.give_back(held, Owner::tx);
                    std::memset(tx_words.data(), 0, tx_words.size() * sizeof(std::uint64_t));
                }
                break;
            }
            case Step::count:
                break;
        }
        FUZZ_CHECK(rx.posted() <= b.held_by(Owner::rx));
        // size - 1 posted, plus a dropped frame's buffer parked in the one
        // slot the device never owns (it is posted again on the next refill).
        FUZZ_CHECK(b.held_by(Owner::rx) <= ring_size);
        FUZZ_CHECK(tx.in_flight() == b.held_by(Owner::tx));
        FUZZ_CHECK(rx.posted() < ring_size && tx.in_flight() < ring_size);  // one slot always empty
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
