// Releases what an owner keeps between uses once it has been idle for a while: one thread for the whole process serves every owner.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>

namespace kiln::detail {

// A release scheduled after idle time. The owner (a GPU backend's device state) arms it after each
// use; once `idle` has passed with no arm() since, `release` runs on the process's one release
// thread (started on the first arm, so that a process that never uses a device starts none). The
// release is the owner's to make safe: it runs beside the owner's callers, so it takes the owner's
// lock itself, and should give up (not wait) when a use is under way, whose end arms it again.
class idle_release {
 public:
  // `idle` of zero: never released (arm() does nothing).
  idle_release(std::chrono::milliseconds idle, std::function<void()> release);
  idle_release(const idle_release&) = delete;
  idle_release& operator=(const idle_release&) = delete;

  // Cancels a pending release and waits for one that is running, so that the owner's members
  // may be destroyed afterwards (declare this member last). Must not run on the release thread.
  ~idle_release();

  // Starts the idle time again from now. One short lock: it never waits for a release and never
  // runs one on the caller's thread. Call it with the owner's lock held (see arm_at_end), so that
  // a release that takes the lock after a use sees that use's arm (pending()).
  void arm() noexcept;

  // Cancels a pending release and waits for one that is running (an owner's destructor calls it
  // before freeing what the release would touch); arm() works again afterwards.
  void cancel();

  // Whether a release is pending: armed and not yet run. A release that finds itself armed again
  // (a use ended since it was due) leaves everything to the pending one.
  bool pending() const;

  std::chrono::milliseconds idle() const { return idle_; }

 private:
  friend class release_thread;
  const std::chrono::milliseconds idle_;
  const std::function<void()> release_;
  // Set by the first arm(), which also registers the thread's stop at exit (release_thread::arm).
  std::atomic<bool> armed_once_{false};
};

// Arms an idle_release when the scope ends: on every way out of a use, errors included. Declared
// after the owner's lock, so that it arms while the lock is still held.
class arm_at_end {
 public:
  explicit arm_at_end(idle_release& r) : r_(r) {}
  arm_at_end(const arm_at_end&) = delete;
  arm_at_end& operator=(const arm_at_end&) = delete;
  ~arm_at_end() { r_.arm(); }

 private:
  idle_release& r_;
};

// The idle time after which GPU backends release the device memory they keep between jobs
// (KILN_DEVICE_POOL_IDLE_MS, core/settings.hpp).
std::chrono::milliseconds device_pool_idle();

}  // namespace kiln::detail
