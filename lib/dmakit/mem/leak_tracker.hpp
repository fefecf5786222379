// LeakTracker: who still holds memory, like the kernel's kmemleak and SLUB's
// alloc tracking (slub_debug=U).
//
// One tracker belongs to one BuddyAllocator (and so to one DmaContext); it
// exists only when tracking is on (BuddyOptions::leak_check, or
// DMAKIT_LEAK_CHECK=1 in the environment when that option is unset, read once
// when the allocator is created). With it, every live allocation made through
// the public calls records its call site (file:line, and a short backtrace
// when LeakTrackerOptions::backtrace_depth > 0): slab objects, kmalloc,
// pages, coherent DMA buffers, DmaPool blocks, and streaming mappings (IOVA
// ranges). Pages a slab cache takes for itself are not allocations of a
// caller and are not recorded.
//
// report_leaks() lists what is live, grouped by kind and call site with counts
// and bytes; text() and json() render it. When the tracker is destroyed (with
// its allocator) anything still live is logged as a warning, and written as
// JSON to LeakTrackerOptions::json_path (or $DMAKIT_LEAK_JSON) if set.
//
// scan() is kmemleak's scan: a conservative search of the program's memory
// for values that point into tracked objects (any byte of them); what nothing
// points to is reported. What it reads and what it cannot see is in
// docs/memory.md ("Leak tracking").
//
// Cost: with tracking off, nothing (the allocators hold a null pointer they
// test only on paths that already left the fast path). With it on, slab
// caches and the page allocator bypass their per-thread caches, so every
// call takes the allocator's lock and the tracker's. Thread-safe.
#pragma once

#include <dmakit/mem/call_site.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/support/result.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace dmakit::mem {

struct LeakTrackerOptions {
    // Frames of backtrace(3) kept per allocation (0: none, at most 16). Costs
    // about a microsecond per allocation; the report shows the first
    // record's frames for each site.
    unsigned backtrace_depth = 0;
    // Log what is still live when the tracker is destroyed.
    bool report_at_exit = true;
    // Also write that exit report as JSON to this file; empty: $DMAKIT_LEAK_JSON
    // if set, else no file.
    std::string json_path;
};

// All live allocations of one kind made at one call site.
struct LeakSite {
    AllocKind kind;
    std::string file;
    std::uint32_t line = 0;
    std::string function;
    std::string owner;            // cache, pool or device name of the first record
    std::size_t count = 0;
    std::size_t bytes = 0;        // usable bytes (object or block size; mapping length)
    std::size_t released = 0;     // of count: memory already gone with its cache or device
    std::vector<std::string> backtrace;  // first record's frames, symbolized
};

struct LeakReport {
    std::vector<LeakSite> sites;  // by bytes, largest first
    std::size_t count = 0;
    std::size_t bytes = 0;
    // Set by scan(): live allocations it looked at.
    std::size_t scanned_objects = 0;

    [[nodiscard]] bool empty() const noexcept { return count == 0; }
    // One header line, then one line per site (and its frames).
    [[nodiscard]] std::string text(std::string_view title = "still allocated") const;
    // {"count":N,"bytes":B,"sites":[{"kind","file","line","function","owner",
    //  "count","bytes","released","backtrace":[...]}]}
    [[nodiscard]] std::string json() const;
};

// Extra memory for scan() to read (kmemleak_scan_area): heap memory, other
// threads' stacks, anything that holds pointers to tracked memory.
struct ScanRoot {
    const void* start;
    std::size_t bytes;
};

class LeakTracker {
public:
    LeakTracker(const Logger& logger, LeakTrackerOptions options);
    // Logs (and writes) the exit report when anything is still live.
    ~LeakTracker();
    LeakTracker(const LeakTracker&) = delete;
    LeakTracker& operator=(const LeakTracker&) = delete;

    // True when DMAKIT_LEAK_CHECK is set to anything but "" or "0".
    [[nodiscard]] static bool enabled_by_environment() noexcept;

    // Names an owner (cache, pool, device) for the records it makes; ids are
    // never reused.
    [[nodiscard]] std::uint32_t register_owner(std::string name);
    // The owner's memory is gone (a slab cache or device destroyed with
    // allocations still live): its records stay in the report, marked
    // released, and scan() no longer reads them.
    void owner_gone(std::uint32_t owner) noexcept;

    // Memory allocations, by their first byte.
    void record(const void* object, std::size_t bytes, AllocKind kind, std::uint32_t owner,
                CallSite site) noexcept;
    void forget(const void* object) noexcept;
    // Changes the kind of a live record (a coherent buffer is pages underneath).
    void retag(const void* object, AllocKind kind) noexcept;
    // Streaming mappings, by owner (the device) and device address.
    void record_mapping(std::uint32_t owner, std::uint64_t dma, std::size_t bytes,
                        CallSite site) noexcept;
    void forget_mapping(std::uint32_t owner, std::uint64_t dma) noexcept;

    // kmemleak_not_leak: scan() never reports this allocation.
    void not_leak(const void* object) noexcept;
    // kmemleak_scan_area: scan() also reads this memory until remove_root.
    void add_root(ScanRoot root);
    void remove_root(const void* start) noexcept;

    // Every live allocation, grouped by kind and site.
    [[nodiscard]] LeakReport report_leaks() const;
    // The live allocations no pointer reaches (see docs/memory.md); also
    // logged as a warning when there are any.
    [[nodiscard]] LeakReport scan() const;

    [[nodiscard]] std::size_t live_count() const;
    [[nodiscard]] const LeakTrackerOptions& options() const noexcept { return options_; }

private:
    struct Record {
        std::size_t bytes;
        CallSite site;
        AllocKind kind;
        bool released = false;
        bool not_leak = false;
        std::uint32_t owner;
        std::uint64_t address;   // CPU address, or device address for dma_map
        std::vector<void*> frames;
    };
    struct Target;

    [[nodiscard]] std::vector<void*> capture_frames() const;
    [[nodiscard]] LeakReport group(const std::vector<const Record*>& records) const;
    [[nodiscard]] std::vector<Target> targets_locked() const;
    [[nodiscard]] LeakReport scan_from(const void* stack_from) const;

    const Logger& logger_;
    LeakTrackerOptions options_;
    mutable std::mutex mutex_;
    std::unordered_map<std::uintptr_t, Record> objects_;
    std::multimap<std::pair<std::uint32_t, std::uint64_t>, Record> mappings_;
    std::vector<Record> released_;
    std::vector<std::string> owners_;
    std::vector<ScanRoot> roots_;
};

}  // namespace dmakit::mem
