// parallel_for covers every index exactly once, also when many callers share the pool.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/thread_pool.hpp"

namespace {

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
