// DmaDebug: the runtime checker of DMA-API use, like the kernel's
// CONFIG_DMA_API_DEBUG (kernel/dma/debug.c).
//
// Refusing bad calls is not its job: every DmaDevice keeps its live streaming
// mappings in a LiveMappings table in every build, and an unmap or sync that
// matches none is refused there. With debug on, DmaDevice also tells this
// checker about every map and every refusal, so misuse is *explained*: which
// problem (double unmap, wrong size, wrong direction, wrong call), both call
// sites, overlapping mappings, and mappings still live when a device closes.
// Reports go to the Logger as warnings and are kept for inspection.
//
// Records are per device, ordered by device address (O(log n) per call, not a
// scan of every mapping). Thread-safe.
#pragma once

#include <dmakit/dma/types.hpp>
#include <dmakit/mem/call_site.hpp>
#include <dmakit/support/log.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <mutex>
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
        overlapping_mapping,  // a new mapping overlaps a live one of the same device
    };

    struct Report {
        Problem problem;
        std::string device;
        std::string message;  // full text, including both call sites when known
    };

    explicit DmaDebug(const Logger& logger) : logger_(logger) {}

    // A new mapping (streaming or coherent). Reports an overlap with a live
    // mapping of the same device; the mapping is recorded either way.
    void record_map(MappingKind kind, const std::string& device, DmaAddr addr, std::size_t size,
                    DmaDirection dir, mem::CallSite site);

    // An unmap the device accepted (it matched a live mapping exactly):
    // forgets the record, reporting a kind mismatch (dma_unmap_page of a
    // dma_map_single). Returns false when it reported something.
    bool record_unmap(MappingKind kind, const std::string& device, DmaAddr addr, std::size_t size,
                      DmaDirection dir, mem::CallSite site);

    // An unmap the device refused: reports why (double unmap, size or
    // direction mismatch, never mapped) with the call sites it knows.
    void explain_refused_unmap(MappingKind kind, const std::string& device, DmaAddr addr,
                               std::size_t size, DmaDirection dir, mem::CallSite site);

    // A sync the device refused, with the reason it found.
    void report_sync(Problem problem, const std::string& device, const std::string& what,
                     mem::CallSite site);

    // Reports every mapping of `device` still live and forgets them; returns how many.
    std::size_t check_device_close(const std::string& device);

    [[nodiscard]] std::vector<Report> reports() const;
    [[nodiscard]] std::size_t report_count(Problem problem) const;
    [[nodiscard]] std::size_t live_mappings() const;

private:
    struct Entry {
        MappingKind kind;
        std::size_t size;
        DmaDirection dir;
        mem::CallSite site;
    };
    struct DeviceRecords {
        std::multimap<std::uint64_t, Entry> live;  // by first device address
        std::size_t largest = 0;                   // longest mapping seen (overlap search bound)
        // Recently unmapped addresses, to tell a double unmap from an unmap
        // of garbage. Bounded: the kernel keeps no history at all.
        std::deque<std::uint64_t> recent;
        std::multiset<std::uint64_t> recent_set;
    };

    void report(Problem problem, const std::string& device, std::string message);
    void remember_unmapped(DeviceRecords& records, std::uint64_t addr);

    const Logger& logger_;
    mutable std::mutex mutex_;
    std::map<std::string, DeviceRecords, std::less<>> devices_;
    std::vector<Report> reports_;
    static constexpr std::size_t kHistory = 4096;
    static constexpr std::size_t kMaxReports = 1024;
};

[[nodiscard]] std::string_view to_string(DmaDebug::Problem problem) noexcept;

}  // namespace dmakit::dma
