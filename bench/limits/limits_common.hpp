// What both limits tools share: timing by medians and the one-line report format.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace kiln_limits {

using i64 = std::int64_t;
using clock_type = std::chrono::steady_clock;

inline double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

inline long long ns_since(clock_type::time_point t0) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count();
}

// The median of what body returns (after a warm-up call whose value is dropped).
inline double median_of(int runs, const std::function<double()>& body) {
  body();
  std::vector<double> t;
  for (int r = 0; r < runs; ++r) t.push_back(body());
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// The median wall time of body, in milliseconds (after a warm-up call).
inline double median_ms(int runs, const std::function<void()>& body) {
  return median_of(runs, [&] {
    const auto t0 = clock_type::now();
    body();
    return ms_since(t0);
  });
}

// "name  time  bandwidth", bytes counted one way.
inline void report(const std::string& name, double ms, double bytes) {
  std::printf("%-58s %9.3f ms  %7.1f GB/s\n", name.c_str(), ms, bytes / ms / 1e6);
  std::fflush(stdout);
}

}  // namespace kiln_limits
