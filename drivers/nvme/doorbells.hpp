// Doorbells of one queue pair in a mapped BAR0 (NVMe 1.4 §3.1.24 SQyTDBL,
// §3.1.25 CQyHDBL), the MMIO implementation of the queue's Doorbells.
#pragma once

#include "queue.hpp"
#include "registers.hpp"

#include <dmakit/support/mmio.hpp>
#include <dmakit/support/result.hpp>

#include <cstdint>

namespace dmakit::nvme {

class MmioDoorbells final : public Doorbells {
public:
    // `bar0` is the mapped register BAR of `bar_size` bytes; the doorbell
    // offsets come from CAP.DSTRD and are checked to lie inside the mapping.
    [[nodiscard]] static Result<MmioDoorbells> create(volatile void* bar0, std::uint64_t bar_size, std::uint16_t qid,
                                                      std::uint32_t dstrd) {
        DMAKIT_TRY(check_doorbells_in_bar(qid, dstrd, bar_size));
        return MmioDoorbells(bar0, sq_tail_doorbell(qid, dstrd), cq_head_doorbell(qid, dstrd));
    }

    // write32 keeps earlier stores to the rings before the doorbell (writel
    // semantics, see mmio.hpp); SQEs are plain stores to coherent memory.
    void ring_sq_tail(std::uint16_t tail) noexcept override { mmio::write32(bar0_, sq_offset_, tail); }
    void ring_cq_head(std::uint16_t head) noexcept override { mmio::write32(bar0_, cq_offset_, head); }

private:
    MmioDoorbells(volatile void* bar0, std::uint64_t sq_offset, std::uint64_t cq_offset)
        : bar0_(bar0), sq_offset_(sq_offset), cq_offset_(cq_offset) {}

    volatile void* bar0_;
    std::uint64_t sq_offset_;
    std::uint64_t cq_offset_;
};

}  // namespace dmakit::nvme
