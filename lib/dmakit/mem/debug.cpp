#include <dmakit/mem/debug.hpp>

#include <dmakit/support/log.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dmakit::mem {

std::string_view to_string(DebugEvent event) noexcept {
    switch (event) {
        case DebugEvent::double_free: return "double free";
        case DebugEvent::invalid_free: return "invalid free";
        case DebugEvent::red_zone_overwritten: return "red zone overwritten";
        case DebugEvent::modified_after_free: return "object modified after free";
    }
    return "unknown";
}

void poison_object(void* object, std::size_t size) noexcept {
    if (size == 0) return;
    auto* bytes = static_cast<std::uint8_t*>(object);
    std::memset(bytes, kPoisonFree, size - 1);
    bytes[size - 1] = kPoisonEnd;
}

std::size_t first_unpoisoned(const void* object, std::size_t size) noexcept {
    const auto* bytes = static_cast<const std::uint8_t*>(object);
    for (std::size_t i = 0; i + 1 < size; ++i) {
        if (bytes[i] != kPoisonFree) return i;
    }
    if (size > 0 && bytes[size - 1] != kPoisonEnd) return size - 1;
    return size;
}

void fill_red_zone(void* zone, std::size_t size) noexcept { std::memset(zone, kRedZoneByte, size); }

std::size_t first_red_zone_change(const void* zone, std::size_t size) noexcept {
    const auto* bytes = static_cast<const std::uint8_t*>(zone);
    for (std::size_t i = 0; i < size; ++i) {
        if (bytes[i] != kRedZoneByte) return i;
    }
    return size;
}

void report_detection(const Logger& logger, const DebugOptions& options, DebugEvent event,
                      std::string_view cache, const void* object, const std::string& detail) {
    char where[32];
    std::snprintf(where, sizeof where, "%p", object);
    std::string message = "slab cache '" + std::string(cache) + "': " +
                          std::string(to_string(event)) + " of object " + where + ": " + detail;
    logger.error(message);
    if (options.handler) {
        options.handler(DebugReport{event, std::string(cache), object, std::move(message)});
        return;
    }
    if (options.abort_on_detection) std::abort();
}

}  // namespace dmakit::mem
