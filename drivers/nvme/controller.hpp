// NVMe controller glue: INTERFACE SKETCH ONLY, nothing here is implemented.
//
// This header declares no functions on purpose, so nothing can link against a
// controller that does not exist yet. It records how controller.cpp will sit
// on the protocol core (registers, commands, identify, prp, queue, doorbells)
// and what it needs from the DMA API, so that layer can be checked against it.
//
// Bring-up (NVMe 1.4 §7.6.1 Initialization, §3.1):
//   1. Map BAR0 (vfio::Device::map_bar(0)), require size >= min_bar0_size.
//      Read CAP -> validate_cap(); VS; choose_page_size(cap, 4096) -> CC.MPS.
//   2. If CC.EN = 1: write CC.EN = 0 and wait for CSTS.RDY = 0, at most
//      CAP.TO * 500 ms (Cap::timeout_ms). Treat CSTS all-ones as device gone
//      (Csts::device_gone), CSTS.CFS as fatal (reset path below).
//   3. Admin queue: two coherent buffers (SQ depth * 64 B, CQ depth * 16 B),
//      AQA = encode_aqa(), ASQ/ACQ = their DmaAddr values; QueuePair over the
//      cpu pointers with MmioDoorbells(qid 0).
//   4. CC = ControllerConfig{enable, css 0, mps, ams 0, shn none, 6, 4};
//      wait CSTS.RDY = 1 within CAP.TO.
//   5. Identify Controller into a coherent 4 KiB buffer ->
//      parse_identify_controller(buf, cap.min_page_size()); max transfer =
//      min(MDTS bytes, driver cap). Active namespace list (CNS 02h), then
//      Identify Namespace per NSID -> parse_identify_namespace().
//   6. set_number_of_queues(n, n) -> decode_number_of_queues(dw0), use the
//      minimum of requested and granted. For each I/O queue: coherent SQ/CQ
//      rings, create_io_cq then create_io_sq (PC = 1, CAP.CQR says it must be),
//      a QueuePair per thread, each with its own PRP-list DmaPool.
//
// Shutdown (§7.6.2): delete I/O SQs then CQs, CC.SHN = normal, poll
// CSTS.SHST == complete within a bounded time, then CC.EN = 0. Only after
// that may rings, PRP lists and mapped user buffers be freed:
// QueuePair::cancel_all_and_reset() completes what is left as cancelled.
//
// Reset path (CSTS.CFS, timeouts the Abort command did not resolve): disable
// (CC.EN = 0, wait RDY = 0), cancel_all_and_reset() every queue, redo 3-6.
//
// Timeouts: each submit carries a deadline; a periodic scan_timeouts() sends
// abort_command(sqid, cid) on the admin queue, escalating to reset.
//
// What the glue needs from the DMA API (lib/dmakit/dma), as seen in its
// headers at the time of writing:
//   - dma::DmaDevice::alloc_coherent(size) -> CoherentBuffer {cpu(), dma(),
//     size()}: page-aligned, zeroed, for the admin/I/O rings and identify/log
//     buffers. Alignment to the controller page size is required (ASQ/ACQ
//     bits 11:0 are reserved; PC=1 queues start on a page).
//   - dma::DmaPool::create(name, device, page_size, page_size, page_size):
//     page-sized, page-aligned blocks that never cross a page, wrapped as a
//     PrpListAllocator: allocate() -> {block.cpu, block.dma.value()},
//     release(p) -> pool.free(p.cpu) (an EINVAL there is a driver bug: log it).
//   - DmaDevice::map_single(ptr, len, dir) / unmap_single for caller buffers
//     (one segment for build_prp), and map_sg / unmap_sg with
//     ScatterList::segments() for scattered caller memory; the segments must
//     follow the PRP rules (page-aligned joins), which build_prp checks.
//     set_segment_limits() should ask map_sg for page-aligned boundaries.
//   - DmaDevice::set_mask_and_coherent(dma_bit_mask(64)) at probe.
//   - The DmaAddr -> std::uint64_t conversion happens in the glue only
//     (DmaSegment, DataPointer and PrpListPage use plain integers so the
//     protocol core does not depend on the DMA layer).
//
// Planned public surface (names may change when written):
//   class Controller {            // move-only; owns BAR mapping, admin queue, I/O queues
//     static Result<std::unique_ptr<Controller>> open(vfio::Device&, dma::DmaDevice&, Options, const Logger*);
//     const ControllerInfo& info(); std::span<const NamespaceInfo> namespaces();
//     Result<IoQueue*> io_queue(unsigned index);   // one per thread
//     Status shutdown();                           // also run by the destructor
//   };
//   class IoQueue {               // QueuePair + PrpListAllocator + per-command PrpChain
//     Result<std::uint16_t> read/write(nsid, slba, blocks, DmaSegment(s), callback, user);
//     Result<...> flush/write_zeroes/deallocate(...);
//     std::uint32_t poll(); Status read_sync(...);  // sync helpers poll until done or timeout
//   };
#pragma once
