// The release after idle time (core/idle_release.hpp): when it runs, what postpones and cancels it, and an idle time of 0.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/idle_release.hpp"

namespace {

using namespace std::chrono_literals;
using kiln::detail::idle_release;

// Waits up to `limit` for `done`; whether it came.
template <class F>
bool eventually(F done, std::chrono::milliseconds limit = 5s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(IdleRelease, RunsOnceAfterTheIdleTime) {
  std::atomic<int> runs{0};
  idle_release r(50ms, [&] { ++runs; });
  EXPECT_FALSE(r.pending());
  const auto t0 = std::chrono::steady_clock::now();
  r.arm();
  EXPECT_TRUE(r.pending());
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  EXPECT_FALSE(r.pending());
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(runs.load(), 1) << "released again without a new arm";
}

TEST(IdleRelease, EachArmPostponesIt) {
  std::atomic<int> runs{0};
  idle_release r(200ms, [&] { ++runs; });
  const auto t0 = std::chrono::steady_clock::now();
  // Used every 20 ms for 600 ms: never idle for 200 ms, so never released meanwhile (the
  // check allows the test thread a late wake of up to 100 ms).
  auto last_arm = t0;
  while (std::chrono::steady_clock::now() - t0 < 600ms) {
    r.arm();
    last_arm = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(20ms);
    if (std::chrono::steady_clock::now() - last_arm < 100ms) {
      EXPECT_EQ(runs.load(), 0);
    }
  }
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
  EXPECT_GE(std::chrono::steady_clock::now() - last_arm, 200ms);
}

TEST(IdleRelease, AnIdleTimeOfZeroKeepsEverything) {
  std::atomic<int> runs{0};
  idle_release r(0ms, [&] { ++runs; });
  r.arm();
  EXPECT_FALSE(r.pending());
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(runs.load(), 0);
}

TEST(IdleRelease, OwnersServedByOneThreadInDeadlineOrder) {
  std::atomic<int> order{0}, first{-1}, second{-1};
  idle_release late(150ms, [&] { second = order++; });
  idle_release early(30ms, [&] { first = order++; });
  late.arm();
  early.arm();
  ASSERT_TRUE(eventually([&] { return order.load() == 2; }));
  EXPECT_EQ(first.load(), 0);
  EXPECT_EQ(second.load(), 1);
}

TEST(IdleRelease, DestroyedOrCancelledBeforeItsTimeNeverRuns) {
  std::atomic<int> runs{0};
  {
    idle_release r(50ms, [&] { ++runs; });
    r.arm();
  }
  idle_release c(50ms, [&] { ++runs; });
  c.arm();
  c.cancel();
  EXPECT_FALSE(c.pending());
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(runs.load(), 0);
  // Armed again after a cancel, it runs as before.
  c.arm();
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
}

TEST(IdleRelease, CancelWaitsForARunningRelease) {
  std::atomic<bool> started{false}, finished{false};
  idle_release r(10ms, [&] {
    started = true;
    std::this_thread::sleep_for(200ms);
    finished = true;
  });
  r.arm();
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  // An arm during the release neither waits for it nor runs it again at once.
  const auto t0 = std::chrono::steady_clock::now();
  r.arm();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  r.cancel();
  EXPECT_TRUE(finished.load()) << "cancel returned while the release was still running";
}

}  // namespace
