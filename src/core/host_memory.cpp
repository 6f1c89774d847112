// kiln::host_memory: pooled host blocks; page-locked ones are pinned off the caller's path, within a bound.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/backend.hpp"
#include "core/host_pool.hpp"
#include "core/settings.hpp"
#include "core/thread_pool.hpp"
#include "kiln/kiln.hpp"

namespace kiln {
namespace detail {
namespace {

using pool_clock = std::chrono::steady_clock;

// Runs in flight (see run_scope) and the last sign of activity: the end of the last run, or
// the last pin request, which comes from a call whose run is about to start (its result block
// is taken before its run_scope), so that a pin never starts just ahead of that run.
std::atomic<int> runs_in_flight{0};
std::atomic<pool_clock::rep> last_activity{0};

bool runs_quiet() {
  if (runs_in_flight.load() > 0) return false;
  const auto since = pool_clock::now().time_since_epoch().count() - last_activity.load();
  return since >= std::chrono::duration_cast<pool_clock::duration>(std::chrono::milliseconds(run_quiet_ms)).count();
}

constexpr std::size_t huge_page = std::size_t{2} << 20;
constexpr std::size_t gib = std::size_t{1} << 30;

constexpr std::size_t alignment = 64;

// Rounds up to a size class: 64-byte steps for small blocks; 2 MiB steps up to 16 MiB, then
// eighths of the power of two, so a pooled block serves requests up to 12.5% smaller and
// repeated calls of one size always hit.
std::size_t size_class(std::size_t bytes) {
  if (bytes < host_pool_block_min) return (bytes + alignment - 1) / alignment * alignment;
  if (bytes <= 8 * huge_page) return (bytes + huge_page - 1) / huge_page * huge_page;
  std::size_t pow = huge_page;
  while (pow * 2 < bytes) pow *= 2;
  const std::size_t step = pow / 8;
  return (bytes + step - 1) / step * step;
}

std::size_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page);
}

// The smaller of 1/8 of physical memory and `cap`; 1 GiB where the size of memory is unknown.
std::size_t eighth_of_memory(std::size_t cap) {
  const std::size_t phys = physical_memory();
  return phys == 0 ? gib : std::min(phys / 8, cap);
}

// A non-negative decimal integer from the environment; `fallback` when unset or not one.
std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v || *v == '-' || *v == '+') return fallback;
  char* end = nullptr;
  errno = 0;
  const unsigned long long x = std::strtoull(v, &end, 10);
  if (errno != 0 || *end != '\0') return fallback;
  return x;
}

// Set once the pool is destroyed (static destruction): a block given back later, by a
// destructor that runs after the pool's, is freed (ordinary) or left to the OS (pinned: the
// allocator that pinned it may be gone), and allocation falls back to ordinary memory. A plain
// atomic of static storage stays readable after every destructor has run.
std::atomic<bool> pool_gone{false};

// Fresh blocks from this size on are first touched on every worker before they are handed out.
// Why: a result kept alive by its caller leaves the pool nothing to reuse, and the first write to
// each page of a fresh block maps and zeroes it; written by one thread, or by threads sharing 2 MiB
// pages (the cpu backend's 128 KiB grains, two staging chunks a page), that costs 14-38 ms for
// 256 MiB on the H200 machine's 16-thread host, against 4.0 ms on all threads, each on its own
// huge pages (kiln_first_touch; docs/BENCHMARKS.md, DQ). madvise(MADV_POPULATE_WRITE) is slower
// there from several threads (29 ms), so the pages are written. Workers busy with another run
// join once they finish their part of it; the caller starts at once.
constexpr std::size_t first_touch_min = 4 * huge_page;

void first_touch(void* p, std::size_t capacity) {
  auto* bytes = static_cast<volatile unsigned char*>(p);
  const std::size_t page = static_cast<std::size_t>(std::max(sysconf(_SC_PAGE_SIZE), 1L));
  const std::size_t pages = (capacity + huge_page - 1) / huge_page;
  auto touch = [&](std::size_t b, std::size_t e) {
    const std::size_t end = std::min(capacity, e * huge_page);
    for (std::size_t o = b * huge_page; o < end; o += page) bytes[o] = 0;
  };
  // The worker pool outlives the host pool (host_pool's constructor builds it first) but not every
  // destructor that runs after both: once the host pool is gone, the block's writer faults its
  // pages in itself. A worker pool that cannot queue the job (no memory for it, no thread)
  // throws; the caller then touches the pages alone rather than lose the block.
  if (pool_gone.load()) return;
  try {
    parallel_for(pages, 1, touch);
  } catch (...) {
    touch(0, pages);
  }
}

// Ordinary memory for a pooled block: 2 MiB aligned, with transparent huge pages unless
// KILN_HUGE_PAGES=0 (core/settings.hpp), first touched on every worker when large.
void* ordinary_block(std::size_t capacity) {
  void* p = std::aligned_alloc(huge_page, capacity);
  if (!p) return nullptr;
  // Fewer, larger pages: first-touch faults are most of the cost of fresh memory.
  if (current_settings().huge_pages) (void)madvise(p, capacity, MADV_HUGEPAGE);
  if (capacity >= first_touch_min) first_touch(p, capacity);
  return p;
}

// The pool. Callers never pin on allocate(): a block comes from the cache (a pinned one first) or
// is fresh ordinary memory, and a miss asks the pool thread to pin a block of that size class for
// the next call, while pinned bytes stay within the bound. The same thread releases cached blocks
// left unused for the idle time.
class host_pool {
 public:
  static host_pool& get() {
    static host_pool p;
    return p;
  }

  // The registry is built first so that it outlives the pool, whose destructor unpins blocks
  // through the CUDA backend; its destructor is then registered before the pool's and runs after.
  // The worker pool is built first of all (worker_count()), so that it is destroyed last: fresh
  // blocks are first touched on it (first_touch) as long as this pool lives.
  host_pool() : cuda_(((void)worker_count(), backend_of(backend_kind::cuda))) {
    install_locked(default_host_pool_settings());
  }

  host_pool(const host_pool&) = delete;
  host_pool& operator=(const host_pool&) = delete;

  ~host_pool() {
    pool_gone.store(true);
    stop_thread();
    std::vector<std::pair<std::size_t, cached>> blocks;
    {
      std::lock_guard<std::mutex> lock(m_);
      blocks.assign(free_.begin(), free_.end());
      free_.clear();
    }
    for (auto& [cap, b] : blocks) release(b.p, b.pinned, unpin_);
  }

  struct block {
    void* p;
    bool pinned;
  };

  // `pin_now`: where no pinned block of the class is free, pin one on this thread (within the
  // bound) instead of handing out ordinary memory; for callers keeping the block for many runs.
  result<block> take(std::size_t capacity, bool pin_now) {
    std::unique_lock<std::mutex> lock(m_);
    in_use_ += capacity;
    if (auto b = take_cached_locked(capacity, /*pinned_only=*/pin_now)) {
      if (!b->pinned) request_pin_locked(capacity);
      return *b;
    }
    if (!pin_now) {
      request_pin_locked(capacity);
    } else if (pin_allowed_locked(capacity)) {
      pinned_total_ += capacity;
      auto pin = pin_;
      lock.unlock();
      void* p = pin(capacity);
      lock.lock();
      if (p) {
        ++pins_;
        return block{p, true};
      }
      pinned_total_ -= capacity;
      no_pins_until_ = pool_clock::now() + idle_;
    }
    if (pin_now) {
      // Nothing could be pinned: an ordinary block then, as allocate() would give.
      if (auto b = take_cached_locked(capacity, false)) return *b;
    }
    lock.unlock();
    if (void* p = ordinary_block(capacity)) return block{p, false};
    lock.lock();
    in_use_ -= capacity;
    return make_error(errc::out_of_memory, "cannot allocate " + std::to_string(capacity) + " bytes of host memory");
  }

  void give(block b, std::size_t capacity) {
    {
      std::lock_guard<std::mutex> lock(m_);
      in_use_ -= capacity;
      // Pinned blocks are always kept: the bound on them already holds, and unpinning on the
      // caller's path would cost what pinning does.
      if (b.pinned || ordinary_cached_ + capacity <= ordinary_cache_limit_) {
        const auto now = pool_clock::now();
        free_.emplace(capacity, cached{b.p, b.pinned, now});
        (b.pinned ? pinned_cached_ : ordinary_cached_) += capacity;
        if (!ensure_thread_locked()) {
          // No thread can release it later; the destructor will.
        } else if (now + idle_ < wake_at_) {
          cv_.notify_all();
        }
        return;
      }
    }
    std::free(b.p);
  }

  host_pool_stats stats() {
    std::lock_guard<std::mutex> lock(m_);
    host_pool_stats s;
    s.pinned_bytes = pinned_total_;
    s.cached_bytes = pinned_cached_ + ordinary_cached_;
    s.in_use_bytes = in_use_;
    s.pinned_limit = pinned_limit_;
    s.pending_pins = requests_.size() + (pinning_ ? 1 : 0);
    s.pins = pins_;
    s.background_pins = background_pins_;
    return s;
  }

  bool set(host_pool_settings s) {
    std::vector<std::pair<std::size_t, cached>> blocks;
    std::function<void(void*)> old_unpin;
    {
      std::unique_lock<std::mutex> lock(m_);
      if (stopping_) return false;
      idle_cv_.wait(lock, [&] { return !busy_; });
      if (pinned_total_ != pinned_cached_) return false;
      requests_.clear();
      blocks.assign(free_.begin(), free_.end());
      free_.clear();
      pinned_total_ = pinned_cached_ = ordinary_cached_ = 0;
      pins_ = background_pins_ = 0;
      no_pins_until_ = {};
      old_unpin = unpin_;
      install_locked(std::move(s));
      // Busy while the old blocks are released, so that the thread and another set() wait.
      busy_ = true;
      cv_.notify_all();
    }
    for (auto& [cap, b] : blocks) release(b.p, b.pinned, old_unpin);
    {
      std::lock_guard<std::mutex> lock(m_);
      busy_ = false;
    }
    idle_cv_.notify_all();
    return true;
  }

  // Stops and joins the pool thread; blocks it pinned stay cached until the destructor.
  void stop_thread() {
    std::thread t;
    {
      std::lock_guard<std::mutex> lock(m_);
      stopping_ = true;
      t = std::move(thread_);
    }
    cv_.notify_all();
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
    else if (t.joinable()) t.detach();
  }

 private:
  struct cached {
    void* p;
    bool pinned;
    pool_clock::time_point since;  // when it was given back (or pinned)
  };

  static void release(void* p, bool pinned, const std::function<void(void*)>& unpin) {
    if (pinned)
      unpin(p);
    else
      std::free(p);
  }

  void install_locked(host_pool_settings s) {
    pinned_limit_ = s.pinned_limit;
    ordinary_cache_limit_ = s.ordinary_cache_limit;
    idle_ = s.idle;
    if (s.pin && s.unpin) {
      pin_ = std::move(s.pin);
      unpin_ = std::move(s.unpin);
    } else {
      // Pinned memory only where CUDA can run; the backend probes its devices once.
      backend* cuda = &cuda_;
      pin_ = [cuda](std::size_t bytes) { return cuda->allocate_pinned(bytes); };
      unpin_ = [cuda](void* p) { cuda->free_pinned(p); };
    }
  }

  // The most recently given back block of exactly this class, a pinned one first (it makes the
  // run direct; the other is still kept for when no pinned one is free); none if there is none.
  std::optional<block> take_cached_locked(std::size_t capacity, bool pinned_only) {
    auto [lo, hi] = free_.equal_range(capacity);
    auto best = free_.end();
    for (auto it = lo; it != hi; ++it) {
      if (pinned_only && !it->second.pinned) continue;
      if (best == free_.end() || (it->second.pinned && !best->second.pinned) ||
          (it->second.pinned == best->second.pinned && it->second.since > best->second.since))
        best = it;
    }
    if (best == free_.end()) return std::nullopt;
    const block b{best->second.p, best->second.pinned};
    (b.pinned ? pinned_cached_ : ordinary_cached_) -= capacity;
    free_.erase(best);
    return b;
  }

  bool has_free_pinned_locked(std::size_t capacity) const {
    auto [lo, hi] = free_.equal_range(capacity);
    return std::any_of(lo, hi, [](const auto& e) { return e.second.pinned; });
  }

  bool pin_allowed_locked(std::size_t capacity) const {
    return pinned_limit_ > 0 && pinned_total_ + capacity <= pinned_limit_ && pool_clock::now() >= no_pins_until_;
  }

  // Queues a pin of this class for the pool thread, unless one is queued or under way, the bound
  // leaves no room, or pinning failed recently.
  void request_pin_locked(std::size_t capacity) {
    if (!pin_allowed_locked(capacity) || requests_.count(capacity) || pinning_ == capacity) return;
    if (!ensure_thread_locked()) return;
    last_activity.store(pool_clock::now().time_since_epoch().count());
    requests_.insert(capacity);
    cv_.notify_all();
  }

  // Starts the pool thread on first need; false once it is stopping.
  bool ensure_thread_locked() {
    if (stopping_) return false;
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    return true;
  }

  void loop() {
    std::unique_lock<std::mutex> lock(m_);
    while (!stopping_) {
      if (busy_) {
        // set() is releasing the old blocks.
        idle_cv_.wait(lock, [&] { return !busy_ || stopping_; });
        continue;
      }
      if (!requests_.empty()) {
        pin_one(lock);
        continue;
      }
      if (release_idle(lock)) continue;
      auto next = pool_clock::time_point::max();
      for (const auto& [cap, b] : free_) next = std::min(next, b.since + idle_);
      wake_at_ = next;
      if (next == pool_clock::time_point::max())
        cv_.wait(lock);
      else
        cv_.wait_until(lock, next);
      // Awake: whatever changed meanwhile is looked at before the next wait.
      wake_at_ = pool_clock::time_point::min();
    }
  }

  void pin_one(std::unique_lock<std::mutex>& lock) {
    // Not beside a run (run_scope): the request stays queued until the engine rests.
    while (!stopping_ && !busy_ && !runs_quiet()) cv_.wait_for(lock, std::chrono::milliseconds(10));
    if (stopping_ || busy_ || requests_.empty()) return;
    const std::size_t capacity = *requests_.begin();
    requests_.erase(requests_.begin());
    // A block of the class may have come back meanwhile, or the bound filled up.
    if (has_free_pinned_locked(capacity) || !pin_allowed_locked(capacity)) return;
    pinned_total_ += capacity;
    pinning_ = capacity;
    busy_ = true;
    auto pin = pin_;
    lock.unlock();
    void* p = pin(capacity);
    lock.lock();
    pinning_ = 0;
    busy_ = false;
    idle_cv_.notify_all();
    if (!p) {
      // No usable device, or memory is short: not again until the idle time has passed.
      pinned_total_ -= capacity;
      no_pins_until_ = pool_clock::now() + idle_;
      return;
    }
    ++pins_;
    ++background_pins_;
    free_.emplace(capacity, cached{p, true, pool_clock::now()});
    pinned_cached_ += capacity;
    // The CUDA runtime tears itself down at exit through atexit handlers registered when it
    // starts, which may be during this first pin; a hook registered after it runs before that
    // teardown, so the thread is stopped before CUDA goes, never in the middle of a pin.
    std::call_once(exit_hook_, [] { std::atexit([] { host_pool::get().stop_thread(); }); });
  }

  // Releases the cached blocks unused for the idle time; whether there were any.
  bool release_idle(std::unique_lock<std::mutex>& lock) {
    const auto now = pool_clock::now();
    std::vector<cached> expired;
    std::size_t pinned_bytes = 0;
    for (auto it = free_.begin(); it != free_.end();) {
      if (it->second.since + idle_ > now) {
        ++it;
        continue;
      }
      if (it->second.pinned) {
        pinned_bytes += it->first;
        pinned_cached_ -= it->first;
      } else {
        ordinary_cached_ -= it->first;
      }
      expired.push_back(it->second);
      it = free_.erase(it);
    }
    if (expired.empty()) return false;
    busy_ = true;
    auto unpin = unpin_;
    lock.unlock();
    for (const auto& b : expired) release(b.p, b.pinned, unpin);
    lock.lock();
    // Counted as pinned until unpinned, so that the bound holds while they go.
    pinned_total_ -= pinned_bytes;
    busy_ = false;
    idle_cv_.notify_all();
    return true;
  }

  backend& cuda_;
  std::mutex m_;
  std::condition_variable cv_;       // wakes the pool thread
  std::condition_variable idle_cv_;  // busy_ went false
  std::thread thread_;
  std::once_flag exit_hook_;

  std::multimap<std::size_t, cached> free_;
  std::set<std::size_t> requests_;  // size classes to pin, each once
  std::size_t pinning_ = 0;         // the class the thread is pinning now, 0 if none
  bool busy_ = false;               // the thread (or set()) pins or releases outside the lock
  bool stopping_ = false;
  pool_clock::time_point wake_at_ = pool_clock::time_point::min();  // the sleeping thread's deadline
  pool_clock::time_point no_pins_until_{};

  std::size_t pinned_total_ = 0;  // in use + cached + being pinned or unpinned
  std::size_t pinned_cached_ = 0;
  std::size_t ordinary_cached_ = 0;
  std::size_t in_use_ = 0;
  std::uint64_t pins_ = 0;
  std::uint64_t background_pins_ = 0;

  std::size_t pinned_limit_ = 0;
  std::size_t ordinary_cache_limit_ = 0;
  std::chrono::milliseconds idle_{0};
  std::function<void*(std::size_t)> pin_;
  std::function<void(void*)> unpin_;
};

}  // namespace

host_pool_settings default_host_pool_settings() {
  host_pool_settings s;
  s.pinned_limit = env_number("KILN_PINNED_LIMIT", eighth_of_memory(8 * gib));
  s.ordinary_cache_limit = eighth_of_memory(4 * gib);
  // At most about 24 days, so that deadlines computed from it cannot overflow.
  s.idle = std::chrono::milliseconds(std::min<std::uint64_t>(env_number("KILN_HOST_POOL_IDLE_MS", 2000), 1u << 31));
  return s;
}

run_scope::run_scope() { runs_in_flight.fetch_add(1); }

run_scope::~run_scope() {
  last_activity.store(pool_clock::now().time_since_epoch().count());
  runs_in_flight.fetch_sub(1);
}

host_pool_stats host_pool_statistics() {
  if (pool_gone.load()) return {};
  return host_pool::get().stats();
}

bool set_host_pool_settings(host_pool_settings s) {
  if (pool_gone.load()) return false;
  return host_pool::get().set(std::move(s));
}

namespace {

struct raw_block {
  void* p;
  std::size_t capacity;
  bool pinned;
};

result<raw_block> allocate_block(std::size_t elements, bool pin_now) {
  if (elements > (std::size_t{1} << 40))
    return make_error(errc::out_of_memory, "cannot allocate " + std::to_string(elements) + " int64 elements");
  const std::size_t capacity = size_class(std::max<std::size_t>(elements, 1) * sizeof(std::int64_t));
  void* p = nullptr;
  if (capacity < host_pool_block_min) {
    p = std::aligned_alloc(alignment, capacity);
  } else if (pool_gone.load()) {
    p = ordinary_block(capacity);
  } else {
    auto b = host_pool::get().take(capacity, pin_now);
    if (!b) return b.err();
    return raw_block{b->p, capacity, b->pinned};
  }
  if (!p) return make_error(errc::out_of_memory, "cannot allocate " + std::to_string(capacity) + " bytes of host memory");
  return raw_block{p, capacity, false};
}

}  // namespace
}  // namespace detail

result<host_memory> host_memory::allocate(std::size_t elements) { return make(elements, false); }

result<host_memory> host_memory::allocate_pinned(std::size_t elements) { return make(elements, true); }

result<host_memory> host_memory::make(std::size_t elements, bool pin_now) {
  auto b = detail::allocate_block(elements, pin_now);
  if (!b) return b.err();
  host_memory m;
  m.data_ = static_cast<std::int64_t*>(b->p);
  m.size_ = elements;
  m.capacity_bytes_ = b->capacity;
  m.pinned_ = b->pinned;
  return m;
}

host_memory::~host_memory() {
  if (!data_) return;
  if (capacity_bytes_ < detail::host_pool_block_min)
    std::free(data_);
  else if (!detail::pool_gone.load())
    detail::host_pool::get().give({data_, pinned_}, capacity_bytes_);
  else if (!pinned_)
    std::free(data_);
  // else: after the pool, pinned memory is left to the OS at exit.
}

host_memory::host_memory(host_memory&& o) noexcept
    : data_(o.data_), size_(o.size_), capacity_bytes_(o.capacity_bytes_), pinned_(o.pinned_) {
  o.data_ = nullptr;
}

host_memory& host_memory::operator=(host_memory&& o) noexcept {
  if (this != &o) {
    host_memory old(std::move(*this));
    data_ = o.data_;
    size_ = o.size_;
    capacity_bytes_ = o.capacity_bytes_;
    pinned_ = o.pinned_;
    o.data_ = nullptr;
  }
  return *this;
}

}  // namespace kiln
