// TestIommuBackend: an IommuBackend with no kernel behind it, for unit tests
// of dmakit and of programs built on it.
//
// It records every map and unmap, and refuses what a real IOMMU would refuse
// (so a bug in a higher layer shows up as a failed call, not a silent
// success): unaligned IOVA, length or CPU address, ranges outside the usable
// ranges, overlap with a live mapping, an unmap that does not match one
// earlier map exactly (type1v2 semantics), and more mappings than the budget.
// Failures can be injected. translate() lets a test act as the device: it
// turns an IOVA into the CPU address the device would reach.
//
// The domain owns its backend, so keep a raw pointer before handing it over:
//     auto backend = std::make_unique<TestIommuBackend>();
//     TestIommuBackend* test = backend.get();
//     auto domain = IommuDomain::create(std::move(backend));
// (compiled as written in tests/unit/header_examples/header_examples.cpp)
#pragma once

#include <dmakit/iommu/backend.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace dmakit::iommu {

struct TestBackendConfig {
    // x86 VT-d in QEMU: 39-bit address width minus the MSI window.
    std::vector<IovaRange> usable_ranges{{0, 0xfedfffff}, {0xfef00000, 0x7fffffffff}};
    std::uint64_t page_sizes = 0x40201000;  // 4 KiB, 2 MiB, 1 GiB
    std::optional<std::uint64_t> budget = 65535;  // nullopt: unlimited, not reported
    // Keep every call in operations(); benchmarks turn it off so the log
    // does not grow without bound.
    bool record_operations = true;
};

class TestIommuBackend : public IommuBackend {
public:
    struct Operation {
        enum class Kind { map, unmap };
        Kind kind;
        std::uint64_t iova;
        std::uint64_t length;
        const void* cpu;  // map only
        Access access;    // map only
        bool ok;          // whether the backend accepted it
    };
    struct LiveMapping {
        std::uint64_t length;
        const void* cpu;
        Access access;
    };

    TestIommuBackend() : TestIommuBackend(TestBackendConfig{}) {}
    explicit TestIommuBackend(TestBackendConfig config) : config_(std::move(config)) {}

    [[nodiscard]] std::string name() const override { return "test"; }
    [[nodiscard]] Result<IommuCapabilities> query() override;
    [[nodiscard]] Status map(std::uint64_t iova, const void* cpu, std::uint64_t length,
                             Access access) override;
    [[nodiscard]] Status unmap(std::uint64_t iova, std::uint64_t length) override;
    [[nodiscard]] BudgetDescription budget_description() const override;

    // Every call, accepted or not, in order.
    [[nodiscard]] const std::vector<Operation>& operations() const noexcept { return ops_; }
    void clear_operations() { ops_.clear(); }
    // Live mappings by first IOVA.
    [[nodiscard]] const std::map<std::uint64_t, LiveMapping>& live() const noexcept { return live_; }

    // The CPU address behind `length` bytes at `iova`, if a single live
    // mapping covers them all and allows `access`; nullopt otherwise (a real
    // IOMMU would fault).
    [[nodiscard]] std::optional<void*> translate(std::uint64_t iova, std::uint64_t length,
                                                 Access access) const;

    // Fail map number `n` from now (0 = the next one) with `error`, once.
    void fail_map_after(std::size_t n, Error error);
    // Fail the next unmap with `error`, once.
    void fail_next_unmap(Error error);
    // Make query() fail with `error` until cleared with std::nullopt.
    void fail_query(std::optional<Error> error) { query_error_ = std::move(error); }

    // Change what later query() calls report (e.g. ranges shrinking when a
    // group joins). Existing mappings are not checked against it.
    void set_usable_ranges(std::vector<IovaRange> ranges) { config_.usable_ranges = std::move(ranges); }
    void set_budget(std::optional<std::uint64_t> budget) { config_.budget = budget; }

private:
    [[nodiscard]] Status check_map(std::uint64_t iova, const void* cpu, std::uint64_t length) const;

    TestBackendConfig config_;
    std::vector<Operation> ops_;
    std::map<std::uint64_t, LiveMapping> live_;
    std::optional<std::size_t> maps_until_failure_;
    std::optional<Error> map_error_;
    std::optional<Error> unmap_error_;
    std::optional<Error> query_error_;
};

}  // namespace dmakit::iommu
