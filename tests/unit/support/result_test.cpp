#include <dmakit/support/result.hpp>
#include <dmakit/support/unique_fd.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <fcntl.h>

namespace dmakit {
namespace {

Result<int> parse_positive(int v) {
    if (v <= 0) return Error(EINVAL, "value must be positive");
    return v;
}

Result<int> doubled(int v) {
    DMAKIT_ASSIGN_OR_RETURN(int x, parse_positive(v));
    return 2 * x;
}

Status check(int v) {
    DMAKIT_TRY(parse_positive(v));
    return {};
}

TEST(Result, CarriesValueOrError) {
    auto good = doubled(21);
    ASSERT_TRUE(good.ok());
    EXPECT_EQ(*good, 42);

    auto bad = doubled(-1);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code(), EINVAL);
    EXPECT_EQ(bad.error().message(), "value must be positive");
}

TEST(Result, StatusPropagates) {
    EXPECT_TRUE(check(1).ok());
    Status s = check(0);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), EINVAL);
}

TEST(Result, ContextKeepsCode) {
    Error e(ENOENT, "no such device");
    Error wrapped = e.with_context("opening 0000:00:04.0");
    EXPECT_EQ(wrapped.code(), ENOENT);
    EXPECT_EQ(wrapped.message(), "opening 0000:00:04.0: no such device");
}

TEST(UniqueFd, OpenFailureNamesPath) {
    auto fd = UniqueFd::open("/nonexistent/dmakit-test", O_RDONLY);
    ASSERT_FALSE(fd.ok());
    EXPECT_EQ(fd.error().code(), ENOENT);
    EXPECT_NE(fd.error().message().find("/nonexistent/dmakit-test"), std::string::npos);
}

TEST(UniqueFd, MoveTransfersOwnership) {
    auto fd = UniqueFd::open("/dev/null", O_RDONLY);
    ASSERT_TRUE(fd.ok());
    int raw = fd->get();
    UniqueFd moved = std::move(fd).value();
    EXPECT_EQ(moved.get(), raw);
    UniqueFd other;
    other = std::move(moved);
    EXPECT_EQ(other.get(), raw);
    EXPECT_FALSE(moved.valid());  // NOLINT(bugprone-use-after-move): checking moved-from state
    other.reset();
    EXPECT_EQ(::fcntl(raw, F_GETFD), -1);  // closed
}

}  // namespace
}  // namespace dmakit
