// DmaDebug: the runtime checker of DMA-API use, like the kernel's
// CONFIG_DMA_API_DEBUG (kernel/dma/debug.c).
//
// When a DmaContext is created with debug on, every mapping is recorded with
// its device, size, direction and the call site that made it, and every
// unmap and sync is checked against the record. Misuse is reported (Logger
// warning + a Report kept for inspection) and counted; the call itself then
// goes on as the non-debug path would, so debug mode changes no behaviour
// beyond the reports. Thread-safe.
#pragma once

#include <dmakit/dma/types.hpp>
#include <dmakit/support/log.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <source_location>
#include <string>
#include <vector>

namespace dmakit::dma {

// What kind of API call made a mapping; unmapping with another kind's call
// (dma_unmap_page on a dma_map_single) is itself misuse.
enum class MappingKind { single, page, sg, coherent };

[[nodiscard]] std::string_view to_string(MappingKind kind) noexcept;

class DmaDebug {
public:
    enum class Problem {
        unmap_never_mapped,   // unmap of an address no live mapping starts at
        double_unmap,         // unmap of an address that was unmapped already
        size_mismatch,        // unmap size differs from the map size
        direction_mismatch,   // unmap direction differs from the map direction
        kind_mismatch,        // e.g. unmap_page of a map_single mapping
        sync_never_mapped,    // sync of an address inside no live mapping
        sync_wrong_direction, // e.g. sync_for_cpu(from_device) of a to_device mapping
        sync_out_of_range,    // sync range runs past the mapping's end
        leaked_at_close,      // mapping still live when its device closed
    };

    struct Report {
        Problem problem;
        std::string device;
        std::string message;  // full text, including both call sites when known
    };

    explicit DmaDebug(const Logger& logger) : logger_(logger) {}

    void record_map(MappingKind kind, const std::string& device, DmaAddr addr, std::size_t size,
                    DmaDirection dir, std::source_location site);

    // Checks an unmap and forgets the mapping. Returns false when misuse was
    // reported (the caller still unmaps what it can).
    bool check_unmap(MappingKind kind, const std::string& device, DmaAddr addr, std::size_t size,
                     DmaDirection dir, std::source_location site);

    // Checks sync_single_for_cpu (for_cpu = true) / _for_device.
    bool check_sync(const std::string& device, DmaAddr addr, std::size_t size, DmaDirection dir,
                    bool for_cpu, std::source_location site);

    // Reports every mapping of `device` still live; returns how many.
    std::size_t check_device_close(const std::string& device);

    [[nodiscard]] std::vector<Report> reports() const;
    [[nodiscard]] std::size_t report_count(Problem problem) const;
    [[nodiscard]] std::size_t live_mappings() const;

private:
    struct Entry {
        MappingKind kind;
        std::size_t size;
        DmaDirection dir;
        std::source_location site;
    };
    using Key = std::pair<std::string, std::uint64_t>;  // device, first DMA address

    void report(Problem problem, const std::string& device, std::string message);
    // The live mapping of `device` that contains addr, or end().
    std::map<Key, Entry>::const_iterator find_containing(const std::string& device,
                                                         DmaAddr addr) const;

    const Logger& logger_;
    mutable std::mutex mutex_;
    std::map<Key, Entry> live_;
    // Recently unmapped (device, address) pairs, to tell a double unmap from
    // an unmap of garbage. Bounded: the kernel keeps no history at all.
    std::deque<Key> recently_unmapped_;
    std::vector<Report> reports_;
    static constexpr std::size_t kHistory = 4096;
    static constexpr std::size_t kMaxReports = 1024;
};

[[nodiscard]] std::string_view to_string(DmaDebug::Problem problem) noexcept;

}  // namespace dmakit::dma
