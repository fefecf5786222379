// Slab debug mode: free poisoning, red zones, double/invalid-free detection.
//
// Like SLUB's slub_debug=FZP. Free objects are filled with a poison pattern
// that is checked when they are handed out again (a write after free shows);
// each object is framed by red-zone bytes that are checked when it is freed
// (an overflow shows). The red-zone bytes sit next to the object because they
// are checked data; what says where they are is the cache layout, out of band.
//
// A detection is logged at error level through the Logger, then passed to
// the DebugHandler if one is set (tests observe detections this way), else
// the process aborts when abort_on_detection is true (the default: memory is
// known corrupt), else the operation is refused and the program continues.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace dmakit {
class Logger;
}

namespace dmakit::mem {

enum class DebugEvent {
    double_free,           // freeing an object that is already free
    invalid_free,          // freeing a pointer that is not an object of this cache
    red_zone_overwritten,  // bytes around an object changed (found at free or alloc)
    modified_after_free,   // poison of a free object changed (found at alloc)
};

[[nodiscard]] std::string_view to_string(DebugEvent event) noexcept;

struct DebugReport {
    DebugEvent event;
    std::string cache;     // cache name
    const void* object;    // the object (or pointer) concerned
    std::string message;   // the full text that was logged
};

using DebugHandler = std::function<void(const DebugReport&)>;

struct DebugOptions {
    bool poison = true;    // ignored for caches with a constructor (objects keep state)
    bool red_zone = true;
    bool abort_on_detection = true;
    DebugHandler handler;  // when set, called instead of aborting
};

inline constexpr std::uint8_t kPoisonFree = 0x6b;  // free object bytes
inline constexpr std::uint8_t kPoisonEnd = 0xa5;   // last byte of a free object
inline constexpr std::uint8_t kRedZoneByte = 0xbb;
inline constexpr std::size_t kMinRedZone = 16;

void poison_object(void* object, std::size_t size) noexcept;
// Offset of the first byte that does not match the poison, or size if intact.
[[nodiscard]] std::size_t first_unpoisoned(const void* object, std::size_t size) noexcept;

void fill_red_zone(void* zone, std::size_t size) noexcept;
// Offset of the first changed red-zone byte, or size if intact.
[[nodiscard]] std::size_t first_red_zone_change(const void* zone, std::size_t size) noexcept;

// Logs a detection and reacts as DebugOptions say.
void report_detection(const Logger& logger, const DebugOptions& options, DebugEvent event,
                      std::string_view cache, const void* object, const std::string& detail);

}  // namespace dmakit::mem
