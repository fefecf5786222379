// The one text form of an Error: "message [ENAME]", the same from to_string,
// operator<< and (where the library has it) std::format.
#include <dmakit/support/error.hpp>
#include <dmakit/support/result.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <sstream>
#include <string>

namespace dmakit {
namespace {

TEST(ErrorFormat, MessageThenTheErrnoName) {
    const Error busy(EBUSY, "0000:00:04.0: group 7 is in use");
    EXPECT_EQ(to_string(busy), "0000:00:04.0: group 7 is in use [EBUSY]");
    EXPECT_EQ(to_string(Error(ENOENT, "no such device")), "no such device [ENOENT]");
    EXPECT_EQ(to_string(Error(ENOMEM, "")), " [ENOMEM]");
}

TEST(ErrorFormat, StreamGivesTheSameText) {
    const Error invalid(EINVAL, "bad index 9");
    std::ostringstream out;
    out << "x: " << invalid << '.';
    EXPECT_EQ(out.str(), "x: bad index 9 [EINVAL].");
}

TEST(ErrorFormat, CodeWithoutANameShowsTheNumber) {
    EXPECT_EQ(to_string(Error(4242, "odd")), "odd [errno 4242]");
    EXPECT_EQ(errno_name(EPROTO), "EPROTO");
    EXPECT_EQ(errno_name(-1), "errno -1");
}

TEST(ErrorFormat, SystemErrorKeepsItsHintAndGetsTheName) {
    const Error error = system_error(EACCES, "opening /dev/vfio/7", "run: dmakit bind --user alice 0000:00:04.0");
    EXPECT_EQ(to_string(error),
              "opening /dev/vfio/7: Permission denied (run: dmakit bind --user alice 0000:00:04.0) [EACCES]");
}

TEST(ErrorFormat, ResultErrorsPrintThroughTheSameFormatter) {
    Status status = Error(EIO, "controller fatal status");
    std::ostringstream out;
    out << status.error();
    EXPECT_EQ(out.str(), "controller fatal status [EIO]");
}

#if defined(__cpp_lib_format)
TEST(ErrorFormat, StdFormatGivesTheSameText) {
    const Error busy(EBUSY, "busy");
    EXPECT_EQ(std::format("{}", busy), to_string(busy));
}
#endif

}  // namespace
}  // namespace dmakit
