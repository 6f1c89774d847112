// The GPU backends' staging lanes: run in parallel on the worker pool, their results gathered.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "backends/cpu/cpu_simd.hpp"
#include "core/backend.hpp"
#include "core/thread_pool.hpp"
#include "kiln/kiln.hpp"
#include "kiln/result.hpp"

namespace kiln::detail {

// Phase times of the chunks one lane carried, summed.
struct lane_times {
  double h2d = 0, kernel = 0, d2h = 0;
};

// Maps `count` elements on the calling thread with the cpu backend's SIMD kernel: a lane's own
// share of a job (see feed_lane). `in` may equal `out`.
inline void map_on_host(const std::int64_t* in, std::int64_t* out, std::size_t count, const kernel_params& kp) {
  if (kp.iterations == 0) {
    if (in != out) std::memcpy(out, in, count * sizeof(std::int64_t));
    return;
  }
  logistic_simd(in, out, count, kp);
}

// Hands the chunks of one job to the lanes in order, each to whichever lane asks first, so lanes
// that run late or slow take fewer and the host's share adapts to how fast the device drains.
struct chunk_counter {
  explicit chunk_counter(std::size_t total_) : total(total_) {}
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> on_host{0};  // chunks the lanes' threads computed themselves
  const std::size_t total;

  // The next chunk's index, or nullopt when all are taken.
  std::optional<std::size_t> take() {
    const std::size_t c = next.fetch_add(1, std::memory_order_relaxed);
    return c < total ? std::optional<std::size_t>(c) : std::nullopt;
  }
};

// One lane's loop, the same for every GPU backend. Its slots are used in ring order, so the next
// slot, when busy, holds the lane's oldest chunk. Ops provides:
//   std::size_t slots() const;
//   bool busy(std::size_t k) const;        // slot k holds a chunk not yet finished
//   result<bool> done(std::size_t k);      // slot k's chunk completed (or failed), without waiting
//   status finish(std::size_t k);          // waits for slot k's chunk and retires it (copy-out)
//   status start(std::size_t k, std::size_t c);  // stages chunk c into slot k and submits it
//   void compute_on_host(std::size_t c);   // maps chunk c on this thread, straight to the caller
// With `share`, a lane whose oldest chunk is still running computes the next chunk itself instead
// of waiting (the host's work per chunk, two staging copies, is about what computing it costs, so
// a waiting thread's time is better spent on the map); without, it waits as a plain pipeline.
// Stops taking chunks when `failed` is set by another lane, and always drains its own slots.
template <class Ops>
status feed_lane(Ops& ops, chunk_counter& chunks, bool share, const std::atomic<bool>& failed) {
  const std::size_t slots = ops.slots();
  std::size_t k = 0;
  while (!failed.load(std::memory_order_relaxed)) {
    if (ops.busy(k)) {
      bool ready = true;
      if (share) {
        auto d = ops.done(k);
        if (!d) return d.err();
        ready = *d;
      }
      if (!ready) {
        const auto c = chunks.take();
        if (!c) break;
        ops.compute_on_host(*c);
        chunks.on_host.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      KILN_TRY(ops.finish(k));
    }
    const auto c = chunks.take();
    if (!c) break;
    KILN_TRY(ops.start(k, *c));
    k = (k + 1) % slots;
  }
  // Drain the chunks still in flight, oldest first.
  for (std::size_t j = 0; j < slots; ++j) {
    const std::size_t s = (k + j) % slots;
    if (ops.busy(s)) KILN_TRY(ops.finish(s));
  }
  return {};
}

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
