// Doorbells of one queue pair in a mapped BAR0 (NVMe 1.4 §3.1.24 SQyTDBL,
// §3.1.25 CQyHDBL), the MMIO implementation of the queue's Doorbells.
#pragma once

#include <dmakit/drivers/nvme/queue.hpp>
#include <dmakit/drivers/nvme/registers.hpp>

#include <dmakit/support/mmio.hpp>

#include <cstdint>

namespace dmakit::nvme {

class MmioDoorbells final : public Doorbells {
public:
    // `bar0` is the mapped register BAR; `offsets` were checked to lie in a
    // mapped part of it (mapped_doorbells).
    MmioDoorbells(volatile void* bar0, DoorbellOffsets offsets) : bar0_(bar0), offsets_(offsets) {}

    // write32 keeps earlier stores to the rings before the doorbell (writel
    // semantics, see mmio.hpp); SQEs are plain stores to coherent memory.
    void ring_sq_tail(std::uint16_t tail) noexcept override { mmio::write32(bar0_, offsets_.sq_tail, tail); }
    void ring_cq_head(std::uint16_t head) noexcept override { mmio::write32(bar0_, offsets_.cq_head, head); }

private:
    volatile void* bar0_;
    DoorbellOffsets offsets_;
};

}  // namespace dmakit::nvme
