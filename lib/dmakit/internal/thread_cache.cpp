#include <dmakit/internal/thread_cache.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <new>
#include <vector>

namespace dmakit::mem {
namespace detail {

struct ThreadCacheControl {
    std::mutex mutex;
    void* owner;  // null once retired
    ThreadCacheOwner::FlushFn flush;
    std::atomic<std::size_t> cache_bytes{0};
    std::vector<ThreadCache*> caches;  // every thread's cache for this owner
};

}  // namespace detail

namespace {

using detail::ThreadCacheControl;

using fast_path::tls_thread_cache_slots;

// The calling thread's cache that is empty and full at once: returned when
// caching is disabled or impossible (allocation failure, thread shutting down).
ThreadCache* disabled_cache() noexcept { return &tls_thread_cache_slots.none; }

// Unique for the life of the process, so a slot left behind by a destroyed
// owner can never be mistaken for a new one. The only process-wide state in
// the allocators, and it holds no memory.
std::atomic<std::uint64_t> next_owner_id{1};

std::size_t cache_allocation_bytes(std::uint32_t capacity) {
    return sizeof(ThreadCache) + capacity * sizeof(void*);
}

ThreadCache* new_cache(std::uint32_t capacity) noexcept {
    void* raw = ::operator new(cache_allocation_bytes(capacity), std::align_val_t{alignof(ThreadCache)},
                               std::nothrow);
    if (raw == nullptr) return nullptr;
    auto* cache = new (raw) ThreadCache;
    cache->capacity = capacity;
    return cache;
}

void delete_cache(ThreadCache* cache) noexcept {
    cache->~ThreadCache();
    ::operator delete(cache, std::align_val_t{alignof(ThreadCache)});
}

// Per-thread list of every cache the thread owns; flushes them at thread exit.
class ThreadCacheRegistry {
public:
    struct Entry {
        std::uint64_t owner_id;
        std::shared_ptr<ThreadCacheControl> control;
        ThreadCache* cache;
    };

    ~ThreadCacheRegistry() {
        for (auto& slot : tls_thread_cache_slots.slots) slot = {0, nullptr};
        for (Entry& entry : entries_) release(entry);
        entries_.clear();
        dead_ = true;
    }

    static ThreadCacheRegistry* current() noexcept {
        // After this thread's registry is destroyed (thread exit runs other
        // thread_local destructors in some order), caching is off.
        if (dead_) return nullptr;
        return &instance_;
    }

    Entry* find(std::uint64_t id) noexcept {
        for (Entry& entry : entries_) {
            if (entry.owner_id == id) return &entry;
        }
        return nullptr;
    }

    ThreadCache* add(std::uint64_t id, const std::shared_ptr<ThreadCacheControl>& control,
                     std::uint32_t capacity) noexcept {
        prune_retired();
        ThreadCache* cache = new_cache(capacity);
        if (cache == nullptr) return nullptr;
        try {
            entries_.push_back(Entry{id, control, cache});
        } catch (...) {
            delete_cache(cache);
            return nullptr;
        }
        try {
            std::lock_guard lock(control->mutex);
            control->caches.push_back(cache);
        } catch (...) {
            entries_.pop_back();
            delete_cache(cache);
            return nullptr;
        }
        control->cache_bytes.fetch_add(cache_allocation_bytes(capacity), std::memory_order_relaxed);
        return cache;
    }

private:
    static void release(Entry& entry) noexcept {
        {
            std::lock_guard lock(entry.control->mutex);
            if (entry.control->owner != nullptr) {
                entry.control->flush(entry.control->owner, *entry.cache);
            }
            entry.control->cache_bytes.fetch_sub(cache_allocation_bytes(entry.cache->capacity),
                                                 std::memory_order_relaxed);
            auto& caches = entry.control->caches;
            caches.erase(std::remove(caches.begin(), caches.end(), entry.cache), caches.end());
        }
        delete_cache(entry.cache);
    }

    void prune_retired() noexcept {
        for (std::size_t i = 0; i < entries_.size();) {
            bool retired;
            {
                std::lock_guard lock(entries_[i].control->mutex);
                retired = entries_[i].control->owner == nullptr;
            }
            if (!retired) {
                ++i;
                continue;
            }
            auto& slot = tls_thread_cache_slots
                             .slots[entries_[i].owner_id % fast_path::kThreadCacheSlots];
            if (slot.owner_id == entries_[i].owner_id) slot = {0, nullptr};
            release(entries_[i]);
            entries_[i] = std::move(entries_.back());
            entries_.pop_back();
        }
    }

    std::vector<Entry> entries_;
    static thread_local ThreadCacheRegistry instance_;
    static constinit thread_local bool dead_;
};

thread_local ThreadCacheRegistry ThreadCacheRegistry::instance_;
constinit thread_local bool ThreadCacheRegistry::dead_ = false;

}  // namespace

ThreadCacheOwner::ThreadCacheOwner(void* owner, FlushFn flush, std::uint32_t capacity)
    : capacity_(capacity),
      control_(std::make_shared<ThreadCacheControl>()) {
    key_.id = next_owner_id.fetch_add(1, std::memory_order_relaxed);
    key_.slot = static_cast<std::uint32_t>(key_.id % fast_path::kThreadCacheSlots);
    control_->owner = owner;
    control_->flush = flush;
}

ThreadCacheOwner::~ThreadCacheOwner() { retire(); }

void ThreadCacheOwner::retire() noexcept {
    std::lock_guard lock(control_->mutex);
    control_->owner = nullptr;
}

std::size_t ThreadCacheOwner::metadata_bytes() const noexcept {
    return control_->cache_bytes.load(std::memory_order_relaxed);
}

std::size_t ThreadCacheOwner::cached_items() const noexcept {
    std::lock_guard lock(control_->mutex);
    std::size_t items = 0;
    for (ThreadCache* cache : control_->caches) items += cache->count_from_other_thread();
    return items;
}

ThreadCache* ThreadCacheOwner::local_slow() noexcept {
    if (capacity_ == 0) return disabled_cache();
    ThreadCacheRegistry* registry = ThreadCacheRegistry::current();
    if (registry == nullptr) return disabled_cache();
    ThreadCache* cache = nullptr;
    if (auto* entry = registry->find(key_.id)) {
        cache = entry->cache;
    } else {
        cache = registry->add(key_.id, control_, capacity_);
        if (cache == nullptr) return disabled_cache();
    }
    tls_thread_cache_slots.slots[key_.slot] = {key_.id, cache};
    return cache;
}

void ThreadCacheOwner::flush_local() noexcept {
    ThreadCacheRegistry* registry = ThreadCacheRegistry::current();
    if (registry == nullptr) return;
    auto* entry = registry->find(key_.id);
    if (entry == nullptr) return;
    std::lock_guard lock(control_->mutex);
    if (control_->owner != nullptr) control_->flush(control_->owner, *entry->cache);
}

}  // namespace dmakit::mem
