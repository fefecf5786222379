// Fuzzes the command-line parsing that needs no system: the dmakit tool's
// global options and argument reader (tools/dmakit/cli.*), and the number
// parsers every program uses (lib/dmakit/support/number_text.hpp) and the
// --iommu value parser (lib/dmakit/dma/types.hpp).
// The input is split on NUL bytes into argv words. The subcommands' own
// option handling is covered by the unit tests that run the tool; here the
// reader must never index past the arguments or lose one.
#include "fuzz_check.hpp"

#include <cli.hpp>

#include <dmakit/dma/types.hpp>
#include <dmakit/support/number_text.hpp>

#include <cmath>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace dmakit;

namespace {

std::vector<std::string> split_words(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> words;
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    while (!rest.empty() && words.size() < 64) {
        const std::size_t end = rest.find('\0');
        words.emplace_back(rest.substr(0, end));
        if (end == std::string_view::npos) break;
        rest.remove_prefix(end + 1);
    }
    return words;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> words = split_words(data, size);
    const std::size_t given = words.size();

    for (const std::string& w : words) {
        if (auto n = parse_byte_size(w); n) {
            // A k/m/g suffix multiplies: the value is a whole number of KiB.
            const char last = w.back();
            if (last < '0' || last > '9') FUZZ_CHECK(*n % 1024 == 0);
        }
        // Reals are finite and an accepted option value lies in its range
        // (NaN would pass no range check by comparing false).
        if (auto r = parse_real(w); r) FUZZ_CHECK(std::isfinite(*r));
        if (auto rate = parse_option_number<double>("-r", w, 0.0, 1e6); rate.ok()) {
            FUZZ_CHECK(*rate >= 0.0 && *rate <= 1e6);
        }
        if (auto size = parse_option_number<std::uint64_t>("-s", w, 512, 1ull << 30, true); size.ok()) {
            FUZZ_CHECK(*size >= 512 && *size <= (1ull << 30));
        }
        (void)dma::parse_iommu_policy(w);
    }

    tool::GlobalOptions options;
    std::vector<std::string> args = words;
    if (auto error = tool::extract_global_options(args, options); !error) {
        FUZZ_CHECK(args.size() <= given);
        FUZZ_CHECK(!options.sysfs_root.empty());
        if (options.pci_ids) FUZZ_CHECK(!options.pci_ids->empty());
    }

    // Walk the words as a subcommand does: help, flags, valued options, operands.
    tool::ArgReader reader(words);
    std::size_t steps = 0;
    while (!reader.done()) {
        FUZZ_CHECK(++steps <= given);  // every step consumes at least one word
        std::string value;
        std::string error;
        if (reader.help() || reader.flag("--json") || reader.flag("--force")) continue;
        if (reader.option("--reserve", value, error) || reader.option("--node", value, error)) {
            if (!error.empty()) break;  // the subcommand stops at a missing value
            continue;
        }
        (void)reader.take();
    }
    return 0;
}
