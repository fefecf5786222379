// One I/O submission/completion queue pair of a Controller, for one thread.
//
// NVM commands (NVMe 1.4 §6): Read, Write, Flush, Write Zeroes, Dataset
// Management (deallocate). Data is given as device-address segments (a
// CoherentBuffer, a LargeBuffer, or what map_sg produced) or as caller
// memory that the queue maps with map_single for the command's lifetime.
// PRP1/PRP2 and PRP lists (§4.3), or SGLs (§4.4) where the controller has
// them, are built per command as set_data_transfer() says; list pages and
// SGL segments come from this queue's own DmaPool (page-sized blocks, 4 KiB
// boundary). A request above Controller::max_transfer() (MDTS) or 65536
// blocks is split into several commands (set_split), and completes once.
//
// Async: read()/write()/... queue the command and return its CID; the
// doorbell is written by ring() or the next poll(). poll() runs the
// callbacks. Sync helpers (*_sync) submit, ring and wait. Every command has
// a deadline; poll() notices expired ones, sends Abort (§5.1) and counts them.
//
// Never trust the device: completions are checked by QueuePair (CID, SQ
// head, SQ id, phase); the data length of every command must equal the
// blocks it names times the namespace's bytes per block, so a device can
// never be told to write past a buffer.
//
// Never over-trust the caller: a namespace that is not active, a range
// past the namespace's last LBA (NSZE), a namespace with end-to-end
// protection information (the driver computes no guard tags), and a
// namespace with separate metadata without a metadata buffer are refused
// before anything reaches the device.
//
// Metadata (NVMe 1.4 §8.2): an extended-LBA namespace (FLBAS bit 4) moves
// each block's metadata inline, so its buffers hold bytes_per_block() per
// block in every call. One with separate metadata takes it in its own
// buffer through read_with_metadata()/write_with_metadata() (MPTR).
#pragma once

#include <dmakit/drivers/nvme/commands.hpp>
#include <dmakit/drivers/nvme/identify.hpp>
#include <dmakit/drivers/nvme/prp.hpp>
#include <dmakit/drivers/nvme/sgl.hpp>
#include <dmakit/drivers/nvme/queue.hpp>
#include <dmakit/drivers/nvme/shadow_doorbells.hpp>

#include <dmakit/dma/coherent.hpp>
#include <dmakit/dma/pool.hpp>
#include <dmakit/dma/scatterlist.hpp>
#include <dmakit/support/result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace dmakit::nvme {

class Controller;

struct IoCompletion {
    std::uint16_t cid = 0;
    CompletionStatus status;
    bool timed_out = false;  // passed its deadline before it completed
    bool cancelled = false;  // completed by the host (queue deleted, controller reset)
    [[nodiscard]] bool ok() const noexcept { return status.ok() && !cancelled; }
};
// noexcept in the type, like CompletionFn: a throwing function does not convert.
using IoCallback = void (*)(void* user_data, const IoCompletion& completion) noexcept;

struct IoQueueStats {
    std::uint64_t aborts_sent = 0;
    std::uint64_t abort_failures = 0;
    std::uint64_t unmap_failures = 0;
    std::uint64_t orphaned = 0;  // sync waits given up (ETIMEDOUT, or EIO on CSTS.CFS); buffers quarantined
    std::uint64_t sgl_commands = 0;    // commands sent with an SGL (PSDT 01b)
    std::uint64_t split_requests = 0;  // requests sent as several commands
    std::uint64_t split_commands = 0;  // the commands they became
};

class IoQueue {
public:
    ~IoQueue();
    IoQueue(const IoQueue&) = delete;
    IoQueue& operator=(const IoQueue&) = delete;

    [[nodiscard]] std::uint16_t qid() const noexcept { return qid_; }
    // Entries per ring. Controller::reset() may lower it to a smaller CAP.MQES
    // (and raise it again, up to the depth the queue was created with).
    [[nodiscard]] std::uint32_t depth() const noexcept { return depth_; }
    // Whether the queue exists on the controller, so commands may be queued.
    // False after the controller was stopped (a failed delete, or reset()
    // under way or failed) until reset() creates it again; submits are then
    // refused (EIO) instead of ringing a doorbell no queue listens to.
    [[nodiscard]] bool active() const noexcept { return active_; }
    // Commands that can be outstanding at once (depth - 1).
    [[nodiscard]] std::uint32_t capacity() const noexcept { return depth_ - 1; }
    [[nodiscard]] std::uint32_t outstanding() const noexcept { return qp_->outstanding(); }
    [[nodiscard]] bool can_submit() const noexcept { return qp_->can_submit() && !free_requests_.empty(); }
    [[nodiscard]] const QueueStats& stats() const noexcept { return qp_->stats(); }
    [[nodiscard]] const IoQueueStats& io_stats() const noexcept { return io_stats_; }
    // Register writes made and skipped (shadow doorbells: the EventIdx rule).
    [[nodiscard]] const DoorbellCounts& doorbell_counts() const noexcept { return doorbells_->counts(); }
    [[nodiscard]] bool shadow_doorbells() const noexcept { return doorbells_->shadowed(); }
    // Timed-out sync commands whose buffers are still quarantined (see below).
    [[nodiscard]] std::uint32_t quarantined() const noexcept { return quarantined_; }
    // MSI-X vector of this queue, when the controller runs with interrupts.
    [[nodiscard]] std::optional<std::uint32_t> vector() const noexcept { return vector_; }

    // How each command's data pointer is built (default: the controller
    // options'). DataTransfer::sgl on a controller without SGLs makes every
    // read/write fail with ENOTSUP.
    void set_data_transfer(DataTransfer how) noexcept { transfer_ = how; }
    [[nodiscard]] DataTransfer data_transfer() const noexcept { return transfer_; }
    // Whether a request above Controller::max_transfer() or 65536 blocks is
    // split into several commands (default: the controller options'). A
    // split request needs that many free entries (EAGAIN while they are
    // busy; EINVAL above capacity()); it completes once, after its last
    // command, with the first error (and the CID of its first command; a
    // later command that could not be queued completes it as cancelled).
    // Off, such a request fails with EINVAL.
    void set_split(bool split) noexcept { split_ = split; }
    [[nodiscard]] bool splits() const noexcept { return split_; }

    // ---- async: queue a command, the callback runs from poll() -------------
    // `data` are device segments; their total must be blocks * block size of
    // `nsid`. For PRPs only the first may start inside a page and only the
    // last may end inside one (§4.3); an SGL takes any layout (§4.4).
    [[nodiscard]] Result<std::uint16_t> read(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                             std::span<const DmaSegment> data, IoCallback done, void* user);
    [[nodiscard]] Result<std::uint16_t> write(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                              std::span<const DmaSegment> data, IoCallback done, void* user);
    // Caller memory, mapped with map_single now and unmapped when the command completes.
    [[nodiscard]] Result<std::uint16_t> read_host(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                  void* buffer, IoCallback done, void* user);
    [[nodiscard]] Result<std::uint16_t> write_host(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                   const void* buffer, IoCallback done, void* user);
    // A scatter list the caller mapped with DmaDevice::map_sg.
    [[nodiscard]] Result<std::uint16_t> read_sg(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                const dma::ScatterList& mapped, IoCallback done, void* user);
    [[nodiscard]] Result<std::uint16_t> write_sg(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                 const dma::ScatterList& mapped, IoCallback done, void* user);
    // Separate metadata (NamespaceInfo::separate_metadata()): `metadata` is
    // one device buffer of blocks * MS bytes, dword aligned (MPTR, §4.2).
    [[nodiscard]] Result<std::uint16_t> read_with_metadata(std::uint32_t nsid, std::uint64_t slba,
                                                           std::uint32_t blocks, std::span<const DmaSegment> data,
                                                           DmaSegment metadata, IoCallback done, void* user);
    [[nodiscard]] Result<std::uint16_t> write_with_metadata(std::uint32_t nsid, std::uint64_t slba,
                                                            std::uint32_t blocks, std::span<const DmaSegment> data,
                                                            DmaSegment metadata, IoCallback done, void* user);
    // `nsid` may be nsid_all (FFFFFFFFh) for every namespace (§6.8).
    [[nodiscard]] Result<std::uint16_t> flush(std::uint32_t nsid, IoCallback done, void* user);
    // ENOTSUP when ONCS says the controller lacks Write Zeroes / DSM.
    [[nodiscard]] Result<std::uint16_t> write_zeroes(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                     IoCallback done, void* user);
    [[nodiscard]] Result<std::uint16_t> deallocate(std::uint32_t nsid, std::span<const DsmRange> ranges,
                                                   IoCallback done, void* user);

    // Writes the SQ tail doorbell for everything queued since the last ring.
    void ring() noexcept { qp_->ring_sq(); }
    // Rings, reaps up to `max` completions, runs their callbacks; every few
    // hundred calls also checks deadlines. Returns the completions delivered.
    std::uint32_t poll(std::uint32_t max = 0xffffffffu);
    // Interrupt mode: poll, and if nothing completed block on the queue's
    // MSI-X eventfd up to `timeout`, then poll again. Polling mode: poll().
    [[nodiscard]] Result<std::uint32_t> wait(std::chrono::milliseconds timeout);
    // Checks deadlines now: each newly expired command is counted and aborted.
    std::uint32_t check_timeouts();

    // ---- sync: submit, ring, wait; the status is in the Error on failure ---
    // Timeouts: past io_timeout the command is aborted (§5.1); if it still
    // has not completed after admin_timeout more, the call returns ETIMEDOUT
    // and the command is quarantined: it stays outstanding with its buffer
    // mapped and its PRP lists allocated, because the device may still write
    // them. The caller must neither free nor reuse that buffer (caller memory
    // of *_host_sync, or the buffer behind the segments) until quarantined()
    // drops back (the late completion was polled) or Controller::reset()
    // returned (it disables the controller first, then releases them). The
    // kernel and SPDK make the same choice: memory of a command the device
    // still owns is never handed back. A controller that reports fatal
    // status (CSTS.CFS, §10.5) once the command is past its deadline ends
    // the wait at once (EIO, same quarantine): it will process nothing more,
    // so no Abort is sent and the admin timeout is not waited out.
    [[nodiscard]] Status read_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                   std::span<const DmaSegment> data);
    [[nodiscard]] Status write_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                    std::span<const DmaSegment> data);
    [[nodiscard]] Status read_host_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks, void* buffer);
    [[nodiscard]] Status write_host_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                         const void* buffer);
    [[nodiscard]] Status read_with_metadata_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                 std::span<const DmaSegment> data, DmaSegment metadata);
    [[nodiscard]] Status write_with_metadata_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                  std::span<const DmaSegment> data, DmaSegment metadata);
    [[nodiscard]] Status flush_sync(std::uint32_t nsid);
    [[nodiscard]] Status write_zeroes_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks);
    [[nodiscard]] Status deallocate_sync(std::uint32_t nsid, std::span<const DsmRange> ranges);
    // The raw completion of a sync read, for tests that expect an error status.
    [[nodiscard]] Result<IoCompletion> read_sync_completion(std::uint32_t nsid, std::uint64_t slba,
                                                            std::uint32_t blocks, std::span<const DmaSegment> data);

private:
    friend class Controller;
    struct Request;
    struct Split;
    class PoolAllocator;

    IoQueue(Controller& controller, std::uint16_t qid, std::uint32_t depth);
    [[nodiscard]] Status init();  // rings, pool, QueuePair
    // After a controller reset, nothing outstanding: depth and doorbells
    // from the controller's CAP as read again (§3.1.1 MQES, DSTRD).
    [[nodiscard]] Status fit_to_controller();
    // The sync wait gives up on `cid`: orphan and quarantine it (see *_sync).
    [[nodiscard]] Error give_up_on(std::uint16_t cid, int code, const std::string& why);

    [[nodiscard]] Result<Request*> take_request(IoCallback done, void* user);
    void give_back(Request* r) noexcept;
    [[nodiscard]] Result<std::uint16_t> submit(Request* r, const SubmissionEntry& sqe);
    // The namespace, if `blocks` from `slba` lie inside it and the driver can
    // do I/O to it (no protection information).
    [[nodiscard]] Result<const NamespaceInfo*> io_namespace(std::uint32_t nsid, std::uint64_t slba,
                                                            std::uint64_t blocks) const;
    [[nodiscard]] Result<std::uint16_t> rw(bool write, std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                           std::span<const DmaSegment> data, IoCallback done, void* user,
                                           Request* prepared, const DmaSegment* metadata = nullptr);
    [[nodiscard]] Result<std::uint16_t> rw_host(bool write, std::uint32_t nsid, std::uint64_t slba,
                                                std::uint32_t blocks, void* buffer, IoCallback done, void* user);
    [[nodiscard]] Result<std::uint16_t> rw_sg(bool write, std::uint32_t nsid, std::uint64_t slba,
                                              std::uint32_t blocks, const dma::ScatterList& mapped, IoCallback done,
                                              void* user);
    [[nodiscard]] Result<DataChain> build_chain(std::span<const DmaSegment> data);
    // A request above one command's size, as several (prepared: see rw()).
    [[nodiscard]] Result<std::uint16_t> rw_split(bool write, std::uint32_t nsid, std::uint64_t slba,
                                                 std::uint32_t blocks, std::uint32_t block_size,
                                                 std::span<const DmaSegment> data, IoCallback done, void* user,
                                                 Request* prepared, const DmaSegment* metadata,
                                                 std::uint32_t metadata_size);
    [[nodiscard]] Split* take_split();
    void piece_done(Split* s, const IoCompletion& c) noexcept;
    void end_split(Split* s) noexcept;
    static void on_complete(void* user, const Completion& c) noexcept;
    void finish(Request* r, const Completion& c) noexcept;
    template <typename Submit>
    [[nodiscard]] Result<IoCompletion> run_sync(Submit&& submit);
    void cancel_all() { qp_->cancel_all_and_reset(); }
    // After a removal: completes every outstanding command as cancelled.
    std::uint32_t cancel_removed() noexcept;

    Controller& ctrl_;
    std::uint16_t qid_;
    std::uint32_t depth_;
    std::optional<std::uint32_t> vector_;
    dma::CoherentBuffer sq_mem_;
    dma::CoherentBuffer cq_mem_;
    std::unique_ptr<dma::DmaPool> prp_pool_;
    std::unique_ptr<PoolAllocator> prp_alloc_;
    std::unique_ptr<ShadowDoorbells> doorbells_;
    std::optional<QueuePair> qp_;
    std::vector<std::unique_ptr<Request>> requests_;
    std::vector<Request*> free_requests_;
    std::vector<std::unique_ptr<Split>> splits_;  // made on first use
    std::vector<Split*> free_splits_;
    std::vector<DmaSegment> slice_;  // one piece of a split request, reused
    DataTransfer transfer_ = DataTransfer::automatic;
    bool split_ = true;
    std::uint32_t polls_ = 0;
    std::uint32_t quarantined_ = 0;
    bool active_ = false;
    std::chrono::steady_clock::duration timeout_;
    IoQueueStats io_stats_;
};

}  // namespace dmakit::nvme
