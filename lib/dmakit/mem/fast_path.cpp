#include <dmakit/mem/fast_path.hpp>

#include <dmakit/internal/asan.hpp>

namespace dmakit::mem::fast_path {

constinit thread_local ThreadCacheSlots tls_thread_cache_slots{};

void asan_poison_cached(const void* p, std::size_t n) noexcept { asan_poison(p, n); }

void asan_unpoison_cached(const void* p, std::size_t n) noexcept { asan_unpoison(p, n); }

}  // namespace dmakit::mem::fast_path
