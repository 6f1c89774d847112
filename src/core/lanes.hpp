// The GPU backends' staging lanes: run in parallel on the worker pool, their results gathered.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>
#include <vector>

#include "core/thread_pool.hpp"
#include "kiln/kiln.hpp"
#include "kiln/result.hpp"

namespace kiln::detail {

// Phase times of the chunks one lane carried, summed.
struct lane_times {
  double h2d = 0, kernel = 0, d2h = 0;
};

// Calls lane(l, times, failed) for every l in [0, lanes) on the worker pool. Lanes never wait for
// each other, so they finish however few pool threads are free; a lane that fails sets `failed`,
// and the others stop taking chunks (they still drain theirs). Returns the first lane's error,
// else adds the lanes' phase sums to `st`.
template <class Lane>
status run_lanes(std::size_t lanes, Lane&& lane, run_stats& st) {
  std::vector<lane_times> times(lanes);
  std::vector<std::optional<error>> errors(lanes);
  std::atomic<bool> failed{false};
  parallel_for(lanes, 1, [&](std::size_t b, std::size_t e) {
    for (std::size_t l = b; l < e; ++l)
      if (status r = lane(l, times[l], failed); !r.ok()) errors[l] = r.err();
  });
  for (const auto& e : errors)
    if (e) return *e;
  for (const auto& t : times) {
    st.host_to_device_s += t.h2d;
    st.kernel_s += t.kernel;
    st.device_to_host_s += t.d2h;
  }
  return {};
}

}  // namespace kiln::detail
