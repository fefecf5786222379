#include "run_tool.hpp"

#include <concurrency.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace dmakit::testing {
namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
}

}  // namespace

ToolRun run_dmakit(const std::vector<std::string>& args) {
    const char* tool = std::getenv("DMAKIT_TOOL");
    if (tool == nullptr) {
        ADD_FAILURE() << "DMAKIT_TOOL is not set; run through: meson test --suite unit";
        return {};
    }
    return run_program(tool, args);
}

ToolRun run_program(const std::string& program, const std::vector<std::string>& args) {
    ToolRun run;
    const char* tool = program.c_str();
    // Output goes to files, not pipes, so a chatty child can never block.
    std::string dir = (std::filesystem::temp_directory_path() / "dmakit-tooltest-XXXXXX").string();
    if (::mkdtemp(dir.data()) == nullptr) {
        ADD_FAILURE() << "mkdtemp failed";
        return run;
    }
    const std::string out_path = dir + "/out";
    const std::string err_path = dir + "/err";

    std::vector<std::string> argv_storage = {tool};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : argv_storage) argv.push_back(arg.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, tool, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        ADD_FAILURE() << "cannot run " << tool;
    } else {
        int status = 0;
        ::waitpid(pid, &status, 0);
        run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        run.out = slurp(out_path);
        run.err = slurp(err_path);
    }
    std::filesystem::remove_all(dir);
    return run;
}

std::vector<ToolRun> run_programs(const std::vector<ProgramRun>& runs) {
    std::vector<ToolRun> results(runs.size());
    std::atomic<std::size_t> next{0};
    // Each worker mostly waits for its child, so one per core keeps them busy;
    // each takes the next run not yet taken (no seed: nothing here is random).
    const unsigned workers = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
    run_concurrently(0, workers, [&](unsigned, std::mt19937_64&) {
        for (std::size_t i = next++; i < runs.size(); i = next++) results[i] = run_program(runs[i].program, runs[i].args);
    });
    return results;
}

}  // namespace dmakit::testing
