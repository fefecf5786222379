// Command-line plumbing shared by the dmakit subcommands: exit codes, the
// one-line error format, and a small argument reader.
#pragma once

#include <dmakit/support/error.hpp>

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace dmakit::tool {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;  // the request was understood but failed
inline constexpr int exit_usage = 2;    // the request itself was wrong

// Options every subcommand honours.
struct GlobalOptions {
    std::string sysfs_root = "/sys";       // --sysfs-root: a fake tree for tests
    std::string proc_root = "/proc";       // --proc-root: likewise for /proc
    std::optional<std::string> pci_ids;    // --pci-ids: a pci.ids to use instead of the system's
};

// Where a subcommand writes; tests and main() pass std::cout/std::cerr.
struct Io {
    std::ostream& out;
    std::ostream& err;
};

// Prints "dmakit: error: MESSAGE" as exactly one line.
void print_error(std::ostream& err, std::string_view message);

// A runtime failure: prints the error in its text form ("message [ENAME]",
// support/error.hpp), returns exit_failure.
[[nodiscard]] int fail(const Io& io, const Error& error);

// A usage mistake: prints it with a pointer to the help, returns exit_usage.
[[nodiscard]] int usage_error(const Io& io, std::string_view message, std::string_view command);

// Walks the arguments of one subcommand.
class ArgReader {
public:
    explicit ArgReader(std::vector<std::string> args) : args_(std::move(args)) {}

    [[nodiscard]] bool done() const noexcept { return next_ >= args_.size(); }
    [[nodiscard]] const std::string& peek() const { return args_[next_]; }
    std::string take() { return args_[next_++]; }

    // Consumes the current argument if it is exactly `name`.
    [[nodiscard]] bool flag(std::string_view name);

    // Consumes "--name VALUE" or "--name=VALUE". Returns false if the current
    // argument is another one; sets `error` when the value is missing.
    [[nodiscard]] bool option(std::string_view name, std::string& value, std::string& error);

    // True for "-h" and "--help".
    [[nodiscard]] bool help();

private:
    std::vector<std::string> args_;
    std::size_t next_ = 0;
};

// Takes the global options out of `args` wherever they appear. Returns an
// error message for a global option without its value.
[[nodiscard]] std::optional<std::string> extract_global_options(std::vector<std::string>& args,
                                                                GlobalOptions& options);

// Subcommands: each returns the process exit code.
[[nodiscard]] int run_list(const GlobalOptions& options, ArgReader args, const Io& io);
[[nodiscard]] int run_bind(const GlobalOptions& options, ArgReader args, const Io& io);
[[nodiscard]] int run_unbind(const GlobalOptions& options, ArgReader args, const Io& io);
[[nodiscard]] int run_hugepages(const GlobalOptions& options, ArgReader args, const Io& io);
[[nodiscard]] int run_doctor(const GlobalOptions& options, ArgReader args, const Io& io);

}  // namespace dmakit::tool
