#include <dmakit/dma/debug.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace dmakit::dma {
namespace {

std::string site_text(const std::source_location& site) {
    if (site.line() == 0) return "unknown call site";
    return std::string(site.file_name()) + ":" + std::to_string(site.line());
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
                          std::size_t size, DmaDirection dir, std::source_location site) {
    std::lock_guard lock(mutex_);
    Key key{device, addr.value()};
    live_[key] = Entry{kind, size, dir, site};
    auto it = std::find(recently_unmapped_.begin(), recently_unmapped_.end(), key);
    if (it != recently_unmapped_.end()) recently_unmapped_.erase(it);
}

bool DmaDebug::check_unmap(MappingKind kind, const std::string& device, DmaAddr addr,
                           std::size_t size, DmaDirection dir, std::source_location site) {
    std::lock_guard lock(mutex_);
    Key key{device, addr.value()};
    auto it = live_.find(key);
    if (it == live_.end()) {
        bool twice = std::find(recently_unmapped_.begin(), recently_unmapped_.end(), key) !=
                     recently_unmapped_.end();
        report(twice ? Problem::double_unmap : Problem::unmap_never_mapped, device,
               std::string(to_string(kind)) + " unmap of " + hex(addr.value()) + " (" +
                   std::to_string(size) + " bytes) at " + site_text(site));
        return false;
    }
    const Entry& entry = it->second;
    bool clean = true;
    const std::string where = " at " + site_text(site) + "; mapped at " + site_text(entry.site);
    if (entry.kind != kind) {
        report(Problem::kind_mismatch, device,
               hex(addr.value()) + " was made by " + std::string(to_string(entry.kind)) +
                   " but released by the " + std::string(to_string(kind)) + " call" + where);
        clean = false;
    }
    if (entry.size != size) {
        report(Problem::size_mismatch, device,
               hex(addr.value()) + " mapped with " + std::to_string(entry.size) +
                   " bytes, unmapped with " + std::to_string(size) + where);
        clean = false;
    }
    if (entry.dir != dir) {
        report(Problem::direction_mismatch, device,
               hex(addr.value()) + " mapped " + std::string(to_string(entry.dir)) +
                   ", unmapped " + std::string(to_string(dir)) + where);
        clean = false;
    }
    live_.erase(it);
    recently_unmapped_.push_back(key);
    if (recently_unmapped_.size() > kHistory) recently_unmapped_.pop_front();
    return clean;
}

std::map<DmaDebug::Key, DmaDebug::Entry>::const_iterator DmaDebug::find_containing(
    const std::string& device, DmaAddr addr) const {
    // The live mapping with the greatest start <= addr for this device.
    auto it = live_.upper_bound(Key{device, addr.value()});
    if (it == live_.begin()) return live_.end();
    --it;
    if (it->first.first != device) return live_.end();
    if (addr.value() - it->first.second >= it->second.size) return live_.end();
    return it;
}

bool DmaDebug::check_sync(const std::string& device, DmaAddr addr, std::size_t size,
                          DmaDirection dir, bool for_cpu, std::source_location site) {
    std::lock_guard lock(mutex_);
    const char* call = for_cpu ? "sync_for_cpu" : "sync_for_device";
    auto it = find_containing(device, addr);
    if (it == live_.end()) {
        report(Problem::sync_never_mapped, device,
               std::string(call) + " of " + hex(addr.value()) + " at " + site_text(site));
        return false;
    }
    const Entry& entry = it->second;
    bool clean = true;
    const std::string where = " at " + site_text(site) + "; mapped at " + site_text(entry.site);
    // A sync must name the direction the mapping was made with; a
    // bidirectional mapping accepts any (kernel/dma/debug.c check_sync).
    if (entry.dir != DmaDirection::bidirectional && dir != entry.dir) {
        report(Problem::sync_wrong_direction, device,
               std::string(call) + "(" + std::string(to_string(dir)) + ") of " +
                   hex(addr.value()) + ", mapped " + std::string(to_string(entry.dir)) + where);
        clean = false;
    }
    std::uint64_t offset = addr.value() - it->first.second;
    if (size > entry.size - offset) {
        report(Problem::sync_out_of_range, device,
               std::string(call) + " of " + std::to_string(size) + " bytes at " +
                   hex(addr.value()) + " runs past the " + std::to_string(entry.size) +
                   "-byte mapping at " + hex(it->first.second) + where);
        clean = false;
    }
    return clean;
}

std::size_t DmaDebug::check_device_close(const std::string& device) {
    std::lock_guard lock(mutex_);
    std::size_t leaked = 0;
    for (auto it = live_.lower_bound(Key{device, 0}); it != live_.end() && it->first.first == device;) {
        report(Problem::leaked_at_close, device,
               std::string(to_string(it->second.kind)) + " of " +
                   std::to_string(it->second.size) + " bytes at " + hex(it->first.second) + " (" +
                   std::string(to_string(it->second.dir)) + ") made at " +
                   site_text(it->second.site));
        it = live_.erase(it);
        ++leaked;
    }
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
    return live_.size();
}

}  // namespace dmakit::dma
