// Whole-file text reads and writes, the way sysfs and procfs are used.
#pragma once

#include <dmakit/support/result.hpp>

#include <string>
#include <string_view>

namespace dmakit {

// Reads the whole file; the error names the path.
[[nodiscard]] Result<std::string> read_text_file(const std::string& path);

// Reads the file and strips one trailing newline and surrounding blanks.
[[nodiscard]] Result<std::string> read_trimmed(const std::string& path);

// Writes `content` with a single write(2), as sysfs attributes require.
[[nodiscard]] Status write_text_file(const std::string& path, std::string_view content);

}  // namespace dmakit
