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

struct ProgramRun {
    std::string program;  // a path
    std::vector<std::string> args;
};

// Runs each of `runs` (run_program), a few at a time, and returns their
// results in the same order. For tests that start hundreds of programs: under
// ASan+UBSan each start costs about 0.2 s of CPU, and one at a time left a
// core idle for minutes.
[[nodiscard]] std::vector<ToolRun> run_programs(const std::vector<ProgramRun>& runs);

}  // namespace dmakit::testing
