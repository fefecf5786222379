// Packet buffers for the ring fuzz harnesses, with who holds each: the
// harness, an RX ring or a TX ring. A ring may only hand back a buffer it
// was given, once (FUZZ_CHECK aborts otherwise, so libFuzzer saves the input).
#pragma once

#include "fuzz_check.hpp"

#include <dmakit/drivers/net/packet_buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace fuzz {

enum class Owner : std::uint8_t { harness, rx, tx };

class FuzzBuffers {
public:
    FuzzBuffers(std::uint32_t count, std::uint32_t size, std::uint32_t headroom, std::uint64_t dma_base)
        : memory_(std::size_t{count} * size), buffers_(count), owner_(count, Owner::harness), dma_base_(dma_base) {
        for (std::uint32_t i = 0; i < count; ++i) {
            buffers_[i] = {.base = memory_.data() + std::size_t{i} * size, .dma_base = dma_base + std::uint64_t{i} * size,
                           .capacity = size, .headroom = headroom, .length = 0, .index = i, .pool = nullptr};
        }
    }

    // Up to n buffers the harness holds.
    std::vector<dmakit::net::PacketBuffer*> take(std::size_t n) {
        std::vector<dmakit::net::PacketBuffer*> out;
        for (std::size_t i = 0; i < buffers_.size() && out.size() < n; ++i) {
            if (owner_[i] == Owner::harness) out.push_back(&buffers_[i]);
        }
        return out;
    }
    void hand_over(std::span<dmakit::net::PacketBuffer* const> given, Owner to) {
        for (dmakit::net::PacketBuffer* p : given) owner_[p->index] = to;
    }
    // A buffer coming back from `from`: must be one of ours, held by `from`.
    void give_back(dmakit::net::PacketBuffer* p, Owner from) {
        FUZZ_CHECK(p >= buffers_.data() && p < buffers_.data() + buffers_.size());
        const auto i = static_cast<std::size_t>(p - buffers_.data());
        FUZZ_CHECK(owner_[i] == from);
        owner_[i] = Owner::harness;
    }
    void give_back(std::span<dmakit::net::PacketBuffer* const> returned, Owner from) {
        for (dmakit::net::PacketBuffer* p : returned) give_back(p, from);
    }
    [[nodiscard]] std::uint32_t held_by(Owner o) const {
        std::uint32_t n = 0;
        for (Owner x : owner_) n += (x == o);
        return n;
    }
    [[nodiscard]] std::size_t count() const { return buffers_.size(); }
    // A device address to buffer memory, or nullptr outside it (an IOMMU fault).
    std::byte* translate(std::uint64_t dma, std::size_t length) {
        if (dma < dma_base_ || dma - dma_base_ > memory_.size() || length > memory_.size() - (dma - dma_base_)) {
            return nullptr;
        }
        return memory_.data() + (dma - dma_base_);
    }

private:
    std::vector<std::byte> memory_;
    std::vector<dmakit::net::PacketBuffer> buffers_;
    std::vector<Owner> owner_;
    std::uint64_t dma_base_;
};

}  // namespace fuzz
