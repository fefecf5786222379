#include <dmakit/support/inline_copy.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>

namespace dmakit {
namespace {

std::array<unsigned char, 256> pattern() {
    std::array<unsigned char, 256> a{};
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<unsigned char>(i * 37 + 11);
    return a;
}

// Every size around the 16-byte chunk and the tail, at every alignment
// within a chunk: the bytes copied are exactly memcpy's, and not one byte
// before or after the destination range is touched.
TEST(CopyInline, CopiesExactlyTheBytesAsked) {
    const auto src = pattern();
    for (std::size_t size = 0; size <= 100; ++size) {
        for (std::size_t offset = 0; offset < 16; ++offset) {
            std::array<unsigned char, 256> got{}, want{};
            got.fill(0xEE);
            want.fill(0xEE);
            copy_inline(got.data() + offset, src.data() + 3, size);
            std::memcpy(want.data() + offset, src.data() + 3, size);
            ASSERT_EQ(got, want) << "size " << size << " offset " << offset;
        }
    }
}

// Front to back with dst below src, overlapping (the pool cache's shift):
// the same result as memmove, also when the ranges are closer than a chunk.
TEST(CopyInline, OverlappingWithDestinationBelowSourceIsMemmove) {
    for (std::size_t distance = 1; distance <= 40; ++distance) {
        for (std::size_t size = 0; size <= 100; ++size) {
            auto got = pattern();
            auto want = pattern();
            copy_inline(got.data() + 5, got.data() + 5 + distance, size);
            std::memmove(want.data() + 5, want.data() + 5 + distance, size);
            ASSERT_EQ(got, want) << "distance " << distance << " size " << size;
        }
    }
}

TEST(CopyInline, CopiesArraysOfIndices) {
    std::array<std::uint32_t, 300> from{}, to{};
    for (std::size_t i = 0; i < from.size(); ++i) from[i] = static_cast<std::uint32_t>(i * 2654435761u);
    copy_inline(to.data(), from.data(), sizeof from);
    EXPECT_EQ(to, from);
}

}  // namespace
}  // namespace dmakit
