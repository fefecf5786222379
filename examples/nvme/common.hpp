// Shared by the NVMe examples: argument parsing, device lookup, opening a
// controller (with the --iommu policy), a tiny JSON writer and a latency
// histogram. Example code, not
// library code: it prints.
#pragma once

#include "../iommu_option.hpp"

#include <dmakit/drivers/nvme/controller.hpp>
#include <dmakit/drivers/nvme/pci_class.hpp>
#include <dmakit/drivers/nvme/io_queue.hpp>

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/pci/sysfs.hpp>
#include <dmakit/support/number_text.hpp>

#include <array>
#include <bit>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace dmakit::examples {

// Bad input: one clear line, exit status 2.
[[noreturn]] inline void usage_error(const char* prog, const std::string& what) {
    std::fprintf(stderr, "%s: %s (see %s --help)\n", prog, what.c_str(), prog);
    std::exit(2);
}

// Command-line walker: `args.value(prog)` takes the option's argument.
class Args {
public:
    Args(int argc, char** argv) : argc_(argc), argv_(argv) {}
    bool next() { return ++i_ < argc_; }
    [[nodiscard]] std::string_view current() const { return argv_[i_]; }
    std::string_view value(const char* prog) {
        if (i_ + 1 >= argc_) usage_error(prog, "option " + std::string(current()) + " needs a value");
        return argv_[++i_];
    }
    // The current option's value in [min, max], with k/m/g suffixes; NaN,
    // signs and anything out of range are usage errors.
    std::uint64_t number(const char* prog, std::uint64_t min, std::uint64_t max) {
        const std::string option(current());
        auto n = parse_option_number<std::uint64_t>(option, value(prog), min, max, true);
        if (!n.ok()) usage_error(prog, n.error().message());
        return *n;
    }
    // -d BDF, given at most once.
    void device(const char* prog, std::optional<pci::PciAddress>& address) {
        const std::string option(current());
        const std::string_view text = value(prog);
        auto parsed = pci::PciAddress::parse(text);
        if (!parsed.ok()) usage_error(prog, parsed.error().message());
        if (address) {
            usage_error(prog, option + " is given twice (" + address->to_string() + " and " +
                                  parsed->to_string() + "); this program drives one controller");
        }
        address = *parsed;
    }
    // --iommu's value: pool or strict.
    dma::IommuPolicy iommu_policy(const char* prog) {
        const std::string_view v = value(prog);
        auto policy = dma::parse_iommu_policy(v);
        if (!policy) usage_error(prog, bad_iommu_value(v));
        return *policy;
    }
    // --transfer's value: auto, prp or sgl (how each command's data pointer is built).
    nvme::DataTransfer data_transfer(const char* prog) {
        const std::string_view v = value(prog);
        if (v == "auto") return nvme::DataTransfer::automatic;
        if (v == "prp") return nvme::DataTransfer::prp;
        if (v == "sgl") return nvme::DataTransfer::sgl;
        usage_error(prog, "--transfer wants auto, prp or sgl, got '" + std::string(v) + "'");
    }

private:
    int argc_;
    char** argv_;
    int i_ = 0;
};

// The first NVMe controller (class 01:08:02) bound to vfio-pci, for when no -d is given.
inline std::optional<pci::PciAddress> find_nvme_on_vfio() {
    pci::Sysfs sysfs;
    auto all = sysfs.list_devices();
    if (!all.ok()) return std::nullopt;
    for (const auto& a : *all) {
        auto info = sysfs.device_info(a);
        if (info.ok() && nvme::claims_class(info->class_code) && info->driver == std::string("vfio-pci")) return a;
    }
    return std::nullopt;
}

inline pci::PciAddress device_or_default(const char* prog, const std::optional<pci::PciAddress>& given) {
    if (given) return *given;
    auto found = find_nvme_on_vfio();
    if (!found) usage_error(prog, "no -d BDF given and no NVMe controller is bound to vfio-pci (dmakit bind BDF)");
    return *found;
}

// Domain first, controller second: the controller is destroyed (shut down) first.
struct OpenController {
    std::unique_ptr<dma::PciDomain> domain;
    std::unique_ptr<nvme::Controller> controller;
};

inline Result<OpenController> open_controller(const pci::PciAddress& address, nvme::ControllerOptions options = {},
                                              dma::IommuPolicy policy = dma::IommuPolicy::pool) {
    OpenController o;
    dma::PciDmaOptions dma_options;
    dma_options.context.policy = policy;
    DMAKIT_ASSIGN_OR_RETURN(o.domain, dma::PciDomain::open(address, dma_options));
    DMAKIT_ASSIGN_OR_RETURN(o.controller, nvme::Controller::open(o.domain->function(0), options));
    return o;
}

// JSON text with escaping (RFC 8259 §7); flat helpers, enough for the examples.
inline std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}
inline std::string json_number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

// Log-linear latency histogram in nanoseconds: 64 sub-buckets per power of
// two, so a percentile is within ~1.6% of the true value; no allocation.
class Histogram {
public:
    void add(std::uint64_t ns) noexcept {
        ++buckets_[index(ns)];
        ++count_;
        sum_ += ns;
        if (ns > max_) max_ = ns;
    }
    void merge(const Histogram& o) noexcept {
        for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
        count_ += o.count_;
        sum_ += o.sum_;
        if (o.max_ > max_) max_ = o.max_;
    }
    [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
    [[nodiscard]] double mean_us() const noexcept { return count_ ? double(sum_) / double(count_) / 1000.0 : 0.0; }
    [[nodiscard]] double percentile_us(double p) const noexcept {
        if (count_ == 0) return 0.0;
        const auto want = static_cast<std::uint64_t>(p / 100.0 * double(count_ - 1)) + 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < buckets_.size(); ++i) {
            seen += buckets_[i];
            if (seen >= want) return double(upper(i)) / 1000.0;
        }
        return double(max_) / 1000.0;
    }

private:
    static constexpr unsigned sub_bits = 6;
    static std::size_t index(std::uint64_t v) noexcept {
        if (v < (1u << sub_bits)) return static_cast<std::size_t>(v);
        const unsigned e = static_cast<unsigned>(std::bit_width(v)) - 1 - sub_bits;
        return static_cast<std::size_t>((e + 1) << sub_bits) + static_cast<std::size_t>((v >> e) & ((1u << sub_bits) - 1));
    }
    static std::uint64_t upper(std::size_t i) noexcept {
        if (i < (1u << sub_bits)) return i;
        const std::size_t e = (i >> sub_bits) - 1;
        const std::uint64_t m = (i & ((1u << sub_bits) - 1)) | (1u << sub_bits);
        return ((m + 1) << e) - 1;
    }
    std::array<std::uint64_t, (64 - sub_bits + 1) << sub_bits> buckets_{};
    std::uint64_t count_ = 0;
    std::uint64_t sum_ = 0;
    std::uint64_t max_ = 0;
};

}  // namespace dmakit::examples
