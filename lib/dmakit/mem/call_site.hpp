// CallSite: where an allocation was asked for, for the leak tracker.
//
// Public allocation calls take `CallSite site = std::source_location::current()`
// as their last argument, so C++ callers record their own file:line for free
// (nothing is computed unless tracking is on). Code that knows the site
// better passes it explicitly: the C layer's macros forward __FILE__ and
// __LINE__ as CallSite{__FILE__, __LINE__}. The file string must outlive the
// allocation (a string literal does).
#pragma once

#include <cstdint>
#include <source_location>
#include <string_view>
#include <type_traits>

namespace dmakit::mem {

// 16 bytes and trivially copyable, so it travels in two registers: the
// inline fast paths never build it in memory, and the compiler keeps the
// constants out of the loop. A C++ site keeps its std::source_location (file,
// line and function); an explicit site keeps a file and a line.
class CallSite {
public:
    constexpr CallSite() noexcept : explicit_file_(""), line_(0) {}
    constexpr CallSite(const char* file, std::uint32_t line) noexcept
        : explicit_file_(file != nullptr ? file : ""), line_(line) {}
    // Implicit: a std::source_location default argument becomes a CallSite.
    constexpr CallSite(const std::source_location& location) noexcept  // NOLINT(google-explicit-constructor)
        : explicit_file_(nullptr), location_(location) {}

    [[nodiscard]] constexpr const char* file() const noexcept {
        return explicit_file_ != nullptr ? explicit_file_ : location_.file_name();
    }
    [[nodiscard]] constexpr std::uint32_t line() const noexcept {
        return explicit_file_ != nullptr ? static_cast<std::uint32_t>(line_) : location_.line();
    }
    // Empty for an explicit site.
    [[nodiscard]] constexpr const char* function() const noexcept {
        return explicit_file_ != nullptr ? "" : location_.function_name();
    }

private:
    const char* explicit_file_;  // null: the site is location_
    union {
        std::uint64_t line_;
        std::source_location location_;
    };
};
static_assert(sizeof(CallSite) == 16 && std::is_trivially_copyable_v<CallSite>);

// What kind of allocation a leak record stands for.
enum class AllocKind : std::uint8_t {
    slab,          // SlabCache::alloc (kmem_cache_alloc)
    kmalloc,       // Kmalloc::kmalloc (kmalloc)
    page,          // BuddyAllocator::alloc_pages (alloc_pages)
    dma_coherent,  // DmaDevice::alloc_coherent (dma_alloc_coherent)
    dma_pool,      // DmaPool::alloc (dma_pool_alloc)
    dma_map,       // DmaDevice::map_single/map_page/map_sg: an IOVA range
};

[[nodiscard]] constexpr std::string_view to_string(AllocKind kind) noexcept {
    switch (kind) {
        case AllocKind::slab: return "slab";
        case AllocKind::kmalloc: return "kmalloc";
        case AllocKind::page: return "page";
        case AllocKind::dma_coherent: return "dma_coherent";
        case AllocKind::dma_pool: return "dma_pool";
        case AllocKind::dma_map: return "dma_map";
    }
    return "unknown";
}

}  // namespace dmakit::mem
