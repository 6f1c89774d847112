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

// Writes a byte of every page of [p, p + capacity) on the workers, each its own 2 MiB pages, until
// `stop()` holds (checked before each 2 MiB page); whether every page was written.
template <class Stop>
bool touch_pages(void* p, std::size_t capacity, Stop stop) {
  auto* bytes = static_cast<volatile unsigned char*>(p);
  const std::size_t page = static_cast<std::size_t>(std::max(sysconf(_SC_PAGE_SIZE), 1L));
  const std::size_t pages = (capacity + huge_page - 1) / huge_page;
  std::atomic<bool> cut{false};
  auto touch = [&](std::size_t b, std::size_t e) {
    for (std::size_t h = b; h < e; ++h) {
      if (stop()) {
        cut.store(true, std::memory_order_relaxed);
        return;
      }
      const std::size_t end = std::min(capacity, (h + 1) * huge_page);
      for (std::size_t o = h * huge_page; o < end; o += page) bytes[o] = 0;
    }
  };
  // The worker pool outlives the host pool (host_pool's constructor builds it first) but not every
  // destructor that runs after both: once the host pool is gone, the block's writer faults its
  // pages in itself. A worker pool that cannot queue the job (no memory for it, no thread)
  // throws; the caller then touches the pages alone rather than lose the block.
  if (pool_gone.load()) return false;
  try {
    parallel_for(pages, 1, touch);
  } catch (...) {
    touch(0, pages);
  }
  return !cut.load();
}

void first_touch(void* p, std::size_t capacity) {
  (void)touch_pages(p, capacity, [] { return false; });
}

// Ordinary memory for a pooled block, its pages not yet touched: 2 MiB aligned, with transparent
// huge pages unless KILN_HUGE_PAGES=0 (core/settings.hpp).
void* untouched_block(std::size_t capacity) {
  void* p = std::aligned_alloc(huge_page, capacity);
  if (!p) return nullptr;
  // Fewer, larger pages: first-touch faults are most of the cost of fresh memory.
  if (current_settings().huge_pages) (void)madvise(p, capacity, MADV_HUGEPAGE);
  return p;
}

// Ordinary memory for a pooled block, first touched on every worker when large.
void* ordinary_block(std::size_t capacity) {
  void* p = untouched_block(capacity);
  if (p && capacity >= first_touch_min) first_touch(p, capacity);
  return p;
}

// Runs begun so far (run_scope): a spare block's request waits for the run of the call that
// made it, so that the spare is prepared after that run rather than beside it.
std::atomic<std::uint64_t> runs_begun{0};

// Whether a spare's request is queued (host_pool::spare_requests_ not empty), for run_scope.
std::atomic<bool> spares_waiting{false};

// The pool. Callers never pin on allocate(): a block comes from the cache (a pinned one first) or
// is fresh ordinary memory, and a miss asks the pool thread to pin a block of that size class for
// the next call, while pinned bytes stay within the bound. The same thread releases cached blocks
// left unused for the idle time, and prepares spare blocks (request_spare_locked).
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
    if (!pin_now && !free_.count(capacity)) {
      // A spare of this class in preparation is the block this call wants: its preparation stops
      // at the pages in hand and it is taken as far as it got (hand_out touches the rest).
      if (preparing_ == capacity) {
        spare_stop_.store(true);
        idle_cv_.wait(lock, [&] { return preparing_ != capacity; });
      }
      // A spare of this class asked for but not begun would begin beside this call, once the
      // run it waits for (an earlier call's) has ended; this call asks for it again once its
      // own block is ready (hand_out, or the fresh block below), so that it waits for this
      // call's run.
      drop_spare_request_locked(capacity);
    }
    if (auto c = take_cached_locked(capacity, /*pinned_only=*/pin_now)) {
      if (!c->pinned) request_pin_locked(capacity);
      return hand_out(lock, *c, capacity);
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
      if (auto c = take_cached_locked(capacity, false)) return hand_out(lock, *c, capacity);
    }
    lock.unlock();
    if (void* p = ordinary_block(capacity)) {
      lock.lock();
      request_spare_locked(capacity);  // a real miss
      return block{p, false};
    }
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
        free_.emplace(capacity, cached{b.p, b.pinned, now, true});
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
    s.pending_spares = spare_requests_.size() + (preparing_ ? 1 : 0);
    s.preparing_bytes = preparing_;
    s.spares = spares_;
    s.spares_cut_short = spares_cut_short_;
    return s;
  }

  bool set(host_pool_settings s) {
    std::vector<std::pair<std::size_t, cached>> blocks;
    std::function<void(void*)> old_unpin;
    {
      std::unique_lock<std::mutex> lock(m_);
      if (stopping_) return false;
      spare_stop_.store(true);  // a spare in preparation stops at the pages in hand
      idle_cv_.wait(lock, [&] { return !busy_; });
      if (pinned_total_ != pinned_cached_) return false;
      requests_.clear();
      spare_requests_.clear();
      spares_waiting.store(false);
      blocks.assign(free_.begin(), free_.end());
      free_.clear();
      pinned_total_ = pinned_cached_ = ordinary_cached_ = 0;
      pins_ = background_pins_ = spares_ = spares_cut_short_ = 0;
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

  // Wakes the pool thread to look at its queues (from run_scope, without the pool's lock: a wake
  // lost to a thread about to wait costs only its next look, at most 10 ms later).
  void wake() { cv_.notify_all(); }

  // Stops and joins the pool thread; blocks it pinned stay cached until the destructor.
  void stop_thread() {
    std::thread t;
    {
      std::lock_guard<std::mutex> lock(m_);
      stopping_ = true;
      spare_stop_.store(true);  // a spare in preparation stops at the pages in hand
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
    pool_clock::time_point since;  // when it was given back (or pinned, or prepared)
    bool touched;                  // every page mapped: all but a spare cut short
    bool spare = false;            // prepared as a spare (prepare_spare), not given back
  };

  // A cached block to the caller: the pages of a spare cut short touched first (outside the
  // lock), then the class's next spare asked for. Spares are asked for once the call's block is
  // ready, fresh blocks too (take), so that a request's quiet time (spare_due_locked) never runs
  // out during the call's own first touch, which takes longer than that on a slow host.
  // Only a spare taken asks for the next one: a caller that drops its results reuses the blocks
  // it gives back, and a spare made for it would only expire and be made again.
  block hand_out(std::unique_lock<std::mutex>& lock, const cached& c, std::size_t capacity) {
    if (!c.touched) {
      lock.unlock();
      first_touch(c.p, capacity);
      lock.lock();
    }
    if (c.spare) request_spare_locked(capacity);
    return block{c.p, c.pinned};
  }

  // A spare's request: the runs begun when it was made, and when.
  struct spare_request {
    std::uint64_t runs;
    pool_clock::time_point at;
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
    spares_on_ = s.spares;
    if (s.pin && s.unpin) {
      pin_ = std::move(s.pin);
      unpin_ = std::move(s.unpin);
      pin_ready_ = [] { return true; };
    } else {
      // Pinned memory only where CUDA can run; the backend probes its devices once.
      backend* cuda = &cuda_;
      pin_ = [cuda](std::size_t bytes) { return cuda->allocate_pinned(bytes); };
      unpin_ = [cuda](void* p) { cuda->free_pinned(p); };
      // Pinned blocks serve CUDA runs alone. A process that has not started CUDA (a `cpu` caller
      // on a GPU host) would pay a context's start on the pool thread (about 400 ms on the H200
      // machine, the pool thread busy and fresh blocks' first touches stalled meanwhile: DZ)
      // and hold its device memory, for blocks no run of its needs.
      pin_ready_ = [cuda] { return cuda->started(); };
    }
  }

  // The most recently given back block of exactly this class, a pinned one first (it makes the
  // run direct; the other is still kept for when no pinned one is free), then one whose pages are
  // all mapped (a spare cut short costs the rest of its first touch); none if there is none.
  std::optional<cached> take_cached_locked(std::size_t capacity, bool pinned_only) {
    auto [lo, hi] = free_.equal_range(capacity);
    auto best = free_.end();
    auto rank = [](const cached& c) { return std::make_pair(c.pinned, c.touched); };
    for (auto it = lo; it != hi; ++it) {
      if (pinned_only && !it->second.pinned) continue;
      if (best == free_.end() || rank(it->second) > rank(best->second) ||
          (rank(it->second) == rank(best->second) && it->second.since > best->second.since))
        best = it;
    }
    if (best == free_.end()) return std::nullopt;
    const cached c = best->second;
    (c.pinned ? pinned_cached_ : ordinary_cached_) -= capacity;
    free_.erase(best);
    return c;
  }

  bool has_free_pinned_locked(std::size_t capacity) const {
    auto [lo, hi] = free_.equal_range(capacity);
    return std::any_of(lo, hi, [](const auto& e) { return e.second.pinned; });
  }

  bool pin_allowed_locked(std::size_t capacity) const {
    return pinned_limit_ > 0 && pinned_total_ + capacity <= pinned_limit_ && pool_clock::now() >= no_pins_until_;
  }

  // Queues a pin of this class for the pool thread, unless one is queued or under way, the bound
  // leaves no room, pinning failed recently, or no CUDA device has been started (pin_ready_).
  void request_pin_locked(std::size_t capacity) {
    if (!pin_allowed_locked(capacity) || requests_.count(capacity) || pinning_ == capacity || !pin_ready_()) return;
    if (!ensure_thread_locked()) return;
    last_activity.store(pool_clock::now().time_since_epoch().count());
    requests_.insert(capacity);
    cv_.notify_all();
  }

  // Spare blocks. A caller that keeps its results leaves the pool nothing to reuse, and a fresh
  // block costs its first touch (the operating system zeroing its pages: 4.0 ms for 256 MiB on
  // the H200 machine's 16 threads, beside a staged CUDA run of 5.8-6.6 ms; docs/BENCHMARKS.md,
  // DQ). So when a call takes a fresh block of a class of first_touch_min or more, or the spare
  // prepared before, the pool thread prepares one (more) of that class while no run is in
  // flight: after the run of the call that asked (or run_quiet_ms after the request, for a call
  // without one), its pages touched on the workers, and the preparation stops at the pages in
  // hand once a run begins or a call wants the block (take). A caller that pauses between calls
  // then finds a block ready; back-to-back calls leave no time for one (their next call renews
  // the request: take). Spares count against the ordinary cache's bound and are released after
  // the idle time like any cached block, so at most one block of a class is held beyond what the
  // caller keeps, for that time.
  void request_spare_locked(std::size_t capacity) {
    if (!spares_on_ || capacity < first_touch_min || stopping_) return;
    if (free_.count(capacity) || spare_requests_.count(capacity) || preparing_ == capacity) return;
    if (ordinary_cached_ + capacity > ordinary_cache_limit_) return;
    if (!ensure_thread_locked()) return;
    spare_requests_.emplace(capacity, spare_request{runs_begun.load(), pool_clock::now()});
    spares_waiting.store(true);
    cv_.notify_all();
  }

  // The class of a spare request that may be prepared now, if any: no run in flight, and one has
  // begun since the request or the request is run_quiet_ms old.
  std::optional<std::size_t> spare_due_locked() const {
    if (spare_requests_.empty() || runs_in_flight.load() > 0) return std::nullopt;
    const auto now = pool_clock::now();
    const std::uint64_t begun = runs_begun.load();
    for (const auto& [cap, r] : spare_requests_)
      if (begun > r.runs || now - r.at >= std::chrono::milliseconds(run_quiet_ms)) return cap;
    return std::nullopt;
  }

  // Forgets the spare request of this class, if any, keeping spares_waiting in step.
  void drop_spare_request_locked(std::size_t capacity) {
    spare_requests_.erase(capacity);
    spares_waiting.store(!spare_requests_.empty());
  }

  void prepare_spare(std::unique_lock<std::mutex>& lock, std::size_t capacity) {
    drop_spare_request_locked(capacity);
    // A block of the class may have come back meanwhile, or the cache filled up.
    if (free_.count(capacity) || ordinary_cached_ + capacity > ordinary_cache_limit_) return;
    preparing_ = capacity;
    busy_ = true;
    spare_stop_.store(stopping_);
    lock.unlock();
    void* p = untouched_block(capacity);
    const bool whole = p && touch_pages(p, capacity, [this] {
      return spare_stop_.load(std::memory_order_relaxed) || runs_in_flight.load(std::memory_order_relaxed) > 0;
    });
    lock.lock();
    preparing_ = 0;
    busy_ = false;
    spare_stop_.store(false);
    if (p && ordinary_cached_ + capacity <= ordinary_cache_limit_) {
      free_.emplace(capacity, cached{p, false, pool_clock::now(), whole, true});
      ordinary_cached_ += capacity;
      ++spares_;
      if (!whole) ++spares_cut_short_;
    } else {
      std::free(p);
    }
    idle_cv_.notify_all();
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
      if (auto spare = spare_due_locked()) {
        prepare_spare(lock, *spare);
        continue;
      }
      // Not beside a run (run_scope): a pin request stays queued until the engine rests.
      if (!requests_.empty() && runs_quiet()) {
        pin_one(lock);
        continue;
      }
      if (release_idle(lock)) continue;
      auto next = pool_clock::time_point::max();
      for (const auto& [cap, b] : free_) next = std::min(next, b.since + idle_);
      // Queued work waits for runs to end. The last run's end wakes the thread for a spare
      // (run_scope); a wake lost to the thread about to wait here, and pins, which wait for the
      // engine to rest, take the next look.
      if (!spare_requests_.empty() || !requests_.empty())
        next = std::min(next, pool_clock::now() + std::chrono::milliseconds(10));
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
    free_.emplace(capacity, cached{p, true, pool_clock::now(), true});
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
  std::map<std::size_t, spare_request> spare_requests_;  // size classes wanting a spare, each once
  std::size_t preparing_ = 0;       // the class of the spare being prepared now, 0 if none
  std::atomic<bool> spare_stop_{false};  // the spare being prepared is wanted, or the pool stops
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
  std::uint64_t spares_ = 0;
  std::uint64_t spares_cut_short_ = 0;

  std::size_t pinned_limit_ = 0;
  std::size_t ordinary_cache_limit_ = 0;
  std::chrono::milliseconds idle_{0};
  bool spares_on_ = false;
  std::function<void*(std::size_t)> pin_;
  std::function<bool()> pin_ready_;  // whether background pins may be asked for now
  std::function<void(void*)> unpin_;
};

}  // namespace

host_pool_settings default_host_pool_settings() {
  host_pool_settings s;
  s.pinned_limit = env_number("KILN_PINNED_LIMIT", eighth_of_memory(8 * gib));
  s.ordinary_cache_limit = eighth_of_memory(4 * gib);
  // At most about 24 days, so that deadlines computed from it cannot overflow.
  s.idle = std::chrono::milliseconds(std::min<std::uint64_t>(env_number("KILN_HOST_POOL_IDLE_MS", 2000), 1u << 31));
  s.spares = current_settings().spare_blocks;
  return s;
}

run_scope::run_scope() {
  runs_in_flight.fetch_add(1);
  runs_begun.fetch_add(1);
}

run_scope::~run_scope() {
  last_activity.store(pool_clock::now().time_since_epoch().count());
  // The last run out wakes the pool thread where a spare waits for it: a caller's next call may
  // follow within milliseconds, and every page touched before it is one its own call skips.
  if (runs_in_flight.fetch_sub(1) == 1 && spares_waiting.load() && !pool_gone.load()) host_pool::get().wake();
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
