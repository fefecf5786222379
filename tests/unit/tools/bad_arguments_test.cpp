// Every program (dmakit and each example) with each bad argument: NaN,
// infinities, negatives, overflow, out-of-range, empty, unknown options and
// a device named twice. Each must exit 2 with one line on stderr and nothing
// on stdout, and must fail while parsing, before touching any device (so
// this runs on the host; no device is named that exists there).
#include "run_tool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace dmakit::testing {
namespace {

using Args = std::vector<std::string>;

struct NumericOption {
    std::string name;
    std::vector<std::string> out_of_range;  // valid numbers outside the option's range
};

struct Program {
    std::string name;                 // as in example_programs; "dmakit" for the tool
    Args prefix;                      // arguments that reach the option (devices, subcommand)
    std::vector<NumericOption> numeric;
    std::vector<Args> duplicates;     // command lines naming one device twice
};

// Malformed for every numeric option, whatever its range or type.
const std::vector<std::string> bad_numbers = {
    "nan", "NaN", "-nan", "inf", "-inf", "infinity", "-1", "-0.5", "1e400", "-1e400",
    "18446744073709551616", "99999999999999999999999999", "", " 5", "5 ", "0x10", "1,5", "5abc", "+",
};

// Addresses no machine has (domain 0xfe), so a regression that gets past
// parsing still touches nothing real.
const std::string a = "00fe:ff:1f.6";
const std::string b = "00fe:ff:1f.7";

std::vector<Program> programs() {
    return {
        {"dmakit", {"--sysfs-root", "/nonexistent/sys", "--proc-root", "/nonexistent/proc", "hugepages"},
         {{"--reserve", {}}, {"--node", {"1024", "2147483648"}}},
         {{"bind", a, a}, {"bind", "00FE:FF:1F.6", a}, {"unbind", a, a}}},
        // --user takes a uid or a name: every bad number is an unknown user.
        {"dmakit", {"--sysfs-root", "/nonexistent/sys", "--proc-root", "/nonexistent/proc", "bind", a},
         {{"--user", {"4294967295", "4294967296"}}},
         {{"bind", "--user", "0", a, a}}},
        {"dmakit", {"--sysfs-root", "/nonexistent/sys", "--proc-root", "/nonexistent/proc", "doctor"}, {},
         {{"doctor", a, a}, {"doctor", "--json", a, "00FE:FF:1F.6"}}},
        {"pktgen", {"-d", a},
         {{"-t", {"0", "0.09", "1000001"}}, {"--time", {}}, {"-s", {"59", "1515"}}, {"-b", {"0", "513"}},
          {"-r", {"0", "0.5", "1000000001"}}, {"--queues", {"0", "65", "1.5"}}},
         {{"-d", a, "-d", a}, {"-d", a, "--device", "00FE:FF:1F.6"}}},
        {"fwd", {"-a", a, "-b", b},
         {{"-t", {"0", "1e7"}}, {"--burst", {"0", "513"}}, {"--tx-first", {"65"}}, {"--queues", {"0", "65"}}},
         {{"-a", a, "-b", a}, {"-a", a, "-a", b, "-b", b}}},
        {"pktcheck", {"-a", a, "-b", b},
         {{"-n", {"0", "1099511627777"}}, {"-s", {"59", "1515"}}, {"--burst", {"0", "513"}},
          {"-t", {"0", "0.05", "1000001"}}},
         {{"-a", a, "-b", a}, {"-a", a, "-b", b, "-b", b}}},
        {"disk2net", {"-d", "00fe:ff:1f.5", "-a", a, "-b", b},
         {{"-n", {"0", "10000001"}}, {"--burst", {"0", "257"}}, {"-t", {"0", "0.05", "3601"}}},
         {{"-d", "00fe:ff:1f.5", "-a", a, "-b", a}, {"-d", a, "-a", a, "-b", b},
          {"-d", "00fe:ff:1f.5", "-a", a, "-a", b, "-b", b}}},
        {"nvme_identify", {"-d", a}, {}, {{"-d", a, "-d", a}}},
        {"hello_device", {a}, {}, {{a, a}, {"--registers-only", a, "00FE:FF:1F.6"}}},
        {"e1000e_kernel_style", {"-a", a, "-b", b}, {{"-n", {"0", "10000001"}}},
         {{"-a", a, "-b", a}, {"-a", a, "-b", "00FE:FF:1F.6"}, {"-a", a, "-a", b, "-b", b}}},
        {"nvme_perf", {"-d", a},
         {{"-q", {"0", "4097"}}, {"-o", {"511", "65m"}}, {"-M", {"101"}}, {"-t", {"0", "86401"}},
          {"-c", {"0", "65"}}, {"-n", {"0", "4294967295"}}},
         {{"-d", a, "-d", b}}},
        {"nvme_verify", {"-d", a},
         {{"-n", {"0"}}, {"--lbas", {"0"}}, {"--start", {}}, {"--seed", {}}, {"-c", {"0", "65"}}},
         {{"-d", a, "-d", a}}},
    };
}

std::string path_of(const std::string& program) {
    if (program == "dmakit") {
        const char* tool = std::getenv("DMAKIT_TOOL");
        return tool ? tool : "";
    }
    std::string var = "DMAKIT_EXAMPLE_" + program;
    std::transform(var.begin(), var.end(), var.begin(), [](unsigned char c) { return std::toupper(c); });
    const char* path = std::getenv(var.c_str());
    return path ? path : "";
}

// Exit 2, exactly one line on stderr, nothing on stdout.
::testing::AssertionResult IsUsageError(const ToolRun& run) {
    if (run.exit_code != 2) {
        return ::testing::AssertionFailure() << "exit " << run.exit_code << ", stderr: " << run.err;
    }
    if (run.err.empty() || run.err.back() != '\n' || std::count(run.err.begin(), run.err.end(), '\n') != 1) {
        return ::testing::AssertionFailure() << "stderr is not one line: '" << run.err << "'";
    }
    if (!run.out.empty()) return ::testing::AssertionFailure() << "stdout not empty: " << run.out;
    return ::testing::AssertionSuccess();
}

std::string shown(const Args& args) {
    std::string text;
    for (const auto& arg : args) text += " '" + arg + "'";
    return text;
}

TEST(BadArguments, EveryExampleIsInTheTable) {
    // A new example program must get a row above: list what meson passed.
    std::set<std::string> listed;
    for (const auto& p : programs()) listed.insert(p.name);
    int seen = 0;
    for (char** env = environ; *env != nullptr; ++env) {
        const std::string entry = *env;
        if (!entry.starts_with("DMAKIT_EXAMPLE_")) continue;
        std::string name = entry.substr(std::strlen("DMAKIT_EXAMPLE_"), entry.find('=') - std::strlen("DMAKIT_EXAMPLE_"));
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        EXPECT_TRUE(listed.count(name)) << name << " has no row in the bad-argument table";
        ++seen;
    }
    EXPECT_GE(seen, 6) << "meson passed fewer example programs than expected";
}

TEST(BadArguments, EveryProgramRefusesEveryBadArgument) {
    std::vector<ProgramRun> runs;
    std::vector<std::string> names;  // runs[i] is a line of program names[i]
    for (const Program& p : programs()) {
        const std::string path = path_of(p.name);
        ASSERT_FALSE(path.empty()) << p.name << ": path not set; run through: meson test --suite unit";
        std::vector<Args> lines;
        for (const NumericOption& option : p.numeric) {
            std::vector<std::string> values = bad_numbers;
            values.insert(values.end(), option.out_of_range.begin(), option.out_of_range.end());
            for (const auto& value : values) {
                Args args = p.prefix;
                args.push_back(option.name);
                args.push_back(value);
                lines.push_back(args);
            }
            if (option.name.starts_with("--")) {  // --name=VALUE spelling too
                Args args = p.prefix;
                args.push_back(option.name + "=nan");
                lines.push_back(args);
            }
            Args missing = p.prefix;  // option without its value
            missing.push_back(option.name);
            lines.push_back(missing);
        }
        for (const Args& tail : {Args{"--no-such-option"}, Args{""}, Args{"-"}}) {
            Args args = p.prefix;
            args.insert(args.end(), tail.begin(), tail.end());
            lines.push_back(args);
        }
        for (const Args& dup : p.duplicates) lines.push_back(dup);
        for (Args& args : lines) {
            runs.push_back({path, std::move(args)});
            names.push_back(p.name);
        }
        std::printf("%s: %zu bad command lines\n", p.name.c_str(), lines.size());
    }
    const std::vector<ToolRun> results = run_programs(runs);
    ASSERT_EQ(results.size(), runs.size());
    for (std::size_t i = 0; i < runs.size(); ++i) {
        EXPECT_TRUE(IsUsageError(results[i])) << names[i] << shown(runs[i].args);
    }
    std::printf("bad-argument cases run: %zu\n", runs.size());
}

TEST(BadArguments, DuplicateDeviceMessagesNameTheDevice) {
    for (const Program& p : programs()) {
        for (const Args& dup : p.duplicates) {
            auto run = run_program(path_of(p.name), dup);
            EXPECT_NE(run.err.find("00fe:ff:1f."), std::string::npos) << p.name << shown(dup) << ": " << run.err;
            EXPECT_EQ(run.err.find("close the other user"), std::string::npos) << run.err;
        }
    }
}

TEST(BadArguments, NvmePerfPlotNeedsTheSweepAndAWritablePath) {
    const std::vector<std::pair<Args, std::string>> cases = {
        {{"-d", a, "--plot", "/tmp/sweep.svg"}, "--plot draws the DMA sweep: give --sweep too"},
        {{"-d", a, "--sweep", "--plot", "/nonexistent/dir/sweep.svg"}, "folder /nonexistent/dir does not exist"},
        {{"-d", a, "--sweep", "--plot", "/tmp"}, "is a folder"},
        {{"-d", a, "--sweep", "--plot", "/tmp/"}, "wants a file name"},
        {{"-d", a, "--sweep", "--plot", "/proc/sweep.svg"}, "cannot write there"},
        {{"-d", a, "--sweep", "--plot"}, "needs a value"},
    };
    for (const auto& [args, says] : cases) {
        auto run = run_program(path_of("nvme_perf"), args);
        EXPECT_TRUE(IsUsageError(run)) << shown(args);
        EXPECT_NE(run.err.find(says), std::string::npos) << shown(args) << ": " << run.err;
    }
}

TEST(BadArguments, DstWantsAMacAddress) {
    for (const auto& [program, prefix] : {std::pair<std::string, Args>{"pktgen", {"-d", a}}, {"fwd", {"-a", a, "-b", b}}}) {
        for (const char* value : {"", "nan", "02:00:00:00:00", "02:00:00:00:00:0g", "02-00-00-00-00-01", "ff"}) {
            Args args = prefix;
            args.insert(args.end(), {"--dst", value});
            auto run = run_program(path_of(program), args);
            EXPECT_TRUE(IsUsageError(run)) << program << shown(args);
            EXPECT_NE(run.err.find("--dst: '" + std::string(value) + "' is not a MAC address"), std::string::npos)
                << run.err;
        }
        Args missing = prefix;
        missing.push_back("--dst");
        auto run = run_program(path_of(program), missing);
        EXPECT_TRUE(IsUsageError(run)) << program << ": " << run.err;
    }
}

TEST(BadArguments, NanMessageSaysWhatIsWanted) {
    auto run = run_program(path_of("pktgen"), {"-d", a, "-t", "nan"});
    EXPECT_EQ(run.err, "pktgen: -t wants a number from 0.1 to 1e+06, got 'nan' (see pktgen --help)\n");
    run = run_program(path_of("nvme_perf"), {"-q", "-1"});
    EXPECT_EQ(run.err,
              "nvme_perf: -q wants a number from 1 to 4096 (k, m, g suffixes allowed), got '-1' "
              "(see nvme_perf --help)\n");
}

}  // namespace
}  // namespace dmakit::testing
