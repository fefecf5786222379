#include <dmakit/support/text_file.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace dmakit {
namespace {

TEST(TextFile, ReadTrimmedStripsNewline) {
    auto dir = std::filesystem::temp_directory_path() / ("dmakit-textfile-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto path = (dir / "attr").string();
    { std::ofstream(path) << "  vfio-pci\n"; }
    auto text = read_trimmed(path);
    ASSERT_TRUE(text.ok()) << text.error();
    EXPECT_EQ(*text, "vfio-pci");

    ASSERT_TRUE(write_text_file(path, "0000:00:04.0").ok());
    EXPECT_EQ(*read_text_file(path), "0000:00:04.0");
    std::filesystem::remove_all(dir);
}

TEST(TextFile, MissingFileIsAnError) {
    auto text = read_text_file("/nonexistent/dmakit/attr");
    ASSERT_FALSE(text.ok());
    EXPECT_EQ(text.error().code(), ENOENT);
}

}  // namespace
}  // namespace dmakit
