// The GPU backends' lanes and the host's share of their work: the loops, run on the worker pool.
#pragma once

#include <algorithm>
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

// One range of a job's elements: [begin, begin + count).
struct work_range {
  std::size_t begin = 0, count = 0;
};

// Elements per piece a host worker computes (beside a lane that needs no host copies): 256 KiB
// in and out, about a tenth of a millisecond on one core, so the end of a run is fine-grained.
constexpr std::size_t host_piece = std::size_t{1} << 15;
// At most this many per piece a lane computes while its device slots are busy: a whole CUDA
// staging chunk. Measured on the H100 host from pageable memory (2^25 elements): a lane computing
// whole 2^17 chunks took 6.7-7.7 ms with the host taking 13-22% of the work, 2^15 pieces
// 7.6-8.4 ms with 7-11% (the device alone 8.1-8.5 ms): staged elements cost the host two copies,
// so the more of them it maps itself, the less memory traffic the run needs.
constexpr std::size_t lane_piece = std::size_t{1} << 17;

// Hands out a job's elements in order, each range to whichever lane or host worker asks first:
// lanes that run late or slow take fewer, and the host's share adapts to how fast the device
// drains. Ranges never straddle a multiple of `segment` (resident buffers are split there).
class work_counter {
 public:
  work_counter(std::size_t n, std::size_t segment) : n_(n), segment_(segment ? segment : n) {}

  // The next range of at most `max` (> 0) elements, or nullopt when all are taken.
  std::optional<work_range> take(std::size_t max) {
    std::size_t b = next_.load(std::memory_order_relaxed);
    for (;;) {
      if (b >= n_) return std::nullopt;
      const std::size_t seg_end = (b / segment_ + 1) * segment_;
      const std::size_t e = std::min({b + max, seg_end, n_});
      if (next_.compare_exchange_weak(b, e, std::memory_order_relaxed)) {
        ranges_.fetch_add(1, std::memory_order_relaxed);
        return work_range{b, e - b};
      }
    }
  }

  // Counts a range the host computed.
  void on_host(const work_range& r) { host_elements_.fetch_add(r.count, std::memory_order_relaxed); }

  std::size_t ranges() const { return ranges_.load(); }
  std::size_t host_elements() const { return host_elements_.load(); }

 private:
  const std::size_t n_, segment_;
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> ranges_{0};
  std::atomic<std::size_t> host_elements_{0};
};

// One lane's loop, the same for every GPU backend. Its slots are used in ring order, so the next
// slot, when busy, holds the lane's oldest chunk. Ops provides:
//   std::size_t slots() const;
//   std::size_t chunk() const;                   // elements per device chunk
//   bool busy(std::size_t k) const;              // slot k holds a chunk not yet finished
//   result<bool> done(std::size_t k);            // slot k's chunk completed (or failed), without waiting
//   status finish(std::size_t k);                // waits for slot k's chunk and retires it (copy-out)
//   status start(std::size_t k, work_range r);   // stages range r into slot k and submits it
//   void compute_on_host(work_range r);          // maps r on this thread, straight to the caller
// With `share`, a lane whose oldest chunk is still running computes a host piece itself instead
// of waiting (the host's work per staged element, two copies, is about what computing it costs,
// so a waiting thread's time is better spent on the map); without, it waits as a plain pipeline.
// Stops taking work when `failed` is set by another lane, and always drains its own slots.
template <class Ops>
status feed_lane(Ops& ops, work_counter& work, bool share, const std::atomic<bool>& failed) {
  const std::size_t slots = ops.slots();
  const std::size_t piece = std::min(lane_piece, ops.chunk());
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
        const auto r = work.take(piece);
        if (!r) break;
        ops.compute_on_host(*r);
        work.on_host(*r);
        continue;
      }
      KILN_TRY(ops.finish(k));
    }
    const auto r = work.take(ops.chunk());
    if (!r) break;
    KILN_TRY(ops.start(k, *r));
    k = (k + 1) % slots;
  }
  // Drain the chunks still in flight, oldest first.
  for (std::size_t j = 0; j < slots; ++j) {
    const std::size_t s = (k + j) % slots;
    if (ops.busy(s)) KILN_TRY(ops.finish(s));
  }
  return {};
}

// A pool thread beside a lane whose job needs no host copies (page-locked caller memory): it
// computes host pieces until none are left, while the lane keeps the device fed.
inline void host_worker(work_counter& work, const std::int64_t* in, std::int64_t* out, const kernel_params& kp,
                        const std::atomic<bool>& failed) {
  while (!failed.load(std::memory_order_relaxed)) {
    const auto r = work.take(host_piece);
    if (!r) return;
    map_on_host(in + r->begin, out + r->begin, r->count, kp);
    work.on_host(*r);
  }
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
