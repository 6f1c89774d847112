// The worker pool behind parallel_for: persistent threads fed from one queue of range tasks.
#include "core/thread_pool.hpp"

#include <algorithm>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/settings.hpp"
#include "kiln/kiln.hpp"

namespace kiln::detail {
namespace {

// One parallel_for call: workers claim grains from `next` until the range is exhausted.
struct job {
  const std::function<void(std::size_t, std::size_t)>* body;
  std::stop_token stop;
  std::size_t n;
  std::size_t grain;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
  std::size_t total_grains;
  std::mutex m;
  std::condition_variable cv;

  // Runs grains until none are left; returns true if this call finished the last one.
  void work() {
    for (;;) {
      std::size_t g = next.fetch_add(1, std::memory_order_relaxed);
      if (g >= total_grains) return;
      // Once a stop is requested the grains left are claimed and skipped: the caller's run is
      // being abandoned, and every grain still run would be work nobody reads.
      if (!stop.stop_requested()) {
        std::size_t b = g * grain;
        (*body)(b, std::min(n, b + grain));
      }
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == total_grains) {
        std::lock_guard<std::mutex> lock(m);
        cv.notify_all();
      }
    }
  }
};

class pool {
 public:
  pool() {
    unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    // The caller's thread works too, so hw - 1 workers keep every core busy.
    for (unsigned i = 0; i + 1 < hw; ++i)
      threads_.emplace_back([this] {
        // Workers yield the CPU to latency-sensitive threads (a BEAM's schedulers, say) when the
        // cores are contended, and lose nothing when they are not (docs/BENCHMARKS.md measures
        // both). Linux's nice applies per thread.
        lower_thread_priority();
        loop();
      });
    size_ = hw;
  }
  ~pool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  std::size_t size() const { return size_; }

  void run(const std::shared_ptr<job>& j) {
    std::size_t helpers = std::min<std::size_t>(threads_.size(), j->total_grains - 1);
    if (helpers > 0) {
      std::lock_guard<std::mutex> lock(m_);
      for (std::size_t i = 0; i < helpers; ++i) queue_.push_back(j);
    }
    cv_.notify_all();
    j->work();
    std::unique_lock<std::mutex> lock(j->m);
    j->cv.wait(lock, [&] { return j->done.load(std::memory_order_acquire) == j->total_grains; });
  }

 private:
  void loop() {
    for (;;) {
      std::shared_ptr<job> j;
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        j = std::move(queue_.front());
        queue_.pop_front();
      }
      j->work();
    }
  }

  std::vector<std::thread> threads_;
  std::deque<std::shared_ptr<job>> queue_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::size_t size_ = 1;
};

pool& instance() {
  static pool p;
  return p;
}

}  // namespace

std::size_t worker_count() { return instance().size(); }

std::size_t staging_lanes() {
  static const std::size_t lanes = [] {
    if (const std::size_t v = current_settings().staging_lanes) return v;  // KILN_STAGING_LANES
    return std::clamp<std::size_t>(worker_count(), 1, 16);
  }();
  return lanes;
}

void parallel_for(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& body,
                  std::stop_token stop) {
  if (n == 0 || stop.stop_requested()) return;
  grain = std::max<std::size_t>(grain, 1);
  std::size_t grains = (n + grain - 1) / grain;
  if (grains == 1) {
    body(0, n);
    return;
  }
  auto j = std::make_shared<job>();
  j->body = &body;
  j->n = n;
  j->grain = grain;
  j->total_grains = grains;
  j->stop = std::move(stop);
  instance().run(j);
}

}  // namespace kiln::detail

namespace kiln {

void lower_thread_priority() noexcept {
  const int nice = detail::current_settings().worker_nice;
  if (nice != 0) (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice);
}

}  // namespace kiln
