#include <dmakit/dma/debug.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace dmakit::dma {
namespace {

std::string site_text(const mem::CallSite& site) {
    if (site.line() == 0) return "unknown call site";
    return std::string(site.file()) + ":" + std::to_string(site.line());
}

std::string hex(std::uint64_t value) {
    char buffer[24];
    std::snprintf(buffer, sizeof buffer, "0x%" PRIx64, value);
    return buffer;
}

}  // namespace

std::string_view to_string(MappingKind kind) noexcept {
    switch (kind) {
        case MappingKind::single: return "map_single";
        case MappingKind::page: return "map_page";
        case MappingKind::sg: return "map_sg";
        case MappingKind::coherent: return "alloc_coherent";
    }
    return "unknown";
}

std::string_view to_string(DmaDebug::Problem problem) noexcept {
    using P = DmaDebug::Problem;
    switch (problem) {
        case P::unmap_never_mapped: return "unmap of an address never mapped";
        case P::double_unmap: return "double unmap";
        case P::size_mismatch: return "unmap size differs from map size";
        case P::direction_mismatch: return "unmap direction differs from map direction";
        case P::kind_mismatch: return "unmapped with the wrong call";
        case P::sync_never_mapped: return "sync of an address never mapped";
        case P::sync_wrong_direction: return "sync in the wrong direction";
        case P::sync_out_of_range: return "sync past the end of the mapping";
        case P::leaked_at_close: return "mapping still live when the device closed";
        case P::overlapping_mapping: return "mapping overlaps a live mapping";
    }
    return "unknown";
}

void DmaDebug::report(Problem problem, const std::string& device, std::string message) {
    // Called with mutex_ held.
    std::string text = "DMA-API debug: " + device + ": " + std::string(to_string(problem)) + ": " +
                       message;
    logger_.warning(text);
    if (reports_.size() < kMaxReports) reports_.push_back({problem, device, std::move(text)});
}

void DmaDebug::record_map(MappingKind kind, const std::string& device, DmaAddr addr,
                          std::size_t size, DmaDirection dir, mem::CallSite site) {
    std::lock_guard lock(mutex_);
    auto found = devices_.find(device);
    if (found == devices_.end()) found = devices_.emplace(device, DeviceRecords{}).first;
    DeviceRecords& records = found->second;
    // Any live mapping that starts before this one ends and ends after it
    // starts overlaps it; starts further back than the longest mapping
    // cannot reach it.
    const std::uint64_t first = addr.value();
    const std::uint64_t end = first + size;
    // Coherent buffers are not checked: mapping part of one for streaming
    // is legal (and common in tests); streaming mappings must not overlap.
    for (auto it = records.live.lower_bound(end);
         kind != MappingKind::coherent && it != records.live.begin();) {
        --it;
        if (it->first + records.largest <= first) break;
        if (it->second.kind == MappingKind::coherent) continue;
        if (it->first + it->second.size > first) {
            report(Problem::overlapping_mapping, device,
                   std::string(to_string(kind)) + " of " + hex(first) + " (" +
                       std::to_string(size) + " bytes) at " + site_text(site) + " overlaps the " +
                       std::string(to_string(it->second.kind)) + " of " + hex(it->first) + " (" +
                       std::to_string(it->second.size) + " bytes) made at " +
                       site_text(it->second.site));
            break;
        }
    }
    records.live.emplace(first, Entry{kind, size, dir, site});
    records.largest = std::max(records.largest, size);
    if (auto r = records.recent_set.find(first); r != records.recent_set.end()) {
        records.recent_set.erase(r);  // the address is live again; its deque entry ages out
    }
}

void DmaDebug::remember_unmapped(DeviceRecords& records, std::uint64_t addr) {
    records.recent.push_back(addr);
    records.recent_set.insert(addr);
    if (records.recent.size() > kHistory) {
        auto oldest = records.recent_set.find(records.recent.front());
        if (oldest != records.recent_set.end()) records.recent_set.erase(oldest);
        records.recent.pop_front();
    }
}

bool DmaDebug::record_unmap(MappingKind kind, const std::string& device, DmaAddr addr,
                            std::size_t size, DmaDirection dir, mem::CallSite site) {
    std::lock_guard lock(mutex_);
    auto found = devices_.find(device);
    if (found == devices_.end()) return true;
    DeviceRecords& records = found->second;
    auto [first, last] = records.live.equal_range(addr.value());
    // The record of exactly this mapping: same size and direction (the table
    // matched those); prefer one of the same kind.
    auto match = records.live.end();
    for (auto it = first; it != last; ++it) {
        if (it->second.size != size || it->second.dir != dir) continue;
        if (match == records.live.end() || it->second.kind == kind) match = it;
    }
    if (match == records.live.end()) return true;
    bool clean = true;
    if (match->second.kind != kind) {
        report(Problem::kind_mismatch, device,
               hex(addr.value()) + " was made by " + std::string(to_string(match->second.kind)) +
                   " but released by the " + std::string(to_string(kind)) + " call at " +
                   site_text(site) + "; mapped at " + site_text(match->second.site));
        clean = false;
    }
    records.live.erase(match);
    remember_unmapped(records, addr.value());
    return clean;
}

void DmaDebug::explain_refused_unmap(MappingKind kind, const std::string& device, DmaAddr addr,
                                     std::size_t size, DmaDirection dir, mem::CallSite site) {
    std::lock_guard lock(mutex_);
    const std::string call = std::string(to_string(kind)) + " unmap of " + hex(addr.value()) +
                             " (" + std::to_string(size) + " bytes, " +
                             std::string(to_string(dir)) + ") at " + site_text(site) + " refused";
    auto found = devices_.find(device);
    if (found != devices_.end()) {
        DeviceRecords& records = found->second;
        auto [first, last] = records.live.equal_range(addr.value());
        while (first != last && first->second.kind == MappingKind::coherent) ++first;
        if (first != last) {
            const Entry& entry = first->second;
            const bool size_differs = entry.size != size;
            report(size_differs ? Problem::size_mismatch : Problem::direction_mismatch, device,
                   call + ": the live mapping there has " + std::to_string(entry.size) +
                       " bytes, " + std::string(to_string(entry.dir)) + ", made at " +
                       site_text(entry.site));
            return;
        }
        if (records.recent_set.count(addr.value()) != 0) {
            report(Problem::double_unmap, device, call + ": it was unmapped already");
            return;
        }
    }
    report(Problem::unmap_never_mapped, device, call + ": no mapping of this device starts there");
}

void DmaDebug::report_sync(Problem problem, const std::string& device, const std::string& what,
                           mem::CallSite site) {
    std::lock_guard lock(mutex_);
    report(problem, device, what + " at " + site_text(site));
}

std::size_t DmaDebug::check_device_close(const std::string& device) {
    std::lock_guard lock(mutex_);
    auto found = devices_.find(device);
    if (found == devices_.end()) return 0;
    std::size_t leaked = 0;
    for (const auto& [first, entry] : found->second.live) {
        report(Problem::leaked_at_close, device,
               std::string(to_string(entry.kind)) + " of " + std::to_string(entry.size) +
                   " bytes at " + hex(first) + " (" + std::string(to_string(entry.dir)) +
                   ") made at " + site_text(entry.site));
        ++leaked;
    }
    devices_.erase(found);
    return leaked;
}

std::vector<DmaDebug::Report> DmaDebug::reports() const {
    std::lock_guard lock(mutex_);
    return reports_;
}

std::size_t DmaDebug::report_count(Problem problem) const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(
        reports_.begin(), reports_.end(), [&](const Report& r) { return r.problem == problem; }));
}

std::size_t DmaDebug::live_mappings() const {
    std::lock_guard lock(mutex_);
    std::size_t total = 0;
    for (const auto& [name, records] : devices_) total += records.live.size();
    return total;
}

}  // namespace dmakit::dma
