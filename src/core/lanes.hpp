// The GPU backends' pipelines (lanes, and the driven pipeline) and the host's share of their work, on the worker pool.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <stop_token>
#include <span>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_simd.hpp"
#include "core/backend.hpp"
#include "core/settings.hpp"
#include "core/stream_copy.hpp"
#include "core/thread_pool.hpp"
#include "kiln/kiln.hpp"
#include "kiln/result.hpp"

namespace kiln::detail {

// Phase times of the chunks one lane carried, summed.
struct lane_times {
  double h2d = 0, kernel = 0, d2h = 0;

  void add_to(run_stats& st) const {
    st.host_to_device_s += h2d;
    st.kernel_s += kernel;
    st.device_to_host_s += d2h;
  }
};

// Maps `count` elements on the calling thread with the cpu backend's SIMD kernel: a lane's own
// share of a job (see feed_lane). `in` may equal `out`; `stream` (a job whose whole output is
// large, see stream_output) writes with non-temporal stores.
inline void map_on_host(const std::int64_t* in, std::int64_t* out, std::size_t count, const kernel_params& kp,
                        bool stream = false) {
  if (kp.iterations == 0) {
    if (in != out) std::memcpy(out, in, count * sizeof(std::int64_t));
    return;
  }
  logistic_simd(in, out, count, kp, stream);
}

// Narrow chunks. Values that fit in 32 bits cross the bus in 4 bytes instead of 8: a lane packs a
// staged chunk (of a map or a program) whose inputs all fit while copying it into staging
// (pack_narrow; a chunk with one wide value goes at full width), and when every result of the map
// fits, which it does once the map has run an iteration with p <= 2^31 (results then lie in
// (-p, p)), the device returns int32 that the lane widens on its way into the caller's array
// (widen_streaming). Staged runs move every element through the host twice and over PCIe both
// ways, so halving the bytes shortens both. KILN_NARROW_TRANSFERS=0 turns it off (to measure what
// it saves; core/settings.hpp).
inline bool narrow_transfers() { return current_settings().narrow_transfers; }

// Whether every result of the map fits in 32 bits (see narrow_transfers).
inline bool narrow_results(const kernel_params& kp) {
  return narrow_transfers() && kp.iterations >= 1 && kp.p <= (std::int64_t{1} << 31);
}

// The bytes `count` elements take in staging and on the bus: 4 each narrowed, else 8.
inline std::size_t chunk_bytes(std::size_t count, bool narrow) {
  return count * (narrow ? sizeof(std::int32_t) : sizeof(std::int64_t));
}

// Copies `count` of the caller's elements into a slot's input staging, and says whether it packed
// them to int32: only where a kernel reads the chunk (`computed`: a map's or a program's, which
// take either width; an upload to a resident buffer stays int64) and every value fits. A plain
// copy: the staging is read by the device moments later, from the cache if it is still there
// (non-temporal stores would push it out to memory first).
inline bool stage_chunk(void* staging, const std::int64_t* src, std::size_t count, bool computed) {
  if (computed && narrow_transfers() && pack_narrow(static_cast<std::int32_t*>(staging), src, count)) return true;
  std::memcpy(staging, src, chunk_bytes(count, false));
  return false;
}

// A slot's output staging into the caller's array, widened from int32 where the chunk came back
// narrowed, with non-temporal stores: the caller's array is far larger than the caches.
inline void drain_chunk(std::int64_t* dst, const void* staging, std::size_t count, bool narrow) {
  if (narrow)
    widen_streaming(dst, static_cast<const std::int32_t*>(staging), count);
  else
    copy_streaming(dst, static_cast<const std::int64_t*>(staging), count);
}

// One range of a job's elements: [begin, begin + count).
struct work_range {
  std::size_t begin = 0, count = 0;
};

// The smallest job the host shares, at up to 10 iterations. A host piece takes about a
// millisecond at any iteration count (host_piece_of below), while the device finishes a small job
// in about a launch's latency: on the H200, 1024 elements at 1000 iterations took 0.164 ms shared
// against 0.053 ms on the device alone (docs/BENCHMARKS.md, CW). From 2^20 elements a lane has
// several pieces' worth of transfers to hide a piece behind.
constexpr std::size_t min_shared_elements = std::size_t{1} << 20;

// The smallest job the host shares at `iterations`: min_shared_elements, times iterations / 10
// beyond 10. While the device's run is bound by the bus (up to hundreds of iterations on an
// H200) its time does not grow with the iterations but the host's rate falls with them, so what
// the host's share saves shrinks as n / iterations while a piece's tail stays (pieces shrink with
// the iterations to take the same time): on the H200 2^20 elements at 100 iterations took
// 0.597 ms shared against 0.391 ms on the device alone, at 1000 0.669 against 0.544 ms, and
// 2^28 at 100 32.7 against 33.7 ms (docs/BENCHMARKS.md, CY).
inline std::size_t min_shared_elements_at(std::int64_t iterations) {
  if (iterations <= 10) return min_shared_elements;
  const auto scale = static_cast<std::size_t>(std::min<std::int64_t>(iterations, std::int64_t{1} << 30));
  return min_shared_elements * scale / 10;  // below 2^50
}

// What a job of either GPU backend carries beside its backend's own fields: the host arrays, the
// map and the caller's options. A job with a map runs it from host_in to host_out; jobs that only
// move data to or from a resident buffer carry no map.
struct map_job {
  const std::int64_t* host_in = nullptr;  // copied to the device chunk by chunk, if set
  std::int64_t* host_out = nullptr;       // copied back chunk by chunk, if set (may equal host_in)
  const kernel_params* kp = nullptr;      // the map, applied on the way, if set
  std::size_t n = 0;
  std::size_t chunk_elements = 0;         // the caller's upper bound; 0 = the backend's chunk
  bool phase_times = false;               // time each chunk's phases with device events
  bool host_share = false;                // run_options::host_share
  std::stop_token stop;                   // run_options::stop: no chunk is taken once requested

  // A run from `in` into `out` with the caller's options; what it applies (the map, or a backend's
  // own, such as a program) is set apart.
  void set_arrays(std::span<const std::int64_t> in, std::span<std::int64_t> out, const run_options& options) {
    host_in = in.data();
    host_out = out.data();
    n = std::min(in.size(), out.size());
    chunk_elements = options.chunk_elements;
    phase_times = options.phase_times;
    host_share = options.host_share;
    stop = options.stop;
  }

  // The map of `in` into `out` that logistic_map asks of a backend.
  void set_map(std::span<const std::int64_t> in, std::span<std::int64_t> out, const kernel_params& params,
               const run_options& options) {
    set_arrays(in, out, options);
    kp = &params;
  }

  // Whether the host computes part of the job: only a map between two host arrays (the host has
  // both) of at least min_shared_elements_at its iterations, and only when the caller allows it.
  bool shared_with_host() const {
    return host_share && kp && host_in && host_out && n >= min_shared_elements_at(kp->iterations);
  }

  // The most elements the host computes at once in this job: `base` (a lane's or a worker's
  // piece at the map's usual 10 iterations) shrunk in proportion to the iterations beyond 10, so
  // that a host piece takes about as long at any iteration count. The host's cores run the map
  // far slower than the GPU, so at high iteration counts a whole lane piece took longer than the
  // device's whole run, which then waited for it (the share's tail).
  std::size_t host_piece_of(std::size_t base) const {
    const std::int64_t k = kp ? kp->iterations : 10;
    if (k <= 10) return base;
    const double scaled = static_cast<double>(base) * 10.0 / static_cast<double>(k);
    return std::max<std::size_t>(256, static_cast<std::size_t>(scaled));
  }

  // Maps range r of a shared job on the calling thread, straight from host_in to host_out (the
  // host's share), streaming the stores when the whole output is large (stream_output).
  void compute_on_host(work_range r) const {
    map_on_host(host_in + r.begin, host_out + r.begin, r.count, *kp, stream_output(n));
  }
};

// Elements per piece a host worker computes (beside a lane that needs no host copies): 256 KiB
// in and out, a short task for one core, so the end of a run is fine-grained.
constexpr std::size_t host_piece = std::size_t{1} << 15;
// At most this many per piece a lane computes while its device slots are busy: a whole CUDA
// staging chunk. From pageable memory, lanes computing whole chunks finished sooner than with
// smaller pieces, the host taking a larger share of the work (docs/BENCHMARKS.md): staged
// elements cost the host two copies, so the more of them it maps itself, the less memory traffic
// the run needs.
constexpr std::size_t lane_piece = std::size_t{1} << 17;

// Hands out a job's elements in order, each range to whichever lane or host worker asks first:
// lanes that run late or slow take fewer, and the host's share adapts to how fast the device
// drains. Ranges never straddle a multiple of `segment` (resident buffers are split there).
class work_counter {
 public:
  // Once `stop` is requested no range is handed out: lanes finish the chunks they hold and the
  // run ends early (its caller reports it cancelled).
  work_counter(std::size_t n, std::size_t segment, std::stop_token stop = {})
      : n_(n), segment_(segment ? segment : n), stop_(std::move(stop)) {}

  // The next range of at most `max` (> 0) elements, or nullopt when all are taken.
  std::optional<work_range> take(std::size_t max) {
    if (stop_.stop_requested()) return std::nullopt;
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
  const std::stop_token stop_;
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> ranges_{0};
  std::atomic<std::size_t> host_elements_{0};
};

// How a sharing lane sizes the host pieces it computes while its oldest chunk runs (feed_lane):
// only as many elements as it can finish before that chunk is expected to complete, so the device
// never waits on the host for its next chunk. Where the host is fast against the device (few
// iterations) pieces stay whole; where it is slow (many), they shrink or stop and the lane waits
// for the device instead. A chunk's expected run is timed exactly whenever the lane waits for one
// (it polls, so it sees the completion when it happens); a completion noticed after a piece is
// only an upper bound, which can lower the estimate but not raise it. A host element's time is the
// last piece's. Until a chunk has been timed the lane waits for it; until a piece has been timed,
// or while pieces take no measurable time, pieces are whole. Where the host's rate says no piece
// fits, every probe_every-th such look still gets a piece of min_piece, so that one slow piece
// (a page fault's, a preempted thread's) cannot end the host's share for the rest of the run.
// Where the H200 machine shared runs (2^20 to 2^28 elements, 10 to 1000 iterations) the paced
// runs were within the spread of whole-piece runs (docs/BENCHMARKS.md, DK, DL): the rule guards
// the runs the device bounds.
class share_pacing {
 public:
  using duration = std::chrono::steady_clock::duration;
  // Fewer elements than this are not worth a piece: the lane waits for its chunk instead.
  static constexpr std::size_t min_piece = 256;
  // Of the looks where the host's rate says no piece fits, one in this many gets min_piece.
  static constexpr int probe_every = 16;

  // Elements (at most `piece`) of a host piece that ends before a chunk submitted `running` ago
  // completes; 0 where none fit, where the chunk is past its expected run, or where no chunk has
  // been timed yet.
  std::size_t piece_before(duration running, std::size_t piece) {
    if (chunk_ns_ <= 0.0) return 0;
    const double left = chunk_ns_ - ns(running);
    if (left <= 0.0) return 0;
    if (element_ns_ <= 0.0) return piece;
    const double fit = left / element_ns_;
    const std::size_t n = fit >= static_cast<double>(piece) ? piece : static_cast<std::size_t>(fit);
    if (n >= min_piece) return n;
    if (++refused_ < probe_every) return 0;
    refused_ = 0;
    return std::min(min_piece, piece);
  }
  // A chunk seen completing as it did, `d` after its submission.
  void chunk_timed(duration d) { chunk_ns_ = std::max(ns(d), 1.0); }
  // A chunk found complete `d` after its submission, having completed at some earlier moment.
  void chunk_noticed(duration d) {
    if (chunk_ns_ > 0.0) chunk_ns_ = std::max(std::min(chunk_ns_, ns(d)), 1.0);
  }
  // A host piece of `count` elements took `d`.
  void piece_done(duration d, std::size_t count) {
    if (count > 0) element_ns_ = ns(d) / static_cast<double>(count);
  }

 private:
  static double ns(duration d) { return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()); }
  double chunk_ns_ = 0.0, element_ns_ = 0.0;
  int refused_ = 0;
};

// Between two looks at a chunk the lane waits for (`looks` so far): the first few yield, so that
// a short wait (a GPU's chunk about to complete) is seen at once, as a driver's own wait would
// spin; later ones sleep briefly, so that a long wait (a CPU device's chunk) leaves the core to
// the device's own threads (PoCL's) and to the other lanes. Ops's pause() where it has one (tests
// on a scripted clock).
template <class Ops>
void lane_pause(Ops& ops, int looks) {
  if constexpr (requires { ops.pause(); })
    ops.pause();
  else if (looks < 64)
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(std::chrono::microseconds(20));
}

// The lane's clock: Ops's own where it has one (tests run lanes on a scripted clock), else the
// steady clock.
template <class Ops>
std::chrono::steady_clock::time_point lane_now(Ops& ops) {
  if constexpr (requires { ops.now(); })
    return ops.now();
  else
    return std::chrono::steady_clock::now();
}

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
// so a waiting thread's time is better spent on the map), of the size share_pacing says fits
// before that chunk completes; without, or where none fits, it waits as a plain pipeline.
// Stops taking work when `failed` is set by another lane, and always drains its own slots.
template <class Ops>
status feed_lane(Ops& ops, work_counter& work, bool share, const std::atomic<bool>& failed,
                 std::size_t host_piece_max = lane_piece) {
  const std::size_t slots = ops.slots();
  const std::size_t piece = std::min(host_piece_max, ops.chunk());
  std::vector<std::chrono::steady_clock::time_point> submitted(share ? slots : 0);
  share_pacing pacing;
  std::size_t k = 0;
  while (!failed.load(std::memory_order_relaxed)) {
    if (ops.busy(k)) {
      if (share) {
        auto d = ops.done(k);
        if (!d) return d.err();
        if (*d) {
          pacing.chunk_noticed(lane_now(ops) - submitted[k]);
        } else if (const std::size_t fits = pacing.piece_before(lane_now(ops) - submitted[k], piece); fits > 0) {
          const auto r = work.take(fits);
          if (!r) break;
          const auto t0 = lane_now(ops);
          ops.compute_on_host(*r);
          pacing.piece_done(lane_now(ops) - t0, r->count);
          work.on_host(*r);
          continue;
        } else {
          // No piece fits: wait for the chunk, looking again and again (lane_pause), so that its
          // completion is timed as it happens.
          for (int looks = 0;; ++looks) {
            lane_pause(ops, looks);
            auto again = ops.done(k);
            if (!again) return again.err();
            if (*again) break;
          }
          pacing.chunk_timed(lane_now(ops) - submitted[k]);
        }
      }
      KILN_TRY(ops.finish(k));
    }
    const auto r = work.take(ops.chunk());
    if (!r) break;
    KILN_TRY(ops.start(k, *r));
    if (share) submitted[k] = lane_now(ops);
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
                        bool stream, const std::atomic<bool>& failed, std::size_t piece = host_piece) {
  while (!failed.load(std::memory_order_relaxed)) {
    const auto r = work.take(piece);
    if (!r) return;
    map_on_host(in + r->begin, out + r->begin, r->count, kp, stream);
    work.on_host(*r);
  }
}

// ---- the driven pipeline: one thread makes every driver call, the others copy ------------------------
//
// Some drivers serialise every call behind one lock, and contend badly for it: with NVIDIA's
// OpenCL, 16 threads enqueueing chunks (write, kernel, read, flush) at once manage fewer between
// them than one thread alone, each waiting far longer than an enqueue takes (kiln_opencl_limits,
// docs/BENCHMARKS.md). Then one thread, the driver, makes every call of a job (enqueues and
// completion checks) and the others only copy between the caller's arrays and the slots' pinned
// staging (and, with host sharing, compute pieces themselves when no slot needs them). Each slot
// moves through
//   free -> staging (a copier fills it) -> staged -> in flight (the driver enqueued it)
//        -> done (the driver saw it complete) -> draining (a copier empties it) -> free,
// and whoever moves a slot on owns it until the next state, so a slot's staging and range are never
// touched by two threads at once. Ops provides:
//   std::size_t slots() const;
//   void stage(std::size_t i, work_range r);       // copier: the caller's input into slot i's staging
//   status submit(std::size_t i, work_range r);    // driver: enqueue slot i's chunk
//   result<bool> poll(std::size_t i);              // driver: whether slot i's chunk completed; an
//                                                  // error if it failed (it has ended either way)
//   void abandon(std::size_t i);                   // driver: wait out slot i after a failed submit
//   void drain(std::size_t i, work_range r);       // copier: slot i's output staging to the caller
//   void compute_on_host(work_range r);            // copier: map r on this thread
//   status in_driver_context(F body);              // runs the driver's loop (e.g. with the device
//                                                  // made current on the driver's thread)
template <class Ops>
class driven_pipeline {
 public:
  enum state : int { free_slot, staging, staged, in_flight, done, draining };

  // `chunk`: elements per device chunk; `share`: copiers compute pieces (of at most `piece`)
  // when no slot needs them.
  driven_pipeline(Ops& ops, work_counter& work, std::size_t chunk, bool share, std::size_t piece = lane_piece)
      : ops_(ops), work_(work), chunk_(chunk), share_(share), piece_(piece), n_(ops.slots()),
        state_(new std::atomic<int>[n_]), range_(n_) {
    for (std::size_t i = 0; i < n_; ++i) state_[i].store(free_slot, std::memory_order_relaxed);
  }

  // Runs the job on `participants` threads of the worker pool (at least 1): participant 0 drives,
  // the others copy. Threads that start late find less to do; the driver copies too while no
  // copier runs, so a pool with no free thread (or a one-core host) still finishes. Returns the
  // first error; after one nothing more is submitted, chunks in flight are waited out and every
  // slot is free again before this returns.
  status run(std::size_t participants) {
    if (n_ == 0) return make_error(errc::internal, "driven_pipeline without slots");
    std::optional<error> failure;
    parallel_for(std::max<std::size_t>(participants, 1), 1, [&](std::size_t b, std::size_t e) {
      for (std::size_t p = b; p < e; ++p) {
        if (p != 0) {
          copy_loop(p);
        } else if (status r = ops_.in_driver_context([this] { return drive(); }); !r.ok()) {
          failure = r.err();
          // The driver could not start (its context failed): release what copiers staged for it,
          // so that they stop (nothing was submitted, so nothing is in flight).
          failed_.store(true);
          while (!all_free()) {
            for (std::size_t i = 0; i < n_; ++i)
              if (claim(i, staged, free_slot)) continue;
            pause();
          }
        }
      }
    });
    if (failure) return *failure;
    return {};
  }

 private:
  // The stop flags, the claims and the driver's scan for free slots are sequentially consistent:
  // a copier claims a slot, then looks at the flags; the driver sets a flag, then looks at the
  // slots; so either the driver sees the claim (and waits for the slot) or the copier sees the
  // flag (and gives the slot back). See copy_step.
  bool claim(std::size_t i, int from, int to) {
    int expected = from;
    return state_[i].load(std::memory_order_relaxed) == from && state_[i].compare_exchange_strong(expected, to);
  }
  void set(std::size_t i, int to) { state_[i].store(to, std::memory_order_release); }

  bool stopping() const { return exhausted_.load() || failed_.load(); }
  bool all_free() const {
    for (std::size_t i = 0; i < n_; ++i)
      if (state_[i].load() != free_slot) return false;
    return true;
  }
  bool finished() const { return stopping() && all_free(); }

  // One unit of copier work, scanning from slot `from`: empty a done slot, else fill a free one,
  // else (sharing) compute a piece. Returns whether it did anything.
  bool copy_step(std::size_t from) {
    for (std::size_t j = 0; j < n_; ++j) {
      const std::size_t i = (from + j) % n_;
      if (!claim(i, done, draining)) continue;
      ops_.drain(i, range_[i]);
      set(i, free_slot);
      return true;
    }
    if (stopping()) return false;
    for (std::size_t j = 0; j < n_; ++j) {
      const std::size_t i = (from + j) % n_;
      if (!claim(i, free_slot, staging)) continue;
      // Looked at again now that the slot is held: a driver that failed in the meantime may have
      // found every slot free and left, and a slot staged now would wait for it forever.
      if (stopping()) {
        set(i, free_slot);
        return false;
      }
      const auto r = work_.take(chunk_);
      if (!r) {
        exhausted_.store(true);
        set(i, free_slot);
        return false;
      }
      range_[i] = *r;
      ops_.stage(i, *r);
      set(i, staged);
      return true;
    }
    if (!share_) return false;
    const auto r = work_.take(std::min(piece_, chunk_));
    if (!r) {
      exhausted_.store(true);
      return false;
    }
    ops_.compute_on_host(*r);
    work_.on_host(*r);
    return true;
  }

  void copy_loop(std::size_t p) {
    copiers_.fetch_add(1, std::memory_order_relaxed);
    const std::size_t from = p * 3 % n_;  // copiers start apart: fewer collisions on the same slot
    while (!finished())
      if (!copy_step(from)) pause();
    copiers_.fetch_sub(1, std::memory_order_relaxed);
  }

  status drive() {
    std::optional<error> first;
    auto fail = [&](const error& e) {
      if (!first) first = e;
      failed_.store(true);
    };
    while (!finished()) {
      bool did = false;
      for (std::size_t i = 0; i < n_; ++i) {
        const int st = state_[i].load(std::memory_order_acquire);
        if (st == staged) {
          did = true;
          if (failed_.load(std::memory_order_relaxed)) {
            set(i, free_slot);
            continue;
          }
          if (status sub = ops_.submit(i, range_[i]); !sub.ok()) {
            fail(sub.err());
            ops_.abandon(i);
            set(i, free_slot);
            continue;
          }
          set(i, in_flight);
        } else if (st == in_flight) {
          auto complete = ops_.poll(i);
          if (complete && !*complete) continue;  // still running
          did = true;
          if (!complete) fail(complete.err());
          set(i, failed_.load(std::memory_order_relaxed) ? free_slot : done);
        }
      }
      if (!did && !(copiers_.load(std::memory_order_relaxed) == 0 && copy_step(0))) pause();
    }
    if (first) return *first;
    return {};
  }

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }

  Ops& ops_;
  work_counter& work_;
  const std::size_t chunk_;
  const bool share_;
  const std::size_t piece_;
  const std::size_t n_;
  std::unique_ptr<std::atomic<int>[]> state_;
  std::vector<work_range> range_;  // slot i's chunk, owned with the slot
  std::atomic<bool> exhausted_{false};  // the counter had nothing left for a device chunk
  std::atomic<bool> failed_{false};
  std::atomic<int> copiers_{0};  // copy threads in their loop
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
  for (const auto& t : times) t.add_to(st);
  return {};
}

}  // namespace kiln::detail
