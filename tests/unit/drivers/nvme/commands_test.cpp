#include <dmakit/drivers/nvme/commands.hpp>

#include <gtest/gtest.h>

#include <cerrno>

namespace dmakit::nvme {
namespace {

constexpr DataPointer kData{0x1000, 0x2000};

// Positional helpers: GCC warns about designated initializers that skip members.
CompletionStatus status(std::uint8_t type, std::uint8_t code, bool dnr = false) {
    CompletionStatus s;
    s.sct = type;
    s.sc = code;
    s.do_not_retry = dnr;
    return s;
}

CreateCqParams cq_params(std::uint16_t qid, std::uint32_t entries, std::uint64_t base) {
    CreateCqParams p;
    p.qid = qid;
    p.entries = entries;
    p.base = base;
    return p;
}

CreateSqParams sq_params(std::uint16_t qid, std::uint32_t entries, std::uint64_t base, std::uint16_t cqid) {
    CreateSqParams p;
    p.qid = qid;
    p.entries = entries;
    p.base = base;
    p.cqid = cqid;
    return p;
}

GetLogPageParams log_params(std::uint8_t lid, std::uint64_t bytes, std::uint64_t offset = 0) {
    GetLogPageParams p;
    p.lid = lid;
    p.bytes = bytes;
    p.offset = offset;
    p.data = kData;
    return p;
}

TEST(Commands, SubmissionEntryCid) {
    SubmissionEntry e = flush(1);
    e.set_cid(0xbeef);
    EXPECT_EQ(e.cid(), 0xbeef);
    EXPECT_EQ(e.opcode(), nvm_opcode::flush);
    EXPECT_EQ(e.cdw0, 0xbeef0000u);
}

TEST(Commands, Identify) {
    const auto c = identify_controller(kData);
    EXPECT_EQ(c.opcode(), admin_opcode::identify);
    EXPECT_EQ(c.cdw10, 0x01u);
    EXPECT_EQ(c.prp1, 0x1000u);
    EXPECT_EQ(c.prp2, 0x2000u);
    const auto n = identify_namespace(7, kData);
    EXPECT_EQ(n.nsid, 7u);
    EXPECT_EQ(n.cdw10, 0x00u);
    const auto l = identify_active_namespaces(4, kData);
    EXPECT_EQ(l.nsid, 4u);
    EXPECT_EQ(l.cdw10, 0x02u);
    EXPECT_EQ(identify(IdentifyCns::controller, 0, kData, 0x12).cdw10, 0x00120001u);
}

TEST(Commands, NumberOfQueues) {
    const auto e = set_number_of_queues(4, 2).value();
    EXPECT_EQ(e.opcode(), admin_opcode::set_features);
    EXPECT_EQ(e.cdw10, 0x07u);
    EXPECT_EQ(e.cdw11, 0x00010003u);  // NCQR=1 NSQR=3, both 0-based
    EXPECT_FALSE(set_number_of_queues(0, 1).ok());
    EXPECT_FALSE(set_number_of_queues(1, 65536).ok());
    const auto counts = decode_number_of_queues(0x003f001fu);
    EXPECT_EQ(counts.sq, 32u);
    EXPECT_EQ(counts.cq, 64u);
    EXPECT_EQ(get_features(feature::volatile_write_cache, FeatureSelect::saved).cdw10, 0x206u);
    EXPECT_EQ(set_features(feature::volatile_write_cache, 1, true).cdw10, 0x80000006u);
}

TEST(Commands, CreateQueues) {
    auto cqp = cq_params(3, 256, 0xabc000);
    cqp.irq_enabled = true;
    cqp.vector = 5;
    const auto cq = create_io_cq(cqp).value();
    EXPECT_EQ(cq.opcode(), admin_opcode::create_io_cq);
    EXPECT_EQ(cq.prp1, 0xabc000u);
    EXPECT_EQ(cq.cdw10, 0x00ff0003u);
    EXPECT_EQ(cq.cdw11, 0x00050003u);  // IV=5, IEN, PC

    auto sqp = sq_params(3, 1024, 0xdef000, 3);
    sqp.priority = QueuePriority::high;
    const auto sq = create_io_sq(sqp).value();
    EXPECT_EQ(sq.opcode(), admin_opcode::create_io_sq);
    EXPECT_EQ(sq.cdw10, 0x03ff0003u);
    EXPECT_EQ(sq.cdw11, 0x00030003u);  // CQID=3, QPRIO=01b, PC

    EXPECT_FALSE(create_io_cq(cq_params(0, 16, 0x1000)).ok());
    EXPECT_FALSE(create_io_cq(cq_params(1, 1, 0x1000)).ok());
    EXPECT_FALSE(create_io_cq(cq_params(1, 65537, 0x1000)).ok());
    EXPECT_FALSE(create_io_cq(cq_params(1, 16, 0x1010)).ok());
    EXPECT_FALSE(create_io_sq(sq_params(1, 16, 0x1000, 0)).ok());
    EXPECT_EQ(delete_io_sq(9).cdw10, 9u);
    EXPECT_EQ(delete_io_sq(9).opcode(), admin_opcode::delete_io_sq);
    EXPECT_EQ(delete_io_cq(9).opcode(), admin_opcode::delete_io_cq);
}

TEST(Commands, GetLogPage) {
    const auto smart = get_smart_log(kData).value();
    EXPECT_EQ(smart.opcode(), admin_opcode::get_log_page);
    EXPECT_EQ(smart.nsid, nsid_all);
    EXPECT_EQ(smart.cdw10, 0x007f0002u);  // NUMDL = 512/4 - 1 = 127, LID 2
    EXPECT_EQ(smart.cdw11, 0u);
    const auto err = get_error_log(4, kData).value();
    EXPECT_EQ(err.cdw10, 0x003f0001u);  // 4 * 64 / 4 - 1 = 63
    // 1 MiB: NUMD = 262143 = 0x3ffff -> NUMDL 0xffff, NUMDU 0x3
    auto bigp = log_params(0xc0, 1 << 20, 0x100000004ull);
    bigp.nsid = 1;
    bigp.retain_async_event = true;
    const auto big = get_log_page(bigp).value();
    EXPECT_EQ(big.cdw10, 0xffff80c0u);
    EXPECT_EQ(big.cdw11, 0x3u);
    EXPECT_EQ(big.cdw12, 4u);
    EXPECT_EQ(big.cdw13, 1u);
    EXPECT_FALSE(get_log_page(log_params(2, 6)).ok());
    EXPECT_FALSE(get_log_page(log_params(2, 0)).ok());
    EXPECT_FALSE(get_log_page(log_params(2, 8, 2)).ok());
    EXPECT_FALSE(get_error_log(0, kData).ok());
    EXPECT_FALSE(get_error_log(257, kData).ok());
}

TEST(Commands, Abort) {
    const auto a = abort_command(2, 0x1234);
    EXPECT_EQ(a.opcode(), admin_opcode::abort);
    EXPECT_EQ(a.cdw10, 0x12340002u);
}

TEST(Commands, ReadWrite) {
    const auto r = read_blocks(1, 0x123456789aull, 8, kData).value();
    EXPECT_EQ(r.opcode(), nvm_opcode::read);
    EXPECT_EQ(r.nsid, 1u);
    EXPECT_EQ(r.cdw10, 0x3456789au);
    EXPECT_EQ(r.cdw11, 0x12u);
    EXPECT_EQ(r.cdw12, 7u);  // NLB 0-based
    EXPECT_EQ(r.prp1, kData.prp1);
    IoFlags flags;
    flags.force_unit_access = true;
    flags.limited_retry = true;
    const auto w = write_blocks(2, 0, 65536, kData, flags).value();
    EXPECT_EQ(w.opcode(), nvm_opcode::write);
    EXPECT_EQ(w.cdw12, 0xc000ffffu);
    EXPECT_EQ(read_blocks(1, 0, 0, kData).error().code(), EINVAL);
    EXPECT_FALSE(read_blocks(1, 0, 65537, kData).ok());
    EXPECT_FALSE(write_blocks(1, ~0ull, 2, kData).ok());
    EXPECT_TRUE(write_blocks(1, ~0ull, 1, kData).ok());
}

TEST(Commands, WriteZeroesAndDsm) {
    const auto z = write_zeroes(1, 100, 16, true).value();
    EXPECT_EQ(z.opcode(), nvm_opcode::write_zeroes);
    EXPECT_EQ(z.cdw10, 100u);
    EXPECT_EQ(z.cdw12, 15u | 1u << 25);
    EXPECT_EQ(z.prp1, 0u);
    const auto d = dsm_deallocate(1, 3, kData).value();
    EXPECT_EQ(d.opcode(), nvm_opcode::dataset_management);
    EXPECT_EQ(d.cdw10, 2u);
    EXPECT_EQ(d.cdw11, 4u);
    EXPECT_FALSE(dsm_deallocate(1, 0, kData).ok());
    EXPECT_FALSE(dsm_deallocate(1, 257, kData).ok());
    EXPECT_TRUE(dsm_deallocate(1, 256, kData).ok());
}

TEST(Commands, StatusDecoding) {
    // DNR | M | SCT=2 | SC=0x81 | phase 1
    const std::uint16_t word = 0x8000 | 0x4000 | 2u << 9 | 0x81u << 1 | 1u;
    const auto s = CompletionStatus::decode(word);
    EXPECT_EQ(s.sc, 0x81);
    EXPECT_EQ(s.sct, 2);
    EXPECT_TRUE(s.more);
    EXPECT_TRUE(s.do_not_retry);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(status_name(s), "Unrecovered Read Error");
    EXPECT_EQ(s.encode() | 1u, word);
    EXPECT_TRUE(CompletionStatus::decode(0x0001).ok());
    CompletionEntry e;
    e.status = 1;
    EXPECT_TRUE(phase_of(e));
}

TEST(Commands, StatusNames) {
    EXPECT_EQ(status_name(0, 0x00), "Successful Completion");
    EXPECT_EQ(status_name(0, 0x02), "Invalid Field in Command");
    EXPECT_EQ(status_name(0, 0x80), "LBA Out of Range");
    EXPECT_EQ(status_name(0, 0x0b), "Invalid Namespace or Format");
    EXPECT_EQ(status_name(1, 0x01), "Invalid Queue Identifier");
    EXPECT_EQ(status_name(1, 0x02), "Invalid Queue Size");
    EXPECT_EQ(status_name(1, 0x09), "Invalid Log Page");
    EXPECT_EQ(status_name(1, 0x80), "Conflicting Attributes");
    EXPECT_EQ(status_name(2, 0x80), "Write Fault");
    EXPECT_EQ(status_name(2, 0x87), "Deallocated or Unwritten Logical Block");
    EXPECT_EQ(status_name(3, 0x70), "Command Aborted By Host");
    EXPECT_EQ(status_name(7, 0x12), "Vendor Specific");
    EXPECT_EQ(status_name(0, 0x7f), "Unknown status");
    EXPECT_EQ(status_name(5, 0x00), "Unknown status");
}

TEST(Commands, StatusError) {
    const auto e = status_error(status(sct::generic, sc::lba_out_of_range, true), "read 1000");
    EXPECT_EQ(e.code(), ERANGE);
    EXPECT_EQ(e.message(), "read 1000: LBA Out of Range (sct 0x0 sc 0x80, do not retry)");
    EXPECT_EQ(status_error(status(sct::generic, sc::invalid_field), "x").code(), EINVAL);
    EXPECT_EQ(status_error(status(sct::generic, sc::internal_error), "x").code(), EIO);
    CompletionStatus more = status(sct::media_error, sc::unrecovered_read_error, true);
    more.more = true;
    EXPECT_EQ(status_error(more, "read 7").message(),
              "read 7: Unrecovered Read Error (sct 0x2 sc 0x81, do not retry); more in the Error Information log "
              "(Get Log Page 01h, Controller::error_log())");
}

}  // namespace
}  // namespace dmakit::nvme
