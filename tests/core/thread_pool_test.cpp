// parallel_for covers every index exactly once, also when many callers share the pool; threads lowered to the workers' priority.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/settings.hpp"
#include "core/thread_pool.hpp"
#include "kiln/kiln.hpp"

namespace {

int niceness_of_this_thread() { return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid))); }

// The embedding's threads (the NIF's runners) take the workers' niceness through the public call.
TEST(ThreadPool, ALoweredThreadTakesTheWorkersNiceness) {
  const int nice = kiln::detail::current_settings().worker_nice;
  int before = 0, after = 0;
  bool allowed = true;
  std::thread([&] {
    before = niceness_of_this_thread();
    kiln::lower_thread_priority();
    after = niceness_of_this_thread();
  }).join();
  // Whether this OS lets a thread take that niceness at all (a sandbox may not): asked directly.
  std::thread([&] {
    allowed = setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice) == 0;
  }).join();
  if (!allowed) {
    EXPECT_EQ(after, before) << "refused, the thread keeps its niceness";
    return;
  }
  if (nice == 0 || nice < before)  // left as it is, or (unprivileged) refused a higher priority
    EXPECT_TRUE(after == before || after == nice) << "from " << before << " to " << after;
  else
    EXPECT_EQ(after, nice) << "KILN_WORKER_NICE gives " << nice;
  // Only that thread: this one keeps its own.
  EXPECT_EQ(niceness_of_this_thread(), before);
}

TEST(ThreadPool, EveryIndexExactlyOnce) {
  for (std::size_t n : {0u, 1u, 7u, 1000u, 100003u})
    for (std::size_t grain : {1u, 3u, 64u, 1u << 20}) {
      std::vector<std::atomic<int>> hits(n);
      kiln::detail::parallel_for(n, grain, [&](std::size_t b, std::size_t e) {
        ASSERT_LE(e - b, grain);
        for (std::size_t i = b; i < e; ++i) hits[i]++;
      });
      for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " grain=" << grain << " i=" << i;
    }
}

TEST(ThreadPool, ConcurrentCallers) {
  std::vector<std::thread> ts;
  std::vector<long> sums(8, 0);
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&, t] {
      std::atomic<long> s{0};
      kiln::detail::parallel_for(10000, 17, [&](std::size_t b, std::size_t e) {
        long local = 0;
        for (std::size_t i = b; i < e; ++i) local += static_cast<long>(i);
        s += local;
      });
      sums[t] = s.load();
    });
  for (auto& t : ts) t.join();
  for (long s : sums) EXPECT_EQ(s, 10000L * 9999 / 2);
}

TEST(ThreadPool, HasAtLeastOneWorker) { EXPECT_GE(kiln::detail::worker_count(), 1u); }

}  // namespace
