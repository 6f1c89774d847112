// The process's release thread: runs each idle_release once its owner has been idle for the owner's idle time.
#include "core/idle_release.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "core/settings.hpp"

namespace kiln::detail {
namespace {

using release_clock = std::chrono::steady_clock;

// Set once the release thread's object is destroyed (static destruction): owners destroyed later
// (a device state kept alive by a buffer) then have nothing to cancel. A plain atomic of static
// storage stays readable after every destructor has run.
std::atomic<bool> releases_gone{false};

}  // namespace

// One thread for every owner: releases are rare (one per device after a burst of jobs) and short,
// so a thread per device would only add threads to every process that uses a GPU.
class release_thread {
 public:
  static release_thread& get() {
    static release_thread t;
    return t;
  }

  release_thread(const release_thread&) = delete;
  release_thread& operator=(const release_thread&) = delete;

  ~release_thread() {
    stop();
    releases_gone.store(true);
  }

  void arm(idle_release* r) {
    // A release makes GPU runtime calls, and the CUDA runtime tears itself down at exit through
    // handlers registered when it starts, which is before this owner's first arm (it arms after a
    // job). A handler registered now runs before that teardown, so the thread is stopped first.
    // Marked before anything can throw, so that the owner's destructor always cancels its entry.
    if (!r->armed_once_.exchange(true)) std::atexit([] { release_thread::get().stop(); });
    {
      std::lock_guard<std::mutex> lock(m_);
      if (stopping_) return;
      due_[r] = release_clock::now() + r->idle_;
      if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    }
    cv_.notify_all();
  }

  void cancel(idle_release* r) {
    std::unique_lock<std::mutex> lock(m_);
    due_.erase(r);
    done_cv_.wait(lock, [&] { return running_ != r; });
  }

  bool pending(const idle_release* r) {
    std::lock_guard<std::mutex> lock(m_);
    return due_.count(const_cast<idle_release*>(r)) != 0;
  }

  // Stops and joins the thread; pending releases are dropped (their owners free everything when
  // they are destroyed, or the process ends).
  void stop() {
    std::thread t;
    {
      std::lock_guard<std::mutex> lock(m_);
      stopping_ = true;
      due_.clear();
      t = std::move(thread_);
    }
    cv_.notify_all();
    if (t.joinable() && t.get_id() != std::this_thread::get_id())
      t.join();
    else if (t.joinable())
      t.detach();
  }

 private:
  release_thread() = default;

  void loop() {
    std::unique_lock<std::mutex> lock(m_);
    while (!stopping_) {
      auto next = due_.end();
      for (auto it = due_.begin(); it != due_.end(); ++it)
        if (next == due_.end() || it->second < next->second) next = it;
      if (next == due_.end()) {
        cv_.wait(lock);
        continue;
      }
      if (next->second > release_clock::now()) {
        // Woken early by an arm (or spuriously): the deadlines are looked at again.
        cv_.wait_until(lock, next->second);
        continue;
      }
      idle_release* r = next->first;
      due_.erase(next);
      running_ = r;
      lock.unlock();
      try {
        r->release_();
      } catch (...) {
        // A release that failed keeps what it could not free; the thread serves the others on.
      }
      lock.lock();
      running_ = nullptr;
      done_cv_.notify_all();
    }
  }

  std::mutex m_;
  std::condition_variable cv_;       // wakes the thread: a deadline changed, or stop
  std::condition_variable done_cv_;  // running_ changed
  std::thread thread_;
  std::map<idle_release*, release_clock::time_point> due_;  // pending releases by owner, with their deadlines
  idle_release* running_ = nullptr;                          // the release running now, outside the lock
  bool stopping_ = false;
};

idle_release::idle_release(std::chrono::milliseconds idle, std::function<void()> release)
    : idle_(idle.count() > 0 ? idle : std::chrono::milliseconds{0}), release_(std::move(release)) {}

idle_release::~idle_release() { cancel(); }

void idle_release::cancel() {
  // Never armed: nothing to cancel, and no thread to start at exit.
  if (armed_once_.load() && !releases_gone.load()) release_thread::get().cancel(this);
}

void idle_release::arm() noexcept {
  if (idle_.count() == 0 || releases_gone.load()) return;
  try {
    release_thread::get().arm(this);
  } catch (...) {
    // No memory for the entry, or no thread could be started: what the owner keeps stays kept
    // until it is destroyed, as with an idle time of 0, and its use goes on unharmed.
  }
}

bool idle_release::pending() const {
  return armed_once_.load() && !releases_gone.load() && release_thread::get().pending(this);
}

std::chrono::milliseconds device_pool_idle() { return current_settings().device_pool_idle; }

}  // namespace kiln::detail
