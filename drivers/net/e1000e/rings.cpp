#include <dmakit/drivers/net/e1000e/rings.hpp>

#include <dmakit/drivers/net/e1000e/descriptors.hpp>
#include <dmakit/drivers/net/e1000e/regs.hpp>

#include <dmakit/support/mmio.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <string>

namespace dmakit::net::e1000e {

namespace {

Status check_ring(const DescriptorMemory& m, std::uint32_t size, const char* what) {
    const std::string name(what);
    if (!std::has_single_bit(size) || size < min_ring_size || size > max_ring_size) {
        return Error(EINVAL, name + " ring size " + std::to_string(size) +
                                 " must be a power of two from 8 to 32768");
    }
    if (m.cpu == nullptr || m.bytes < std::size_t{size} * descriptor_size) {
        return Error(EINVAL, name + " ring needs " + std::to_string(size * descriptor_size) +
                                 " bytes of descriptor memory, got " + std::to_string(m.bytes));
    }
    // The device ignores the low 4 bits of RDBAL/TDBAL; 16-byte alignment is the floor.
    if ((reinterpret_cast<std::uintptr_t>(m.cpu) % descriptor_size) != 0 ||
        (m.dma % descriptor_size) != 0) {
        return Error(EINVAL, name + " ring memory must be 16-byte aligned (CPU and device address)");
    }
    return {};
}

void zero_descriptors(volatile std::uint64_t* words, std::uint32_t size) {
    for (std::uint32_t i = 0; i < 2 * size; ++i) words[i] = 0;
}

}  // namespace

// ---------------------------------------------------------------- RX ----

Result<RxRing> RxRing::create(DescriptorMemory memory, RegisterAccess& regs, Config config) {
    DMAKIT_TRY(check_ring(memory, config.size, "RX"));
    if (config.buffer_size == 0 || config.buffer_size > 16384) {
        return Error(EINVAL, "RX buffer size " + std::to_string(config.buffer_size) +
                                 " is outside what RCTL.BSIZE can express (256 .. 16384)");
    }
    return RxRing(memory, regs, config);
}

RxRing::RxRing(DescriptorMemory memory, RegisterAccess& regs, Config config)
    : regs_(&regs),
      words_(static_cast<volatile std::uint64_t*>(memory.cpu)),
      dma_(memory.dma),
      mask_(config.size - 1),
      buffer_size_(config.buffer_size),
      rdt_offset_(reg::rx_queue(reg::RDT0, config.queue)),
      slots_(config.size, nullptr) {
    zero_descriptors(words_, config.size);
}

std::uint32_t RxRing::wanted() const noexcept {
    std::uint32_t need = 0;
    std::uint32_t slot = (next_to_clean_ + posted_) & mask_;
    for (std::uint32_t i = 0; i < free_slots(); ++i, slot = (slot + 1) & mask_) {
        if (slots_[slot] == nullptr) ++need;
    }
    return need;
}

std::size_t RxRing::refill(std::span<PacketBuffer* const> fresh) {
    std::size_t taken = 0;
    std::uint32_t handed = 0;
    std::uint32_t slot = (next_to_clean_ + posted_) & mask_;
    const std::uint32_t room = free_slots();
    for (; handed < room; ++handed, slot = (slot + 1) & mask_) {
        PacketBuffer* buf = slots_[slot];
        if (buf == nullptr) {
            if (taken == fresh.size()) break;
            buf = fresh[taken];
            if (buf == nullptr || buf->room() < buffer_size_ || buf->data_dma() == 0) break;
            ++taken;
            slots_[slot] = buf;
        }
        // We zeroed this status when the slot came back; DD now means the
        // device wrote a descriptor it did not own.
        if ((rxd::status(load_upper(slot)) & rxd::DD) != 0) ++stats_.spurious_done;
        words_[2 * slot] = buf->data_dma();
        words_[2 * slot + 1] = 0;
    }
    if (handed != 0) {
        posted_ += handed;
        // Descriptors before tail: the write32 contract orders the MMIO write
        // after these stores; dma_wmb keeps the compiler from sinking them.
        dmakit::mmio::dma_wmb();
        regs_->write32(rdt_offset_, (next_to_clean_ + posted_) & mask_);
    }
    return taken;
}

std::size_t RxRing::harvest(std::span<PacketBuffer*> out) {
    std::size_t n = 0;
    while (n < out.size() && posted_ != 0) {
        const std::uint32_t slot = next_to_clean_;
        const std::uint64_t wb = load_upper(slot);  // one load: length, status, errors
        const std::uint8_t status = rxd::status(wb);
        if ((status & rxd::DD) == 0) break;
        dmakit::mmio::dma_rmb();  // frame bytes after DD

        words_[2 * slot + 1] = 0;  // so a later DD here is recognisably new
        next_to_clean_ = (slot + 1) & mask_;
        --posted_;

        PacketBuffer* buf = slots_[slot];
        const bool eop = (status & rxd::EOP) != 0;
        if (discarding_) {  // rest of a frame already dropped
            if (eop) discarding_ = false;
            continue;       // buffer stays in the slot: recycled
        }
        if (!eop) {
            ++stats_.fragmented;
            discarding_ = true;
            continue;
        }
        if ((rxd::errors(wb) & rxd::ERR_FRAME) != 0) {
            ++stats_.frame_errors;
            continue;
        }
        const std::uint32_t length = rxd::length(wb);
        if (length == 0 || length > buffer_size_ || length > buf->room()) {
            ++stats_.length_errors;
            continue;
        }
        buf->length = length;
        slots_[slot] = nullptr;
        out[n++] = buf;
        ++stats_.packets;
        stats_.bytes += length;
    }
    return n;
}

void RxRing::release_buffers(std::vector<PacketBuffer*>& out) {
    for (auto& s : slots_) {
        if (s != nullptr) out.push_back(s);
        s = nullptr;
    }
    zero_descriptors(words_, mask_ + 1);
    next_to_clean_ = 0;
    posted_ = 0;
    discarding_ = false;
}

// ---------------------------------------------------------------- TX ----

Result<TxRing> TxRing::create(DescriptorMemory memory, RegisterAccess& regs, Config config) {
    DMAKIT_TRY(check_ring(memory, config.size, "TX"));
    if (config.rs_interval == 0 || config.rs_interval > config.size / 2) {
        return Error(EINVAL, "TX rs_interval " + std::to_string(config.rs_interval) +
                                 " must be between 1 and half the ring size");
    }
    if (config.max_frame == 0 || config.max_frame > txd::max_length) {
        return Error(EINVAL, "TX max_frame " + std::to_string(config.max_frame) +
                                 " must be between 1 and 16288 (legacy descriptor limit)");
    }
    return TxRing(memory, regs, config);
}

TxRing::TxRing(DescriptorMemory memory, RegisterAccess& regs, Config config)
    : regs_(&regs),
      words_(static_cast<volatile std::uint64_t*>(memory.cpu)),
      dma_(memory.dma),
      mask_(config.size - 1),
      rs_interval_(config.rs_interval),
      max_frame_(config.max_frame),
      tdt_offset_(reg::tx_queue(reg::TDT0, config.queue)),
      slots_(config.size, nullptr),
      group_end_(config.size, 0) {
    zero_descriptors(words_, config.size);
}

bool TxRing::sendable(const PacketBuffer* p) const noexcept {
    return p != nullptr && p->length != 0 && p->length <= max_frame_ &&
           p->headroom <= p->capacity && p->length <= p->room() && p->data_dma() != 0;
}

std::size_t TxRing::enqueue(std::span<PacketBuffer* const> pkts) {
    const std::size_t limit = std::min<std::size_t>(pkts.size(), free_slots());
    std::size_t take = 0;
    while (take < limit && sendable(pkts[take])) ++take;
    if (take < pkts.size()) {
        if (take < limit) ++stats_.invalid_packets;  // stopped at a bad packet
        else ++stats_.ring_full;                     // stopped for lack of room
    }
    if (take == 0) return 0;

    std::uint32_t group_start = next_to_use_;
    std::uint32_t in_group = 0;
    for (std::size_t i = 0; i < take; ++i) {
        PacketBuffer* p = pkts[i];
        const std::uint32_t slot = next_to_use_;
        // We cleared every status we handed back; DD here was not ours to see.
        if ((txd::status(words_[2 * slot + 1]) & txd::STA_DD) != 0) ++stats_.spurious_done;

        ++in_group;
        const bool close = in_group == rs_interval_ || i + 1 == take;
        std::uint8_t cmd = txd::CMD_EOP | txd::CMD_IFCS;
        if (close) cmd |= txd::CMD_RS;
        words_[2 * slot] = p->data_dma();
        words_[2 * slot + 1] = txd::make_upper(static_cast<std::uint16_t>(p->length), cmd);
        slots_[slot] = p;
        if (close) {
            for (std::uint32_t s = group_start;; s = (s + 1) & mask_) {
                group_end_[s] = slot;
                if (s == slot) break;
            }
            group_start = (slot + 1) & mask_;
            in_group = 0;
        }
        next_to_use_ = (slot + 1) & mask_;
        stats_.bytes += p->length;
    }
    stats_.packets += take;
    in_flight_ += static_cast<std::uint32_t>(take);
    dmakit::mmio::dma_wmb();
    regs_->write32(tdt_offset_, next_to_use_);
    return take;
}

std::size_t TxRing::reclaim(std::span<PacketBuffer*> out) {
    std::size_t n = 0;
    while (in_flight_ != 0 && n < out.size()) {
        const std::uint32_t end = group_end_[next_to_clean_];
        const std::uint32_t remaining = ((end - next_to_clean_) & mask_) + 1;
        if ((txd::status(words_[2 * end + 1]) & txd::STA_DD) == 0) break;
        dmakit::mmio::dma_rmb();

        const std::uint32_t take =
            static_cast<std::uint32_t>(std::min<std::size_t>(remaining, out.size() - n));
        for (std::uint32_t i = 0; i < take; ++i) {
            out[n++] = slots_[next_to_clean_];
            slots_[next_to_clean_] = nullptr;
            next_to_clean_ = (next_to_clean_ + 1) & mask_;
        }
        in_flight_ -= take;
        if (take == remaining) {
            words_[2 * end + 1] = 0;  // clear DD so a stray one later stands out
        } else {
            break;  // out is full; the rest of this group next time
        }
    }
    return n;
}

void TxRing::release_buffers(std::vector<PacketBuffer*>& out) {
    for (auto& s : slots_) {
        if (s != nullptr) out.push_back(s);
        s = nullptr;
    }
    zero_descriptors(words_, mask_ + 1);
    next_to_use_ = next_to_clean_ = in_flight_ = 0;
}

}  // namespace dmakit::net::e1000e
