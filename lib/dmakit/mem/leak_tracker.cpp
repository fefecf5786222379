#include <dmakit/mem/leak_tracker.hpp>

#include <dmakit/support/json_writer.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <execinfo.h>
#include <fstream>
#include <link.h>
#include <map>
#include <pthread.h>
#include <sstream>
#include <string_view>
#include <tuple>

namespace dmakit::mem {
namespace {

constexpr unsigned kMaxFrames = 16;
// Frames of the tracker and the allocator call that records, skipped so the
// backtrace starts near the caller.
constexpr int kSkippedFrames = 2;

// Writable segments (.data, .bss, relro) of every loaded object.
int add_writable_segments(dl_phdr_info* info, std::size_t, void* out) {
    auto* roots = static_cast<std::vector<ScanRoot>*>(out);
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& header = info->dlpi_phdr[i];
        if (header.p_type != PT_LOAD || (header.p_flags & PF_W) == 0 || header.p_memsz == 0) continue;
        roots->push_back({reinterpret_cast<const void*>(info->dlpi_addr + header.p_vaddr),
                          header.p_memsz});
    }
    return 0;
}

// The calling thread's stack from `frame` to its top: the registers scan()
// spilled and its callers' frames, not the scan's own locals.
void add_own_stack(std::vector<ScanRoot>& roots, const void* frame) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
    void* low = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &low, &size) == 0) {
        const auto top = reinterpret_cast<std::uintptr_t>(low) + size;
        const auto from = reinterpret_cast<std::uintptr_t>(frame);
        if (from >= reinterpret_cast<std::uintptr_t>(low) && from < top) {
            roots.push_back({frame, top - from});
        }
    }
    pthread_attr_destroy(&attr);
}

}  // namespace

// One allocation as scan() sees it: [start, end) in CPU or device addresses.
struct LeakTracker::Target {
    std::uintptr_t start;
    std::uintptr_t end;
    const Record* record;
    bool referenced = false;
};

LeakTracker::LeakTracker(const Logger& logger, LeakTrackerOptions options)
    : logger_(logger), options_(std::move(options)), owners_{"pages"} {  // owner 0: the page allocator
    options_.backtrace_depth = std::min(options_.backtrace_depth, kMaxFrames);
    if (options_.json_path.empty()) {
        if (const char* path = std::getenv("DMAKIT_LEAK_JSON")) options_.json_path = path;
    }
}

LeakTracker::~LeakTracker() {
    if (!options_.report_at_exit) return;
    try {
        const LeakReport report = report_leaks();
        if (report.empty()) return;
        logger_.warning(report.text("still allocated when the allocator was destroyed"));
        if (!options_.json_path.empty()) {
            std::ofstream out(options_.json_path);
            out << report.json();
            if (!out) {
                logger_.warning("leak check: cannot write the JSON report to " +
                                options_.json_path + "; check the path is writable");
            }
        }
    } catch (...) {
        // A report that cannot be made (no memory) must not escape a destructor.
    }
}

bool LeakTracker::enabled_by_environment() noexcept {
    const char* value = std::getenv("DMAKIT_LEAK_CHECK");
    return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
}

std::uint32_t LeakTracker::register_owner(std::string name) {
    std::lock_guard lock(mutex_);
    owners_.push_back(std::move(name));
    return static_cast<std::uint32_t>(owners_.size() - 1);
}

void LeakTracker::owner_gone(std::uint32_t owner) noexcept {
    try {
        std::lock_guard lock(mutex_);
        for (auto it = objects_.begin(); it != objects_.end();) {
            if (it->second.owner == owner) {
                it->second.released = true;
                released_.push_back(std::move(it->second));
                it = objects_.erase(it);
            } else {
                ++it;
            }
        }
        auto first = mappings_.lower_bound({owner, 0});
        auto last = mappings_.upper_bound({owner, UINT64_MAX});
        for (auto it = first; it != last; ++it) {
            it->second.released = true;
            released_.push_back(std::move(it->second));
        }
        mappings_.erase(first, last);
    } catch (...) {
        // Out of heap: the records stay where they are.
    }
}

std::vector<void*> LeakTracker::capture_frames() const {
    if (options_.backtrace_depth == 0) return {};
    void* frames[kMaxFrames + kSkippedFrames];
    const int got = ::backtrace(frames, static_cast<int>(options_.backtrace_depth) + kSkippedFrames);
    if (got <= kSkippedFrames) return {};
    return {frames + kSkippedFrames, frames + got};
}

void LeakTracker::record(const void* object, std::size_t bytes, AllocKind kind,
                         std::uint32_t owner, CallSite site) noexcept {
    try {
        Record record{bytes, site, kind, false, false, owner,
                      reinterpret_cast<std::uintptr_t>(object), capture_frames()};
        std::lock_guard lock(mutex_);
        objects_.insert_or_assign(reinterpret_cast<std::uintptr_t>(object), std::move(record));
    } catch (...) {
        // Out of heap: this allocation goes untracked; tracking must not fail it.
    }
}

void LeakTracker::forget(const void* object) noexcept {
    std::lock_guard lock(mutex_);
    objects_.erase(reinterpret_cast<std::uintptr_t>(object));
}

void LeakTracker::retag(const void* object, AllocKind kind) noexcept {
    std::lock_guard lock(mutex_);
    auto it = objects_.find(reinterpret_cast<std::uintptr_t>(object));
    if (it != objects_.end()) it->second.kind = kind;
}

void LeakTracker::record_mapping(std::uint32_t owner, std::uint64_t dma, std::size_t bytes,
                                 CallSite site) noexcept {
    try {
        Record record{bytes, site, AllocKind::dma_map, false, false, owner, dma, capture_frames()};
        std::lock_guard lock(mutex_);
        mappings_.emplace(std::pair{owner, dma}, std::move(record));
    } catch (...) {
    }
}

void LeakTracker::forget_mapping(std::uint32_t owner, std::uint64_t dma) noexcept {
    std::lock_guard lock(mutex_);
    auto it = mappings_.find({owner, dma});
    if (it != mappings_.end()) mappings_.erase(it);
}

void LeakTracker::not_leak(const void* object) noexcept {
    std::lock_guard lock(mutex_);
    auto it = objects_.find(reinterpret_cast<std::uintptr_t>(object));
    if (it != objects_.end()) it->second.not_leak = true;
}

void LeakTracker::add_root(ScanRoot root) {
    std::lock_guard lock(mutex_);
    roots_.push_back(root);
}

void LeakTracker::remove_root(const void* start) noexcept {
    std::lock_guard lock(mutex_);
    std::erase_if(roots_, [start](const ScanRoot& root) { return root.start == start; });
}

std::size_t LeakTracker::live_count() const {
    std::lock_guard lock(mutex_);
    return objects_.size() + mappings_.size() + released_.size();
}

// ---- reports ---------------------------------------------------------------

LeakReport LeakTracker::report_leaks() const {
    std::lock_guard lock(mutex_);
    std::vector<const Record*> records;
    records.reserve(objects_.size() + mappings_.size() + released_.size());
    for (const auto& [address, record] : objects_) records.push_back(&record);
    for (const auto& [key, record] : mappings_) records.push_back(&record);
    for (const Record& record : released_) records.push_back(&record);
    return group(records);
}

LeakReport LeakTracker::group(const std::vector<const Record*>& records) const {
    using Key = std::tuple<AllocKind, std::string_view, std::uint32_t, std::string_view>;
    std::map<Key, std::size_t> index;
    LeakReport report;
    for (const Record* record : records) {
        const Key key{record->kind, record->site.file(), record->site.line(), record->site.function()};
        auto [it, added] = index.try_emplace(key, report.sites.size());
        if (added) {
            LeakSite site;
            site.kind = record->kind;
            site.file = record->site.file();
            site.line = record->site.line();
            site.function = record->site.function();
            if (record->owner < owners_.size()) site.owner = owners_[record->owner];
            if (!record->frames.empty()) {
                char** names = ::backtrace_symbols(record->frames.data(),
                                                   static_cast<int>(record->frames.size()));
                for (std::size_t i = 0; names != nullptr && i < record->frames.size(); ++i) {
                    site.backtrace.emplace_back(names[i]);
                }
                std::free(names);  // one block, from backtrace_symbols
            }
            report.sites.push_back(std::move(site));
        }
        LeakSite& site = report.sites[it->second];
        site.count += 1;
        site.bytes += record->bytes;
        if (record->released) site.released += 1;
        report.count += 1;
        report.bytes += record->bytes;
    }
    std::stable_sort(report.sites.begin(), report.sites.end(),
                     [](const LeakSite& a, const LeakSite& b) { return a.bytes > b.bytes; });
    return report;
}

std::string LeakReport::text(std::string_view title) const {
    std::ostringstream out;
    out << "leak check: " << count << (count == 1 ? " allocation, " : " allocations, ") << bytes
        << " bytes " << title << ", at " << sites.size() << (sites.size() == 1 ? " site" : " sites");
    for (const LeakSite& site : sites) {
        out << "\n  " << site.count << ' ' << to_string(site.kind) << ", " << site.bytes
            << " bytes, at " << site.file << ':' << site.line;
        if (!site.function.empty()) out << " in " << site.function;
        if (!site.owner.empty()) out << " [" << site.owner << ']';
        if (site.released != 0) {
            out << " (" << site.released << " released with their cache or device)";
        }
        for (std::size_t i = 0; i < site.backtrace.size(); ++i) {
            out << "\n      #" << i << ' ' << site.backtrace[i];
        }
    }
    return out.str();
}

std::string LeakReport::json() const {
    std::ostringstream out;
    JsonWriter json(out, 0);
    json.begin_object();
    json.key("count").value(std::uint64_t{count});
    json.key("bytes").value(std::uint64_t{bytes});
    json.key("sites").begin_array();
    for (const LeakSite& site : sites) {
        json.begin_object();
        json.key("kind").value(to_string(site.kind));
        json.key("file").value(site.file);
        json.key("line").value(std::uint64_t{site.line});
        json.key("function").value(site.function);
        json.key("owner").value(site.owner);
        json.key("count").value(std::uint64_t{site.count});
        json.key("bytes").value(std::uint64_t{site.bytes});
        json.key("released").value(std::uint64_t{site.released});
        json.key("backtrace").begin_array();
        for (const std::string& frame : site.backtrace) json.value(frame);
        json.end_array();
        json.end_object();
    }
    json.end_array();
    json.end_object();
    return out.str();
}

// ---- scan ------------------------------------------------------------------

std::vector<LeakTracker::Target> LeakTracker::targets_locked() const {
    std::vector<Target> targets;
    targets.reserve(objects_.size());
    for (const auto& [address, record] : objects_) {
        targets.push_back({address, address + std::max<std::size_t>(record.bytes, 1), &record});
    }
    std::sort(targets.begin(), targets.end(),
              [](const Target& a, const Target& b) { return a.start < b.start; });
    return targets;
}

namespace {

// The tracked allocation containing `value`, or null. `targets` is sorted
// and its ranges do not overlap.
template <typename T>
T* find_target(std::vector<T>& targets, std::uintptr_t value) {
    auto it = std::upper_bound(targets.begin(), targets.end(), value,
                               [](std::uintptr_t v, const T& t) { return v < t.start; });
    if (it == targets.begin()) return nullptr;
    --it;
    return value < it->end ? &*it : nullptr;
}

// Reads every aligned word of [start, start + bytes). Not instrumented: the
// scan reads red zones, dead stack and memory the sanitizer has poisoned on
// purpose, and only compares what it reads.
template <typename OnValue>
__attribute__((no_sanitize("address"))) void for_each_word(const void* start, std::size_t bytes,
                                                            OnValue&& on_value) {
    auto first = (reinterpret_cast<std::uintptr_t>(start) + sizeof(std::uintptr_t) - 1) &
                 ~(sizeof(std::uintptr_t) - 1);
    const auto last = reinterpret_cast<std::uintptr_t>(start) + bytes;
    for (; first + sizeof(std::uintptr_t) <= last; first += sizeof(std::uintptr_t)) {
        on_value(*reinterpret_cast<const volatile std::uintptr_t*>(first));
    }
}

}  // namespace

// The callers' callee-saved registers may hold the only pointer to an
// object: __builtin_unwind_init makes this frame save all of them, next to
// `marker`, and the stack is read from `marker` up. Not inlined, and the
// frame kept alive past the call, so scan_from's own frame (below) is not
// read: it holds the scan's working values.
__attribute__((noinline)) LeakReport LeakTracker::scan() const {
    __builtin_unwind_init();
    volatile std::uintptr_t marker = 0;
    LeakReport report = scan_from(const_cast<const std::uintptr_t*>(&marker));
    asm volatile("" : : "r"(&marker) : "memory");
    return report;
}

__attribute__((noinline)) LeakReport LeakTracker::scan_from(const void* stack_from) const {
    std::vector<ScanRoot> roots;
    dl_iterate_phdr(add_writable_segments, &roots);
    add_own_stack(roots, stack_from);

    LeakReport report;
    {
        std::lock_guard lock(mutex_);
        roots.insert(roots.end(), roots_.begin(), roots_.end());
        std::vector<Target> objects = targets_locked();
        std::vector<Target> mappings;
        for (const auto& [key, record] : mappings_) {
            mappings.push_back({record.address, record.address + std::max<std::size_t>(record.bytes, 1), &record});
        }
        std::sort(mappings.begin(), mappings.end(),
                  [](const Target& a, const Target& b) { return a.start < b.start; });
        // Mappings of one buffer on several devices share an address: keep
        // the ranges disjoint for find_target (a value marks the first).
        std::vector<Target*> gray;
        auto look = [&](std::uintptr_t value) {
            if (Target* t = find_target(objects, value); t != nullptr && !t->referenced) {
                t->referenced = true;
                gray.push_back(t);
            }
            if (Target* t = find_target(mappings, value); t != nullptr) {
                // Every mapping starting at that address counts as referenced.
                for (Target* m = t; m >= mappings.data() && m->start == t->start; --m) m->referenced = true;
                for (Target* m = t + 1; m < mappings.data() + mappings.size() && m->start == t->start; ++m) {
                    m->referenced = true;
                }
            }
        };
        for (const ScanRoot& root : roots) for_each_word(root.start, root.bytes, look);
        // Referenced objects are scanned in turn (kmemleak's gray list).
        while (!gray.empty()) {
            const Target* t = gray.back();
            gray.pop_back();
            for_each_word(reinterpret_cast<const void*>(t->start), t->record->bytes, look);
        }
        std::vector<const Record*> unreferenced;
        for (const Target& t : objects) {
            if (!t.referenced && !t.record->not_leak) unreferenced.push_back(t.record);
        }
        for (const Target& t : mappings) {
            if (!t.referenced && !t.record->not_leak) unreferenced.push_back(t.record);
        }
        report = group(unreferenced);
        report.scanned_objects = objects.size() + mappings.size();
    }
    if (!report.empty()) logger_.warning(report.text("unreferenced (scan)"));
    return report;
}

}  // namespace dmakit::mem
