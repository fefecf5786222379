// Runs a built program (dmakit: path in $DMAKIT_TOOL, set by meson) and
// captures its exit code, stdout and stderr.
#pragma once

#include <string>
#include <vector>

namespace dmakit::testing {

struct ToolRun {
    int exit_code = -1;
    std::string out;
    std::string err;
};

[[nodiscard]] ToolRun run_dmakit(const std::vector<std::string>& args);

// Runs `program` (a path) with `args`.
[[nodiscard]] ToolRun run_program(const std::string& program, const std::vector<std::string>& args);

}  // namespace dmakit::testing
