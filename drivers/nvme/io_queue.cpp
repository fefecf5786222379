#include <dmakit/drivers/nvme/io_queue.hpp>

#include <dmakit/drivers/nvme/controller.hpp>
#include <dmakit/drivers/nvme/format.hpp>
#include <dmakit/drivers/nvme/io_split.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace dmakit::nvme {

namespace {
// A map_single of caller memory that lives as long as its command (or split request).
struct HostMapping {
    bool mapped = false;
    dma::DmaAddr dma;
    std::size_t len = 0;
    dma::DmaDirection dir = dma::DmaDirection::bidirectional;
    // Undoes it; false when the DMA layer refused.
    [[nodiscard]] bool undo(dma::DmaDevice& device) noexcept {
        if (!mapped) return true;
        mapped = false;
        return device.unmap_single(dma, len, dir).ok();
    }
};
}  // namespace

// Per-command host state, in host memory the device cannot reach: the PRP
// lists or SGL segments to give back and the streaming mapping to undo when
// it completes.
struct IoQueue::Request {
    IoQueue* queue = nullptr;
    IoCallback done = nullptr;
    void* user = nullptr;
    std::uint16_t cid = 0;
    bool in_use = false;
    bool quarantined = false;  // a sync wait gave up on it; see IoQueue::quarantined()
    DataChain prp;
    HostMapping host;
    void* dsm_block = nullptr;
    Split* split = nullptr;  // the request this command is a piece of
};

// A request sent as several commands: completes once, after its last piece.
struct IoQueue::Split {
    IoCallback done = nullptr;
    void* user = nullptr;
    std::uint16_t first_cid = 0;
    std::uint32_t pending = 0;  // pieces in flight, plus one while still submitting
    bool failed = false;
    IoCompletion first_error;
    bool timed_out = false;
    HostMapping host;  // the caller memory all pieces share
};

// PRP list pages from the queue's own DmaPool.
class IoQueue::PoolAllocator final : public PrpListAllocator {
public:
    PoolAllocator(dma::DmaPool& pool, const Logger& logger) : pool_(pool), logger_(logger) {}
    Result<PrpListPage> allocate() override {
        DMAKIT_ASSIGN_OR_RETURN(dma::DmaPool::Block b, pool_.alloc());
        return PrpListPage{b.cpu, b.dma.value()};
    }
    void release(PrpListPage page) noexcept override {
        if (auto s = pool_.free(page.cpu); !s.ok()) {
            // Only a driver bug gets here; keep going, the pool refused safely.
            try { logger_.error("nvme: PRP list page not returned: " + dmakit::to_string(s.error())); } catch (...) {}
        }
    }

private:
    dma::DmaPool& pool_;
    const Logger& logger_;
};

IoQueue::IoQueue(Controller& controller, std::uint16_t qid, std::uint32_t depth)
    : ctrl_(controller),
      qid_(qid),
      depth_(depth),
      transfer_(controller.options().data_transfer),
      split_(controller.options().split_io),
      timeout_(controller.options().io_timeout) {}

IoQueue::~IoQueue() {
    // Returns PRP pages and undoes mappings of anything still outstanding;
    // the controller deleted (or abandoned) the queue before this.
    if (qp_) qp_->cancel_all_and_reset();
}

Status IoQueue::init() {
    const std::uint64_t page = ctrl_.page_size();
    DMAKIT_ASSIGN_OR_RETURN(sq_mem_, ctrl_.alloc_queue_memory(std::size_t{depth_} * sizeof(SubmissionEntry)));
    DMAKIT_ASSIGN_OR_RETURN(cq_mem_, ctrl_.alloc_queue_memory(std::size_t{depth_} * sizeof(CompletionEntry)));
    // PRP list pages: page sized and aligned, never crossing a page (§4.3).
    DMAKIT_ASSIGN_OR_RETURN(prp_pool_, dma::DmaPool::create("nvme-q" + std::to_string(qid_) + "-prp", ctrl_.dma(),
                                                            page, page, page));
    prp_alloc_ = std::make_unique<PoolAllocator>(*prp_pool_, ctrl_.logger());
    DMAKIT_ASSIGN_OR_RETURN(doorbells_, ctrl_.queue_doorbells(qid_));
    QueueConfig qc;
    qc.qid = qid_;
    qc.depth = depth_;
    qc.sq = sq_mem_.as<SubmissionEntry>();
    qc.cq = cq_mem_.as<CompletionEntry>();
    qc.doorbells = doorbells_.get();
    qc.logger = &ctrl_.logger();
    DMAKIT_ASSIGN_OR_RETURN(QueuePair qp, QueuePair::create(qc));
    qp_.emplace(std::move(qp));
    requests_.reserve(capacity());
    for (std::uint32_t i = 0; i < capacity(); ++i) {
        requests_.push_back(std::make_unique<Request>());
        requests_.back()->queue = this;
        free_requests_.push_back(requests_.back().get());
    }
    return {};
}

Status IoQueue::fit_to_controller() {
    // The rings hold ring_entries(); a smaller CAP.MQES uses fewer of them
    // (Create I/O CQ/SQ with a larger QSIZE fails with Invalid Queue Size,
    // §5.3/§5.4). requests_ keeps one per ring entry; QueuePair bounds how
    // many are in use.
    const std::uint32_t depth = std::min(qp_->ring_entries(), ctrl_.cap().max_queue_entries());
    DMAKIT_ASSIGN_OR_RETURN(std::unique_ptr<ShadowDoorbells> doorbells, ctrl_.queue_doorbells(qid_));
    DMAKIT_TRY(qp_->rebuild(depth, doorbells.get()));
    doorbells_ = std::move(doorbells);
    depth_ = depth;
    return {};
}

Result<IoQueue::Request*> IoQueue::take_request(IoCallback done, void* user) {
    if (!active_) {
        return Error(EIO, "I/O queue " + std::to_string(qid_) +
                              " is not on the controller (it was stopped after a failure, or reset() did not "
                              "create the queue again); call Controller::reset() and check its result, or "
                              "delete the queue");
    }
    if (!can_submit()) {
        return Error(EAGAIN, "I/O queue " + std::to_string(qid_) + " is full (" + std::to_string(outstanding()) +
                                 " outstanding); poll and retry");
    }
    Request* r = free_requests_.back();
    free_requests_.pop_back();
    r->done = done;
    r->user = user;
    r->in_use = true;
    return r;
}

void IoQueue::give_back(Request* r) noexcept {
    r->prp.reset();
    if (!r->host.undo(ctrl_.dma())) ++io_stats_.unmap_failures;
    r->split = nullptr;
    if (r->quarantined) {
        r->quarantined = false;
        --quarantined_;
    }
    if (r->dsm_block != nullptr) {
        (void)prp_pool_->free(r->dsm_block);
        r->dsm_block = nullptr;
    }
    r->done = nullptr;
    r->user = nullptr;
    r->in_use = false;
    free_requests_.push_back(r);
}

Result<std::uint16_t> IoQueue::submit(Request* r, const SubmissionEntry& sqe) {
    if (ctrl_.removed()) [[unlikely]] {
        give_back(r);
        (void)cancel_removed();
        return ctrl_.removed_error("I/O on queue " + std::to_string(qid_));
    }
    auto cid = qp_->submit(sqe, &IoQueue::on_complete, r, Clock::now() + timeout_);
    if (!cid.ok()) {
        give_back(r);
        return std::move(cid).error();
    }
    r->cid = *cid;
    return *cid;
}

void IoQueue::on_complete(void* user, const Completion& c) noexcept {
    auto* r = static_cast<Request*>(user);
    r->queue->finish(r, c);
}

void IoQueue::finish(Request* r, const Completion& c) noexcept {
    const IoCallback done = r->done;
    void* const user = r->user;
    Split* const split = r->split;
    // Unmap before the callback: the caller may reuse or free the buffer there.
    give_back(r);
    const IoCompletion completion{c.cid, c.status, c.timed_out, c.cancelled};
    if (split != nullptr) {
        piece_done(split, completion);
    } else if (done != nullptr) {
        done(user, completion);
    }
}

IoQueue::Split* IoQueue::take_split() {
    if (free_splits_.empty()) {
        splits_.push_back(std::make_unique<Split>());
        free_splits_.push_back(splits_.back().get());
    }
    Split* s = free_splits_.back();
    free_splits_.pop_back();
    *s = Split{};
    return s;
}

void IoQueue::piece_done(Split* s, const IoCompletion& c) noexcept {
    if (!c.ok() && !s->failed) {
        s->failed = true;
        s->first_error = c;
    }
    s->timed_out = s->timed_out || c.timed_out;
    if (--s->pending > 0) return;
    IoCompletion out = s->failed ? s->first_error : c;
    out.cid = s->first_cid;
    out.timed_out = s->timed_out;
    const IoCallback done = s->done;
    void* const user = s->user;
    end_split(s);
    if (done != nullptr) done(user, out);
}

void IoQueue::end_split(Split* s) noexcept {
    if (!s->host.undo(ctrl_.dma())) ++io_stats_.unmap_failures;
    free_splits_.push_back(s);
}

Result<DataChain> IoQueue::build_chain(std::span<const DmaSegment> data) {
    const SglSupport support = ctrl_.sgl_support();
    DMAKIT_ASSIGN_OR_RETURN(const bool sgl, use_sgl(transfer_, support, data));
    if (!sgl) return build_prp(data, ctrl_.page_size(), ctrl_.max_transfer(), prp_alloc_.get());
    ++io_stats_.sgl_commands;
    return build_sgl(data, ctrl_.page_size(), ctrl_.max_transfer(), support, prp_alloc_.get());
}

Result<const NamespaceInfo*> IoQueue::io_namespace(std::uint32_t nsid, std::uint64_t slba,
                                                   std::uint64_t blocks) const {
    const NamespaceInfo* ns = ctrl_.find_namespace(nsid);
    if (ns == nullptr) return ctrl_.no_such_namespace(nsid);
    if (ns->protection_enabled()) {
        return Error(ENOTSUP, "namespace " + std::to_string(nsid) + " is formatted with end-to-end protection "
                              "information (DPS " + hex(ns->dps) + ", NVMe 1.4 §8.3); dmakit does not compute "
                              "protection information: format it without (Format NVM, PI=0)");
    }
    // The device would answer LBA Out of Range (§6.9); say it before sending.
    if (blocks == 0 || slba >= ns->nsze || blocks > ns->nsze - slba) {
        return Error(ERANGE, "LBA " + std::to_string(slba) + " +" + std::to_string(blocks) + " is not inside namespace " +
                                 std::to_string(nsid) + " (LBAs 0.." + std::to_string(ns->nsze - 1) + ")");
    }
    return ns;
}

Result<std::uint16_t> IoQueue::rw(bool write, std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                  std::span<const DmaSegment> data, IoCallback done, void* user, Request* prepared,
                                  const DmaSegment* metadata) {
    auto fail = [&](Error e) -> Result<std::uint16_t> {
        if (prepared != nullptr) give_back(prepared);
        return e;
    };
    auto found = io_namespace(nsid, slba, blocks);
    if (!found.ok()) return fail(std::move(found).error());
    const NamespaceInfo* ns = *found;
    std::uint64_t total = 0;
    for (const DmaSegment& s : data) total += s.len;
    // The device moves blocks * bytes per block: the buffer must be exactly that.
    const std::uint64_t want = std::uint64_t{blocks} * ns->bytes_per_block();
    if (total != want) {
        return fail(Error(EINVAL, std::to_string(blocks) + " blocks of " + std::to_string(ns->bytes_per_block()) +
                                      " bytes" + (ns->extended_lba() ? " (data and inline metadata)" : "") +
                                      " need " + std::to_string(want) + " bytes of buffer, got " +
                                      std::to_string(total)));
    }
    // §8.2: separate metadata lives in one contiguous buffer named by MPTR.
    if (ns->separate_metadata() && metadata == nullptr) {
        return fail(Error(EINVAL, "namespace " + std::to_string(nsid) + " has " + std::to_string(ns->metadata_size()) +
                                      " bytes of separate metadata per block; use read_with_metadata / "
                                      "write_with_metadata with a metadata buffer of blocks * " +
                                      std::to_string(ns->metadata_size()) + " bytes"));
    }
    if (metadata != nullptr) {
        const std::uint64_t md_want = std::uint64_t{blocks} * ns->metadata_size();
        if (!ns->separate_metadata()) {
            return fail(Error(EINVAL, "namespace " + std::to_string(nsid) + " has no separate metadata (MS " +
                                          std::to_string(ns->metadata_size()) +
                                          (ns->extended_lba() ? ", extended LBAs: metadata is in the data buffer" : "") +
                                          "); use read/write without a metadata buffer"));
        }
        if (metadata->len != md_want || metadata->addr % 4 != 0) {
            return fail(Error(EINVAL, "metadata buffer of " + std::to_string(metadata->len) + " bytes at " +
                                          hex(metadata->addr) + ": " + std::to_string(blocks) + " blocks need " +
                                          std::to_string(md_want) + " bytes, dword aligned (MPTR, §4.2)"));
        }
    }
    if (total > ctrl_.max_transfer() || blocks > max_blocks_per_command) {
        if (!split_) {
            return fail(Error(EINVAL, "I/O of " + std::to_string(total) + " bytes (" + std::to_string(blocks) +
                                          " blocks) is above one command's maximum of " +
                                          std::to_string(ctrl_.max_transfer()) + " bytes (MDTS) or " +
                                          std::to_string(max_blocks_per_command) +
                                          " blocks and splitting is off; send smaller I/Os or call "
                                          "IoQueue::set_split(true)"));
        }
        if (ns->extended_lba()) {
            // Cut points are page multiples; blocks with inline metadata do not fall on them.
            return fail(Error(EINVAL, "I/O of " + std::to_string(blocks) + " blocks to namespace " +
                                          std::to_string(nsid) + " (extended LBAs of " +
                                          std::to_string(ns->bytes_per_block()) + " bytes) is above one command's " +
                                          std::to_string(ctrl_.max_transfer()) +
                                          " bytes and is not split; send smaller I/Os"));
        }
        return rw_split(write, nsid, slba, blocks, ns->block_size(), data, done, user, prepared, metadata,
                        ns->metadata_size());
    }
    Request* r = prepared;
    if (r == nullptr) {
        DMAKIT_ASSIGN_OR_RETURN(r, take_request(done, user));
    }
    auto chain = build_chain(data);
    if (!chain.ok()) {
        give_back(r);
        return std::move(chain).error();
    }
    r->prp = std::move(chain).value();
    auto sqe = write ? write_blocks(nsid, slba, blocks, r->prp.data()) : read_blocks(nsid, slba, blocks, r->prp.data());
    if (!sqe.ok()) {
        give_back(r);
        return std::move(sqe).error();
    }
    sqe->set_sgl(r->prp.sgl());
    if (metadata != nullptr) sqe->mptr = metadata->addr;
    return submit(r, *sqe);
}

Result<std::uint16_t> IoQueue::rw_split(bool write, std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                        std::uint32_t block_size, std::span<const DmaSegment> data, IoCallback done,
                                        void* user, Request* prepared, const DmaSegment* metadata,
                                        std::uint32_t metadata_size) {
    auto fail = [&](Error e) -> Result<std::uint16_t> {
        if (prepared != nullptr) give_back(prepared);
        return e;
    };
    auto chunk = split_chunk(ctrl_.max_transfer(), block_size, ctrl_.page_size());
    if (!chunk.ok()) return fail(std::move(chunk).error());
    const std::uint64_t total = std::uint64_t{blocks} * block_size;
    const std::uint64_t pieces = (total + *chunk - 1) / *chunk;
    if (pieces > capacity()) {
        return fail(Error(EINVAL, "I/O of " + std::to_string(total) + " bytes needs " + std::to_string(pieces) +
                                      " commands of at most " + std::to_string(*chunk) + " bytes, but queue " +
                                      std::to_string(qid_) + " holds " + std::to_string(capacity()) +
                                      "; create a deeper queue or send smaller I/Os"));
    }
    if (!active_ || free_requests_.size() + (prepared != nullptr ? 1 : 0) < pieces) {
        if (!active_) return fail(take_request(nullptr, nullptr).error());  // its message says what to do
        return fail(Error(EAGAIN, "I/O queue " + std::to_string(qid_) + " has " + std::to_string(free_requests_.size()) +
                                      " free entries, this I/O needs " + std::to_string(pieces) + "; poll and retry"));
    }
    Split* s = take_split();
    s->done = done;
    s->user = user;
    s->pending = 1;  // held while submitting: a removal found on the way cannot end it under us
    if (prepared != nullptr) std::swap(s->host, prepared->host);  // the mapping lives until the last piece
    std::optional<Error> error;
    std::uint32_t submitted = 0;
    for (std::uint64_t i = 0; i < pieces && !error; ++i) {
        const std::uint64_t offset = i * *chunk;
        const std::uint64_t len = std::min(*chunk, total - offset);
        slice_.clear();
        if (auto st = slice_segments(data, offset, len, slice_); !st.ok()) {
            error = st.error();
            break;
        }
        Request* r = nullptr;
        if (i == 0 && prepared != nullptr) {
            r = prepared;
        } else {
            auto taken = take_request(nullptr, nullptr);
            if (!taken.ok()) {
                error = std::move(taken).error();
                break;
            }
            r = *taken;
        }
        r->done = nullptr;
        r->user = nullptr;
        r->split = s;
        const auto n = static_cast<std::uint32_t>(len / block_size);
        const std::uint64_t lba = slba + offset / block_size;
        auto chain = build_chain(slice_);
        if (!chain.ok()) {
            give_back(r);
            error = std::move(chain).error();
            break;
        }
        r->prp = std::move(chain).value();
        auto sqe = write ? write_blocks(nsid, lba, n, r->prp.data()) : read_blocks(nsid, lba, n, r->prp.data());
        if (!sqe.ok()) {
            give_back(r);
            error = std::move(sqe).error();
            break;
        }
        sqe->set_sgl(r->prp.sgl());
        // Separate metadata (§8.2) is cut at the same blocks as the data.
        if (metadata != nullptr) sqe->mptr = metadata->addr + (offset / block_size) * metadata_size;
        ++s->pending;
        auto cid = submit(r, *sqe);  // gives r back on failure
        if (!cid.ok()) {
            --s->pending;
            error = std::move(cid).error();
            break;
        }
        if (i == 0) s->first_cid = *cid;
        ++submitted;
    }
    if (error && s->pending == 1) {
        // Nothing in flight (none sent, or a removal cancelled what was): the caller gets the error, no callback.
        end_split(s);
        return *std::move(error);
    }
    ++io_stats_.split_requests;
    io_stats_.split_commands += submitted;
    if (error) {
        // Some pieces are in flight: the request completes when they do, as cancelled.
        ctrl_.logger().warning("nvme queue " + std::to_string(qid_) + ": split I/O stopped after " +
                               std::to_string(submitted) + " of " + std::to_string(pieces) +
                               " commands: " + error->message());
        if (!s->failed) {
            s->failed = true;
            s->first_error = IoCompletion{s->first_cid, {}, false, true};
        }
    }
    const std::uint16_t first = s->first_cid;
    piece_done(s, IoCompletion{first, {}, false, false});  // drops the submitting hold
    return first;
}

Result<std::uint16_t> IoQueue::read_with_metadata(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                  std::span<const DmaSegment> data, DmaSegment metadata,
                                                  IoCallback done, void* user) {
    return rw(false, nsid, slba, blocks, data, done, user, nullptr, &metadata);
}
Result<std::uint16_t> IoQueue::write_with_metadata(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                   std::span<const DmaSegment> data, DmaSegment metadata,
                                                   IoCallback done, void* user) {
    return rw(true, nsid, slba, blocks, data, done, user, nullptr, &metadata);
}

Result<std::uint16_t> IoQueue::read(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                    std::span<const DmaSegment> data, IoCallback done, void* user) {
    return rw(false, nsid, slba, blocks, data, done, user, nullptr);
}
Result<std::uint16_t> IoQueue::write(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                     std::span<const DmaSegment> data, IoCallback done, void* user) {
    return rw(true, nsid, slba, blocks, data, done, user, nullptr);
}

Result<std::uint16_t> IoQueue::rw_host(bool write, std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                       void* buffer, IoCallback done, void* user) {
    DMAKIT_ASSIGN_OR_RETURN(const NamespaceInfo* ns, io_namespace(nsid, slba, blocks));
    const std::size_t len = std::size_t{blocks} * ns->bytes_per_block();
    if (buffer == nullptr) return Error(EINVAL, "read/write of caller memory needs a buffer");
    if (ns->separate_metadata()) {
        return Error(EINVAL, "namespace " + std::to_string(nsid) + " has separate metadata; caller memory "
                             "(read_host/write_host) carries none: use read_with_metadata / write_with_metadata");
    }
    DMAKIT_ASSIGN_OR_RETURN(Request * r, take_request(done, user));
    const auto dir = write ? dma::DmaDirection::to_device : dma::DmaDirection::from_device;
    auto addr = ctrl_.dma().map_single(buffer, len, dir);
    if (!addr.ok()) {
        give_back(r);
        return std::move(addr).error();
    }
    r->host = HostMapping{true, *addr, len, dir};
    const DmaSegment seg{addr->value(), len};
    return rw(write, nsid, slba, blocks, std::span<const DmaSegment>(&seg, 1), done, user, r);
}

Result<std::uint16_t> IoQueue::read_host(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks, void* buffer,
                                         IoCallback done, void* user) {
    return rw_host(false, nsid, slba, blocks, buffer, done, user);
}
Result<std::uint16_t> IoQueue::write_host(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                          const void* buffer, IoCallback done, void* user) {
    // The device only reads it (to_device mapping); map_single takes void*.
    return rw_host(true, nsid, slba, blocks, const_cast<void*>(buffer), done, user);
}

Result<std::uint16_t> IoQueue::rw_sg(bool write, std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                     const dma::ScatterList& mapped, IoCallback done, void* user) {
    if (!mapped.mapped()) return Error(EINVAL, "scatter list is not mapped; call DmaDevice::map_sg first");
    std::vector<DmaSegment> segs;
    segs.reserve(mapped.segments().size());
    for (const dma::DmaSegment& s : mapped.segments()) segs.push_back({s.addr.value(), s.length});
    return rw(write, nsid, slba, blocks, segs, done, user, nullptr);
}
Result<std::uint16_t> IoQueue::read_sg(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                       const dma::ScatterList& mapped, IoCallback done, void* user) {
    return rw_sg(false, nsid, slba, blocks, mapped, done, user);
}
Result<std::uint16_t> IoQueue::write_sg(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                        const dma::ScatterList& mapped, IoCallback done, void* user) {
    return rw_sg(true, nsid, slba, blocks, mapped, done, user);
}

Result<std::uint16_t> IoQueue::flush(std::uint32_t nsid, IoCallback done, void* user) {
    if (nsid != nsid_all && ctrl_.find_namespace(nsid) == nullptr) return ctrl_.no_such_namespace(nsid);
    DMAKIT_ASSIGN_OR_RETURN(Request * r, take_request(done, user));
    return submit(r, nvme::flush(nsid));
}

Result<std::uint16_t> IoQueue::write_zeroes(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                            IoCallback done, void* user) {
    if (!ctrl_.info().supports_write_zeroes()) {
        return Error(ENOTSUP, "controller does not support Write Zeroes (ONCS bit 3 clear)");
    }
    DMAKIT_TRY(io_namespace(nsid, slba, blocks));
    DMAKIT_ASSIGN_OR_RETURN(SubmissionEntry sqe, nvme::write_zeroes(nsid, slba, blocks));
    DMAKIT_ASSIGN_OR_RETURN(Request * r, take_request(done, user));
    return submit(r, sqe);
}

Result<std::uint16_t> IoQueue::deallocate(std::uint32_t nsid, std::span<const DsmRange> ranges, IoCallback done,
                                          void* user) {
    if (!ctrl_.info().supports_dsm()) {
        return Error(ENOTSUP, "controller does not support Dataset Management (ONCS bit 2 clear)");
    }
    if (ranges.empty() || ranges.size() > max_dsm_ranges) return Error(EINVAL, "DSM takes 1..256 ranges");
    for (const DsmRange& range : ranges) DMAKIT_TRY(io_namespace(nsid, range.slba, range.length));
    DMAKIT_ASSIGN_OR_RETURN(Request * r, take_request(done, user));
    // The range list is DMA data: one pool page holds all 256 ranges (§6.7).
    auto block = prp_pool_->zalloc();
    if (!block.ok()) {
        give_back(r);
        return std::move(block).error();
    }
    r->dsm_block = block->cpu;
    std::memcpy(block->cpu, ranges.data(), ranges.size_bytes());
    auto sqe = dsm_deallocate(nsid, static_cast<std::uint32_t>(ranges.size()), DataPointer{block->dma.value(), 0});
    if (!sqe.ok()) {
        give_back(r);
        return std::move(sqe).error();
    }
    return submit(r, *sqe);
}

std::uint32_t IoQueue::poll(std::uint32_t max) {
    if (ctrl_.removed()) [[unlikely]] return cancel_removed();
    qp_->ring_sq();
    const std::uint32_t n = qp_->poll(max);
    // A clock read every 256 polls keeps deadline checks off the fast path;
    // the removal check is a system call, so it comes 16 times rarer.
    if ((++polls_ & 255u) == 0) {
        check_timeouts();
        if ((polls_ & 4095u) == 0 && ctrl_.check_removal()) return n + cancel_removed();
    }
    return n;
}

std::uint32_t IoQueue::cancel_removed() noexcept {
    // The controller was released (see Controller::check_removal): nothing
    // will complete; each command finishes as cancelled, on this queue's thread.
    // Quarantined sync commands are released too: give_back() counts them down.
    return qp_->outstanding() == 0 ? 0 : qp_->cancel_all_and_reset();
}

Result<std::uint32_t> IoQueue::wait(std::chrono::milliseconds timeout) {
    // About to sleep: one system call more is nothing, and a removal must
    // not wait for the 4096th poll.
    if (vector_ && ctrl_.check_removal()) return cancel_removed();
    const std::uint32_t n = poll();
    if (n > 0 || !vector_ || ctrl_.interrupts() == nullptr) return n;
    // The eventfd counts interrupts that came between poll() and here.
    DMAKIT_TRY(ctrl_.interrupts()->wait(*vector_, timeout));
    return poll();
}

std::uint32_t IoQueue::check_timeouts() {
    return qp_->scan_timeouts(Clock::now(), [this](const TimedOutCommand& t) {
        std::string what = "nvme queue " + std::to_string(qid_) + ": command " + hex(t.cid) + " timed out";
        // §10.5: a controller with CSTS.CFS set (or gone: all ones) processes
        // no more commands; an Abort would only wait out the admin timeout.
        const Csts csts = ctrl_.status();
        if (csts.fatal() || csts.device_gone()) {
            ctrl_.logger().warning(what + "; no Abort sent: " + csts_text(csts));
            return;
        }
        ++io_stats_.aborts_sent;
        auto r = ctrl_.abort(qid_, t.cid);
        if (!r.ok()) {
            ++io_stats_.abort_failures;
            what += "; Abort failed: " + r.error().message();
        } else {
            what += *r ? "; aborted" : "; Abort did not find it";
        }
        ctrl_.logger().warning(what);
    });
}

template <typename Submit>
Result<IoCompletion> IoQueue::run_sync(Submit&& submit_fn) {
    struct Wait {
        bool done = false;
        IoCompletion c;
    } w;
    IoCallback cb = [](void* u, const IoCompletion& c) noexcept {
        auto* wait = static_cast<Wait*>(u);
        wait->done = true;
        wait->c = c;
    };
    DMAKIT_ASSIGN_OR_RETURN(std::uint16_t cid, submit_fn(cb, &w));
    ring();
    // Past the command's deadline the poll loop sends Abort; give that the
    // admin timeout to work before giving up on the command.
    const auto deadline = Clock::now() + timeout_;
    const auto give_up = deadline + ctrl_.options().admin_timeout;
    while (!w.done) {
        if (vector_) {
            DMAKIT_TRY(wait(std::chrono::milliseconds(10)));
        } else {
            poll();
        }
        if (w.done) break;
        const auto now = Clock::now();
        if (now <= deadline) continue;
        // Late: one CSTS read per round from here on, off the fast path.
        const Csts csts = ctrl_.status();
        if (csts.fatal() || csts.device_gone()) {
            return give_up_on(cid, EIO, "the controller stopped: " + csts_text(csts));
        }
        if (now > give_up) return give_up_on(cid, ETIMEDOUT, "it did not complete or abort");
    }
    if (w.c.cancelled && ctrl_.removed()) return ctrl_.removed_error("I/O command " + hex(cid));
    return w.c;
}

Error IoQueue::give_up_on(std::uint16_t cid, int code, const std::string& why) {
    // Orphan it (a late completion must not write into the waiter's stack
    // frame) and quarantine it: its mapping and PRP pages stay until the
    // late completion or a controller reset. A split request is known by
    // its first command's CID, which may have completed already: then every
    // piece still out is quarantined.
    Split* split = nullptr;
    for (auto& s : splits_) {
        if (s->pending > 0 && s->first_cid == cid) split = s.get();
    }
    if (split != nullptr) split->done = nullptr;
    for (auto& r : requests_) {
        const bool ours = split != nullptr ? r->split == split : r->cid == cid;
        if (r->in_use && ours && !r->quarantined) {
            r->done = nullptr;
            r->quarantined = true;
            ++quarantined_;
        }
    }
    ++io_stats_.orphaned;
    return Error(code, "I/O command " + hex(cid) + " on queue " + std::to_string(qid_) + ": " + why +
                           "; its buffer is quarantined (still mapped, the device may write it): do not free or "
                           "reuse it until IoQueue::quarantined() drops or Controller::reset() returns");
}

namespace {
Status to_status(const Result<IoCompletion>& r, const std::string& what) {
    if (!r.ok()) return r.error();
    if (r->cancelled) return Error(ECANCELED, what + ": cancelled (queue deleted or controller reset)");
    if (!r->status.ok()) return status_error(r->status, what);
    return {};
}
std::string rw_what(const char* op, std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks) {
    return std::string(op) + " nsid " + std::to_string(nsid) + " LBA " + std::to_string(slba) + " +" +
           std::to_string(blocks);
}
}  // namespace

Result<IoCompletion> IoQueue::read_sync_completion(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                                   std::span<const DmaSegment> data) {
    return run_sync([&](IoCallback cb, void* u) { return read(nsid, slba, blocks, data, cb, u); });
}
Status IoQueue::read_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                          std::span<const DmaSegment> data) {
    return to_status(read_sync_completion(nsid, slba, blocks, data), rw_what("Read", nsid, slba, blocks));
}
Status IoQueue::write_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                           std::span<const DmaSegment> data) {
    return to_status(run_sync([&](IoCallback cb, void* u) { return write(nsid, slba, blocks, data, cb, u); }),
                     rw_what("Write", nsid, slba, blocks));
}
Status IoQueue::read_host_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks, void* buffer) {
    return to_status(run_sync([&](IoCallback cb, void* u) { return read_host(nsid, slba, blocks, buffer, cb, u); }),
                     rw_what("Read", nsid, slba, blocks));
}
Status IoQueue::write_host_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks, const void* buffer) {
    return to_status(run_sync([&](IoCallback cb, void* u) { return write_host(nsid, slba, blocks, buffer, cb, u); }),
                     rw_what("Write", nsid, slba, blocks));
}
Status IoQueue::read_with_metadata_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                        std::span<const DmaSegment> data, DmaSegment metadata) {
    return to_status(
        run_sync([&](IoCallback cb, void* u) { return read_with_metadata(nsid, slba, blocks, data, metadata, cb, u); }),
        rw_what("Read", nsid, slba, blocks));
}
Status IoQueue::write_with_metadata_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks,
                                         std::span<const DmaSegment> data, DmaSegment metadata) {
    return to_status(
        run_sync([&](IoCallback cb, void* u) { return write_with_metadata(nsid, slba, blocks, data, metadata, cb, u); }),
        rw_what("Write", nsid, slba, blocks));
}
Status IoQueue::flush_sync(std::uint32_t nsid) {
    return to_status(run_sync([&](IoCallback cb, void* u) { return flush(nsid, cb, u); }),
                     "Flush nsid " + std::to_string(nsid));
}
Status IoQueue::write_zeroes_sync(std::uint32_t nsid, std::uint64_t slba, std::uint32_t blocks) {
    return to_status(run_sync([&](IoCallback cb, void* u) { return write_zeroes(nsid, slba, blocks, cb, u); }),
                     rw_what("Write Zeroes", nsid, slba, blocks));
}
Status IoQueue::deallocate_sync(std::uint32_t nsid, std::span<const DsmRange> ranges) {
    return to_status(run_sync([&](IoCallback cb, void* u) { return deallocate(nsid, ranges, cb, u); }),
                     "Dataset Management (deallocate) nsid " + std::to_string(nsid));
}

}  // namespace dmakit::nvme
