#include "cli.hpp"

namespace dmakit::tool {

void print_error(std::ostream& err, std::string_view message) {
    std::string line(message);
    // One line, always: a message with a newline would break scripts that read stderr.
    for (char& c : line) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    err << "dmakit: error: " << line << '\n';
}

int fail(const Io& io, const Error& error) {
    print_error(io.err, to_string(error));  // "message [ENAME]"
    return exit_failure;
}

int usage_error(const Io& io, std::string_view message, std::string_view command) {
    std::string line(message);
    line += "; see: dmakit ";
    if (!command.empty()) {
        line += command;
        line += ' ';
    }
    line += "--help";
    print_error(io.err, line);
    return exit_usage;
}

bool ArgReader::flag(std::string_view name) {
    if (done() || peek() != name) return false;
    ++next_;
    return true;
}

bool ArgReader::option(std::string_view name, std::string& value, std::string& error) {
    if (done()) return false;
    const std::string& arg = peek();
    if (arg == name) {
        ++next_;
        if (done()) {
            error = "option " + std::string(name) + " needs a value";
            return true;
        }
        value = take();
        return true;
    }
    if (arg.size() > name.size() && arg.compare(0, name.size(), name) == 0 && arg[name.size()] == '=') {
        value = arg.substr(name.size() + 1);
        ++next_;
        return true;
    }
    return false;
}

bool ArgReader::help() { return flag("--help") || flag("-h"); }

std::optional<std::string> extract_global_options(std::vector<std::string>& args,
                                                  GlobalOptions& options) {
    std::vector<std::string> rest;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        std::string_view name;
        if (arg == "--sysfs-root" || arg.starts_with("--sysfs-root=")) name = "--sysfs-root";
        if (arg == "--pci-ids" || arg.starts_with("--pci-ids=")) name = "--pci-ids";
        if (arg == "--proc-root" || arg.starts_with("--proc-root=")) name = "--proc-root";
        if (name.empty()) {
            rest.push_back(arg);
            continue;
        }
        std::string value;
        if (arg.size() > name.size()) {
            value = arg.substr(name.size() + 1);
        } else if (i + 1 < args.size()) {
            value = args[++i];
        }
        if (value.empty()) return "option " + std::string(name) + " needs a value";
        if (name == "--sysfs-root") {
            options.sysfs_root = std::move(value);
        } else if (name == "--proc-root") {
            options.proc_root = std::move(value);
        } else {
            options.pci_ids = std::move(value);
        }
    }
    args = std::move(rest);
    return std::nullopt;
}

}  // namespace dmakit::tool
