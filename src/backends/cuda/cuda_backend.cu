// The `cuda` backend: device probing, the chunked pinned-memory transfer pipeline, device-resident buffers and compiled programs.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_resources.cuh"
#include "backends/cuda/logistic_kernel.cuh"
#include "backends/cuda/nvrtc.hpp"
#include "core/backend.hpp"
#include "core/lanes.hpp"
#include "core/kernel_ir.hpp"
#include "core/settings.hpp"
#include "core/thread_pool.hpp"

namespace kiln::detail {
namespace {

using i64 = std::int64_t;

// Two pipeline shapes (see device_state::transfer). Direct jobs, where DMA reaches the caller's
// memory (pinned host blocks, resident buffers), need no host copies: one lane of 4 slots of 8 MiB
// keeps both copy engines and the SMs busy, and per-chunk API costs vanish next to PCIe time. With
// host sharing the pool's other threads compute pieces beside it: from pinned memory 4.6-5.2 ms
// for 2^25 elements (the host taking about 35%) against 6.1-6.6 ms device-only on the H100.
constexpr std::size_t direct_slots = 4;
constexpr std::size_t direct_chunk = std::size_t{1} << 20;
// 64 MiB per buffer caps the pinned staging of the direct lane at 512 MiB (4 slots, in + out),
// whatever chunk_elements a caller asks for (the option is an upper bound, so this is allowed).
constexpr std::size_t max_chunk = std::size_t{1} << 23;
// Staged jobs (pageable caller memory) are bound by the host copies into and out of pinned
// staging. One thread per lane (staging_lanes(): up to 16), each with 3 slots of 1 MiB: every core copies at
// once with no hand-over per chunk, and the staging (96 MiB at most) mostly stays in the
// last-level cache between the host copy and the DMA. Measured on the H100 host with
// kiln_transfer_limits (docs/BENCHMARKS.md): 8.1 ms for 2^25 elements against 10.9-22.7 ms for
// one thread driving 4 slots of 8 MiB with the copies split over the pool. With host sharing
// (run_options::host_share) a lane thread whose 3 slots are busy computes a chunk itself
// (feed_lane): 6.6-8.0 ms on the H100 host against 8.0-8.7 ms with the device computing
// everything, and 7.8-10.0 ms for the cpu backend alone. One thread making every CUDA call while
// the others copy (driven_pipeline, which OpenCL needs) measured no better here (8.0-8.4 ms
// device-only), so CUDA keeps a thread per lane. All of these at full width: chunks of values that
// fit in 32 bits now cross narrowed (narrow_transfers), which halves the copies and the bus
// traffic: 4.9-5.7 ms with host sharing, 5.1-5.4 ms device-only (docs/BENCHMARKS.md, BC-BE). Since
// then the kernel of a staged chunk works on the pinned staging itself (zero_copy), so a staged
// slot's device buffers serve only when that is turned off.
constexpr std::size_t staged_slots = 3;
constexpr std::size_t staged_chunk = std::size_t{1} << 17;
// Slot buffers grow in steps of 64 Ki elements so that slightly different sizes reuse them.
constexpr std::size_t capacity_step = std::size_t{1} << 16;

// The oldest compute capability this build has code for (from nvcc's -arch list), as major*10+minor.
constexpr int oldest_supported_arch() {
#if defined(__CUDA_ARCH_LIST__)
  constexpr int archs[] = {__CUDA_ARCH_LIST__};
  int lowest = archs[0];
  for (int a : archs) lowest = a < lowest ? a : lowest;
  return lowest / 10;
#else
  return 75;
#endif
}

// One stage of a lane: pointers into its group's staging blocks (both sides of the bus), its own
// stream (so one chunk's upload overlaps another's download: the copy engines run both directions
// at once only for different streams), four timing events that bracket the phases of the chunk
// it carries when the caller asked for phase times (before H2D, after H2D, after the kernel,
// after D2H), and an event without timing that marks its end otherwise (timing events cost: a
// pinned run took 7.0 ms with them and 5.7-6.0 ms without on the H100).
struct slot {
  stream_handle stream;
  i64* in_host = nullptr;
  i64* out_host = nullptr;
  i64* in_dev = nullptr;
  i64* out_dev = nullptr;
  std::array<event_handle, 4> events;
  event_handle done;  // recorded after the chunk's last command when phases are not timed
  bool busy = false;  // a chunk was enqueued and not yet finished (drained, timed)
  bool in32 = false;   // the chunk's staged input was packed to int32 (narrow_transfers)
  bool out32 = false;  // the chunk's results come back as int32 into out_host
  bool zero_copy = false;  // the chunk's kernel reads and writes host memory itself (zero_copy)
  // done() saw the chunk complete, so finish() need not wait for it: every CUDA call takes a
  // lock that the lanes contend for, and a query then a synchronise cost two per chunk (with
  // zero copy, 4.50-5.83 ms against 5.82-6.84 ms re-synchronising; BQ).
  bool completed = false;
  std::size_t begin = 0;
  std::size_t count = 0;

  // The event recorded after the chunk's last command: the fourth timing event, or `done`.
  const event_handle& last(bool phase_times) const { return phase_times ? events[3] : done; }
};

// Slots fed by one host thread at a time.
struct lane {
  std::vector<slot> slots;
};

// A compiled kernel (core/kernel_source.cpp, CUDA dialect) as one job runs it: its kernel for
// each device (by index; compiled for that device's compute capability), its parameters and
// iteration count. The host does not share a program's work: the host interpreter takes 20-30
// times as long per element as the map's SIMD kernel, so its pieces would finish long after the
// device's chunks.
struct program_launch {
  std::vector<cudaKernel_t> kernels;
  std::span<const i64> params;
  i64 iterations = 0;
  std::uint64_t first_fault = no_fault;  // set by transfer()
};

using library_handle = cuda_handle<cudaLibrary_t, cudaLibraryUnload>;

// What one pass through the pipeline does to n elements. A run maps host_in to host_out through
// the slots' device buffers, with the map (kp) or a compiled program; an upload (host_in and
// resident) and a download (host_out and resident) move data between the host and a resident
// device buffer.
struct transfer_job : map_job {
  program_launch* program = nullptr;   // instead of kp: the program's kernel on every chunk
  i64* resident = nullptr;             // device memory the chunks go to / come from, instead of the slots'
  // The caller's memory is page-locked: DMA reaches it directly, no staging copy on that side.
  bool in_pinned = false;
  bool out_pinned = false;

  bool staged() const { return (host_in && !in_pinned) || (host_out && !out_pinned); }
};

// Zero copy. The host copies a staged job's elements through pinned staging anyway, and the GPU
// reaches pinned host memory by the same address (unified addressing), so the kernel of a staged
// map or program reads its chunk from the staging and writes its results there itself, over the
// bus, instead of two copy commands around it: one launch per chunk instead of three commands.
// Measured on H200 instances (docs/BENCHMARKS.md, BN-BQ), 2^25 elements from pageable memory:
// the benchmark's cpp.cuda0 4.69 ms against 5.13 with the copies, device alone 4.34 against
// 5.32, inputs beyond 32 bits 4.91 against 5.67 (BP); per-chunk CUDA calls, which the lanes
// contend for, were much of what the copies cost (each extra chunk added about 6.5 us to a
// device-only run, BM). Direct jobs (page-locked caller memory) keep the copy engines: they move
// full-width bytes, where the engines use the bus better (pinned in and out at once: 5.29 ms for
// 256 MiB each way, a kernel on pinned memory 6.40 ms; BN-limits.txt). Uploads to and downloads
// from resident buffers are copies. KILN_ZERO_COPY=0 turns it off (to measure what it saves;
// core/settings.hpp).
bool zero_copy() { return current_settings().zero_copy; }

// Whether the job's chunks run zero copy (see zero_copy).
bool zero_copy_chunk(const transfer_job& job) {
  return zero_copy() && job.staged() && !job.resident && (job.kp || job.program) && job.host_in && job.host_out;
}

// Whether [p, p + bytes) is page-locked host memory (checked at both ends: Kiln's pinned blocks
// are single allocations). Costs a microsecond; saves a copy of the whole array.
bool is_pinned(const void* p, std::size_t bytes) {
  if (!p || bytes == 0) return false;
  auto check = [](const void* q) {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, q) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return attr.type == cudaMemoryTypeHost;
  };
  return check(p) && check(static_cast<const char*>(p) + bytes - 1);
}

// Lanes of one shape with their staging: one pinned and one device allocation, carved into slots
// (two allocations instead of four per slot keep the first call's set-up short). Allocated on
// first use, reused by every later call, and regrown when a call wants larger chunks. The lane
// count is asked for at that first use too, so that listing devices starts no worker pool.
class lane_group {
 public:
  lane_group(std::size_t (*lanes)(), std::size_t slots, std::size_t default_chunk, std::size_t chunk_limit)
      : lanes_(lanes), slots_(slots), default_chunk_(default_chunk), chunk_limit_(chunk_limit) {}

  // Valid after ensure().
  std::size_t lane_count() const { return lanes_v_.size(); }
  lane& at(std::size_t i) { return lanes_v_[i]; }

  // Makes sure every slot holds at least the job's chunk; returns the chunk to use, smaller when
  // free device memory does not allow the requested one. The caller has made the device current.
  result<std::size_t> ensure(std::size_t chunk_request, int device) {
    std::size_t chunk = chunk_request ? std::min(chunk_request, chunk_limit_) : default_chunk_;
    if (!lanes_v_.empty() && (chunk <= capacity_ || chunk <= clamped_request_)) return std::min(chunk, capacity_);
    // The group is idle here (every call drains it), so it can be freed before the larger one is
    // allocated; that also returns its device memory to the free count below.
    clear();
    clamped_request_ = 0;
    const std::size_t lane_count = lanes_();
    std::size_t free_bytes = 0, total_bytes = 0;
    KILN_TRY(cuda_check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo"));
    // Take at most half of what is free (in + out per slot), leaving room for resident buffers
    // and other users of the device.
    const std::size_t buffers = lane_count * slots_ * 2;
    const std::size_t fits = free_bytes / 2 / (buffers * sizeof(i64)) / 8 * 8;  // 64-byte aligned carving
    if (fits == 0)
      return make_error(errc::out_of_memory, "CUDA device " + std::to_string(device) + " has only " +
                                                 std::to_string(free_bytes) + " bytes free, too few for staging");
    std::size_t capacity = std::min((chunk + capacity_step - 1) / capacity_step * capacity_step, chunk_limit_);
    if (capacity > fits) {
      clamped_request_ = chunk;  // don't reallocate on every call while memory stays short
      capacity = fits;
    }
    const std::size_t bytes = buffers * capacity * sizeof(i64);
    auto host = allocate_pinned(bytes);
    if (!host) return host.err();
    auto dev = allocate_device(bytes, "cudaMalloc (staging)");
    if (!dev) return dev.err();
    std::vector<lane> lanes(lane_count);
    i64* h = static_cast<i64*>(host->get());
    i64* d = static_cast<i64*>(dev->get());
    for (auto& l : lanes) {
      l.slots.resize(slots_);
      for (auto& s : l.slots) {
        auto stream = create_stream();
        if (!stream) return stream.err();
        s.stream = std::move(stream).value();
        s.in_host = std::exchange(h, h + capacity);
        s.out_host = std::exchange(h, h + capacity);
        s.in_dev = std::exchange(d, d + capacity);
        s.out_dev = std::exchange(d, d + capacity);
        for (auto& ev : s.events) {
          auto e = create_event();
          if (!e) return e.err();
          ev = std::move(e).value();
        }
        auto done = create_event(cudaEventDisableTiming);
        if (!done) return done.err();
        s.done = std::move(done).value();
      }
    }
    lanes_v_ = std::move(lanes);
    host_block_ = std::move(host).value();
    dev_block_ = std::move(dev).value();
    capacity_ = capacity;
    return std::min(chunk, capacity_);
  }

  void clear() {
    lanes_v_.clear();
    host_block_.reset();
    dev_block_.reset();
    capacity_ = 0;
  }

 private:
  std::size_t (*lanes_)();
  std::size_t slots_, default_chunk_, chunk_limit_;
  std::vector<lane> lanes_v_;
  pinned_memory host_block_;
  device_memory dev_block_;
  std::size_t capacity_ = 0;         // elements per slot buffer
  std::size_t clamped_request_ = 0;  // the chunk that free memory cut down to capacity_, if any
};

// What a resident buffer holds on its device: its memory, and the stream and events its kernels
// run and are timed on. Kept for reuse by the device when a buffer dies (buffer_pool).
struct buffer_body {
  device_memory data;
  std::size_t bytes = 0;
  stream_handle stream;
  event_handle start, stop;
};

// Freed buffers' bodies, for the next buffers of the same size: cudaMalloc, a stream and two
// events cost far more than a kernel over resident data, and a kernel over buffers makes a new
// output each call (chained calls free as many as they make). At most `max_bodies` bodies and
// a quarter of the device's memory are kept; the rest is freed at once.
class buffer_pool {
 public:
  explicit buffer_pool(std::size_t limit_bytes) : limit_(limit_bytes) {}

  // A body of exactly `bytes` (the device must be current), from the pool or made now.
  result<buffer_body> take(std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(m_);
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (it->bytes == bytes) {
          buffer_body b = std::move(*it);
          free_.erase(it);
          cached_ -= bytes;
          return result<buffer_body>(std::move(b));
        }
    }
    buffer_body b;
    b.bytes = bytes;
    auto data = allocate_device(bytes, "cudaMalloc (resident buffer)");
    if (!data) return data.err();
    b.data = std::move(data).value();
    auto stream = create_stream();
    if (!stream) return stream.err();
    b.stream = std::move(stream).value();
    auto start = create_event();
    if (!start) return start.err();
    b.start = std::move(start).value();
    auto stop = create_event();
    if (!stop) return stop.err();
    b.stop = std::move(stop).value();
    return result<buffer_body>(std::move(b));
  }

  // Keeps `b` for reuse, or frees it (the device must be current).
  void give(buffer_body&& b) {
    std::lock_guard<std::mutex> lock(m_);
    if (free_.size() >= max_bodies || cached_ + b.bytes > limit_) {
      // The oldest bodies go first, so that the pool follows the sizes in use now.
      while (!free_.empty() && (free_.size() >= max_bodies || cached_ + b.bytes > limit_)) {
        cached_ -= free_.front().bytes;
        free_.erase(free_.begin());
      }
      if (cached_ + b.bytes > limit_) return;  // too large to keep at all: freed here
    }
    cached_ += b.bytes;
    free_.push_back(std::move(b));
  }

  void clear() {
    std::lock_guard<std::mutex> lock(m_);
    free_.clear();
    cached_ = 0;
  }

 private:
  static constexpr std::size_t max_bodies = 8;
  const std::size_t limit_;
  std::mutex m_;
  std::vector<buffer_body> free_;
  std::size_t cached_ = 0;
};

// Everything Kiln keeps per CUDA device: the two lane groups (see the shapes at the top).
class device_state {
 public:
  device_state(int index, int sm_count, int arch, std::size_t memory_bytes)
      : index_(index),
        sm_count_(sm_count),
        arch_(arch),
        buffers_(memory_bytes / 4),
        direct_([] { return std::size_t{1}; }, direct_slots, direct_chunk, max_chunk),
        staged_(staging_lanes, staged_slots, staged_chunk, staged_chunk) {}
  device_state(const device_state&) = delete;
  device_state& operator=(const device_state&) = delete;

  ~device_state() {
    // Streams, events and device memory belong to this device's context.
    device_scope scope;
    (void)scope.enter(index_);
    direct_.clear();
    staged_.clear();
    buffers_.clear();
    program_mem_.reset();
    aux_.reset();
  }

  int index() const { return index_; }
  buffer_pool& buffers() { return buffers_; }
  int sm_count() const { return sm_count_; }
  int arch() const { return arch_; }

  // Streams one job through the lanes of its shape, with the host's share (see map_job).
  // The caller has made this device current.
  result<run_stats> transfer(const transfer_job& job) {
    device_state* self = this;
    return transfer(std::span<device_state* const>(&self, 1), job);
  }

  // The same over several devices (distinct, in ascending index order): one work counter feeds
  // every device's lanes and the host's workers, so each GPU takes chunks as fast as it finishes
  // them. A staged job divides the staging lanes (one per pool thread) among the devices.
  static result<run_stats> transfer(std::span<device_state* const> devs, const transfer_job& job) {
    // One job per device at a time: the lanes are shared. Always locked in index order.
    std::vector<std::unique_lock<std::mutex>> locks;
    locks.reserve(devs.size());
    for (device_state* d : devs) locks.emplace_back(d->m_);
    const auto t0 = std::chrono::steady_clock::now();
    run_stats st;
    if (job.n == 0) return st;
    struct part {
      device_state* dev;
      lane_group* group;
      std::size_t chunk;
      std::size_t lanes;
    };
    std::vector<part> parts;
    std::size_t lanes = 0;
    for (device_state* d : devs) {
      lane_group& group = job.staged() ? d->staged_ : d->direct_;
      device_scope scope;
      KILN_TRY(scope.enter(d->index_));
      auto got = group.ensure(job.chunk_elements, d->index_);
      if (!got) return got.err();
      if (job.program) KILN_TRY(d->begin_program(*job.program));
      const std::size_t chunk = std::min(*got, job.n);
      const std::size_t share_of_lanes = std::max<std::size_t>(1, group.lane_count() / devs.size());
      const std::size_t n_lanes = std::min(job.staged() ? share_of_lanes : group.lane_count(), (job.n + chunk - 1) / chunk);
      parts.push_back({d, &group, chunk, n_lanes});
      lanes += n_lanes;
    }
    work_counter work(job.n, job.n);
    const bool share = job.shared_with_host();
    // Pool threads without a lane compute pieces beside the lanes: a direct job's one lane per
    // device only feeds the device, and a staged job has fewer lanes than threads when it has
    // fewer chunks or the host more than 16 threads.
    const std::size_t workers = worker_count();
    const std::size_t host_workers = share && workers > lanes ? workers - lanes : 0;
    KILN_TRY(run_lanes(
        lanes + host_workers,
        [&](std::size_t l, lane_times& t, std::atomic<bool>& failed) -> status {
          for (const part& pt : parts) {
            if (l < pt.lanes)
              return pt.dev->run_lane(pt.group->at(l), pt.chunk, work, share && job.staged(), job, t, failed);
            l -= pt.lanes;
          }
          host_worker(work, job.host_in, job.host_out, *job.kp, stream_output(job.n), failed,
                      job.host_piece_of(host_piece));
          return {};
        },
        st));
    if (job.program) {
      // Every chunk has finished (run_lanes drained the lanes), so the fault words are final.
      for (device_state* d : devs) {
        device_scope scope;
        KILN_TRY(scope.enter(d->index_));
        auto f = d->program_fault();
        if (!f) return f.err();
        job.program->first_fault = std::min(job.program->first_fault, *f);
      }
    }
    st.chunks = work.ranges();
    st.host_elements = work.host_elements();
    st.total_s = seconds_since(t0);
    return st;
  }

 private:
  // Before a program's job (device current, device locked): its parameters, after one word that
  // the kernels lower to the first faulting element's index, set to "none".
  status begin_program(const program_launch& p) {
    std::vector<std::uint64_t> words(1 + p.params.size(), no_fault);
    std::copy(p.params.begin(), p.params.end(), words.begin() + 1);
    const std::size_t bytes = words.size() * sizeof(std::uint64_t);
    if (bytes > program_bytes_) {
      program_mem_.reset();
      program_bytes_ = 0;
      auto mem = allocate_device(bytes, "cudaMalloc (program parameters)");
      if (!mem) return mem.err();
      program_mem_ = std::move(mem).value();
      program_bytes_ = bytes;
    }
    if (!aux_) {
      auto stream = create_stream();
      if (!stream) return stream.err();
      aux_ = std::move(stream).value();
    }
    // Waited for here, so every lane's stream sees the words (and no older job's).
    KILN_TRY(cuda_check(cudaMemcpyAsync(program_mem_.get(), words.data(), bytes, cudaMemcpyHostToDevice, aux_.get()),
                        "cudaMemcpyAsync (program parameters)"));
    return cuda_check(cudaStreamSynchronize(aux_.get()), "cudaStreamSynchronize");
  }

  // After a program's job: the lowest faulting element index its kernels recorded here.
  result<std::uint64_t> program_fault() {
    std::uint64_t first = 0;
    KILN_TRY(cuda_check(cudaMemcpyAsync(&first, program_mem_.get(), sizeof first, cudaMemcpyDeviceToHost, aux_.get()),
                        "cudaMemcpyAsync (program fault)"));
    KILN_TRY(cuda_check(cudaStreamSynchronize(aux_.get()), "cudaStreamSynchronize"));
    return first;
  }

  // Enqueues the program's kernel over one chunk: 256 threads a block, one element a thread.
  status launch_program(const void* in_elements, void* out_elements, bool narrow_in, const program_launch& p,
                        std::size_t begin, std::size_t count, cudaStream_t stream) {
    const i64* in = static_cast<const i64*>(in_elements);
    i64* out = static_cast<i64*>(out_elements);
    auto* fault = static_cast<unsigned long long*>(program_mem_.get());
    const i64* params = reinterpret_cast<const i64*>(fault + 1);
    long long n = static_cast<long long>(count), iterations = p.iterations;
    unsigned long long base = begin;
    int in32 = narrow_in;
    void* args[] = {&in, &out, &params, &n, &iterations, &fault, &base, &in32};
    constexpr unsigned threads = 256;
    const dim3 blocks(static_cast<unsigned>((count + threads - 1) / threads));
    // A cudaKernel_t is launched as is, in place of a __global__ function's address.
    return cuda_check(cudaLaunchKernel(reinterpret_cast<const void*>(p.kernels[static_cast<std::size_t>(index_)]), blocks,
                                       dim3(threads), args, 0, stream),
                      "cudaLaunchKernel (kiln_program)");
  }

  // feed_lane's view of one lane (see core/lanes.hpp).
  struct lane_ops {
    device_state& dev;
    lane& ln;
    const transfer_job& job;
    std::size_t chunk_elements;
    lane_times& t;

    std::size_t slots() const { return ln.slots.size(); }
    std::size_t chunk() const { return chunk_elements; }
    bool busy(std::size_t k) const { return ln.slots[k].busy; }
    result<bool> done(std::size_t k) {
      slot& s = ln.slots[k];
      const cudaError_t e = cudaEventQuery(s.last(job.phase_times).get());
      if (e == cudaErrorNotReady) return false;
      KILN_TRY(cuda_check(e, "cudaEventQuery"));
      s.completed = true;
      return true;
    }
    status finish(std::size_t k) { return dev.finish(ln.slots[k], job, t); }
    status start(std::size_t k, work_range r) {
      slot& s = ln.slots[k];
      s.in32 = job.host_in && !job.in_pinned &&
               stage_chunk(s.in_host, job.host_in + r.begin, r.count, job.kp || job.program);
      return dev.submit(s, job, r.begin, r.count);
    }
    void compute_on_host(work_range r) const { job.compute_on_host(r); }
  };

  // Carries chunks through one lane, on a pool thread; with `share` its thread computes host
  // pieces while its slots are busy.
  status run_lane(lane& ln, std::size_t chunk, work_counter& work, bool share, const transfer_job& job, lane_times& t,
                  std::atomic<bool>& failed) {
    device_scope scope;
    KILN_TRY(scope.enter(index_));
    lane_ops ops{*this, ln, job, chunk, t};
    status st = feed_lane(ops, work, share, failed, job.host_piece_of(lane_piece));
    if (!st.ok()) {
      failed.store(true, std::memory_order_relaxed);
      // Nothing may still be in flight when the slots are reused or the error is returned
      // (errors ignored here: the first one is being reported).
      for (auto& s : ln.slots) (void)cudaStreamSynchronize(s.stream.get());
      (void)cudaGetLastError();
    }
    for (auto& s : ln.slots) s.busy = false;
    return st;
  }

  // Enqueues one chunk on the slot's stream. Stream order makes device-buffer reuse safe; host
  // staging is reused only after finish() has seen the slot's last event. The caller has set
  // s.in32 (a staged input packed to int32); results of a staged map come back as int32
  // when they all fit (narrow_results). A zero-copy chunk (see zero_copy) has no copy commands:
  // its kernel reads and writes host memory itself, so its phase times put everything in the kernel.
  status submit(slot& s, const transfer_job& job, std::size_t begin, std::size_t count) {
    cudaStream_t stream = s.stream.get();
    const bool staged_out = job.host_out && !job.out_pinned && !job.resident;
    s.out32 = job.kp && staged_out && narrow_results(*job.kp);
    s.busy = true;  // from here on something may be in flight
    s.completed = false;
    s.begin = begin;
    s.count = count;
    auto mark = [&](int phase) {
      return job.phase_times ? cuda_check(cudaEventRecord(s.events[phase].get(), stream), "cudaEventRecord") : status{};
    };
    // Where the kernel reads and writes: the host side itself (staging, or the caller's pinned
    // memory) for a zero-copy chunk, else the slot's device buffers.
    s.zero_copy = zero_copy_chunk(job);
    const void* kernel_in = s.in_dev;
    void* kernel_out = s.out_dev;
    if (s.zero_copy) {
      kernel_in = job.in_pinned ? job.host_in + begin : s.in_host;
      kernel_out = job.out_pinned ? job.host_out + begin : s.out_host;
    }
    KILN_TRY(mark(0));
    if (job.host_in && !s.zero_copy) {
      i64* dst = job.resident ? job.resident + begin : s.in_dev;
      const i64* src = job.in_pinned ? job.host_in + begin : s.in_host;
      KILN_TRY(cuda_check(cudaMemcpyAsync(dst, src, chunk_bytes(count, s.in32), cudaMemcpyHostToDevice, stream),
                          "cudaMemcpyAsync (host to device)"));
    }
    KILN_TRY(mark(1));
    if (job.kp)
      KILN_TRY(cuda_check(launch_logistic(kernel_in, s.in32, kernel_out, s.out32, count, *job.kp, sm_count_, stream),
                          "logistic_kernel launch"));
    else if (job.program)
      KILN_TRY(launch_program(kernel_in, kernel_out, s.in32, *job.program, begin, count, stream));
    KILN_TRY(mark(2));
    if (job.host_out && !s.zero_copy) {
      const i64* src = job.resident ? job.resident + begin : s.out_dev;
      i64* dst = job.out_pinned ? job.host_out + begin : s.out_host;
      KILN_TRY(cuda_check(cudaMemcpyAsync(dst, src, chunk_bytes(count, s.out32), cudaMemcpyDeviceToHost, stream),
                          "cudaMemcpyAsync (device to host)"));
    }
    KILN_TRY(mark(3));
    if (!job.phase_times) KILN_TRY(cuda_check(cudaEventRecord(s.done.get(), stream), "cudaEventRecord"));
    return {};
  }

  // Adds the phases of a slot's completed chunk, timed by its four events. A zero-copy chunk has
  // no copies: its whole time, transfers included, is the kernel's.
  static status add_phase_times(const slot& s, lane_times& t) {
    if (s.zero_copy) {
      auto whole = elapsed_seconds(s.events[0], s.events[3]);
      if (!whole) return whole.err();
      t.kernel += *whole;
      return {};
    }
    auto h2d = elapsed_seconds(s.events[0], s.events[1]);
    auto kernel = elapsed_seconds(s.events[1], s.events[2]);
    auto d2h = elapsed_seconds(s.events[2], s.events[3]);
    if (!h2d) return h2d.err();
    if (!kernel) return kernel.err();
    if (!d2h) return d2h.err();
    t.h2d += *h2d;
    t.kernel += *kernel;
    t.d2h += *d2h;
    return {};
  }

  // Waits for the slot's chunk, adds its phase times and copies its output to the caller. The
  // sums are per chunk: phases of different chunks overlap, so together they can exceed total_s,
  // and each interval also holds any time the chunk queued behind another stream's work.
  status finish(slot& s, const transfer_job& job, lane_times& t) {
    if (!s.completed)
      KILN_TRY(cuda_check(cudaEventSynchronize(s.last(job.phase_times).get()), "cudaEventSynchronize"));
    if (job.phase_times) KILN_TRY(add_phase_times(s, t));
    if (job.host_out && !job.out_pinned) drain_chunk(job.host_out + s.begin, s.out_host, s.count, s.out32);
    s.busy = false;
    return {};
  }

  int index_;
  int sm_count_;
  int arch_;  // compute capability, major * 10 + minor
  buffer_pool buffers_;
  std::mutex m_;
  lane_group direct_;
  lane_group staged_;
  // A program's fault word and parameters (begin_program), and the stream that moves them.
  device_memory program_mem_;
  std::size_t program_bytes_ = 0;
  stream_handle aux_;
};

// A buffer in device memory: runs in place on its own stream, timed by events around the kernel
// alone (the benchmark's kernel-only number); uploads and downloads go through the device's lanes.
class cuda_buffer final : public resident_buffer {
 public:
  cuda_buffer(device_state& dev, std::size_t n) : dev_(dev), n_(n) {}

  ~cuda_buffer() override {
    device_scope scope;
    if (scope.enter(dev_.index()).ok() && body_.data.get()) dev_.buffers().give(std::move(body_));
  }

  // Takes the memory, stream and events (from the device's pool when it has a body this size);
  // the caller has made the device current.
  status init() {
    auto body = dev_.buffers().take(n_ * sizeof(i64));
    if (!body) return body.err();
    body_ = std::move(body).value();
    return {};
  }

  i64* data() const { return static_cast<i64*>(body_.data.get()); }
  std::size_t size() const override { return n_; }

  // Runs `launch(stream)` on the buffer's stream, timed by events around it alone (the
  // benchmark's kernel-only number); the caller has made the device current.
  template <class Launch>
  result<run_stats> timed(Launch&& launch) {
    const auto t0 = std::chrono::steady_clock::now();
    run_stats st;
    cudaStream_t stream = body_.stream.get();
    KILN_TRY(cuda_check(cudaEventRecord(body_.start.get(), stream), "cudaEventRecord"));
    status launched = launch(stream);
    status recorded = cuda_check(cudaEventRecord(body_.stop.get(), stream), "cudaEventRecord");
    // Whatever was enqueued must finish before we return, even on failure.
    status synced = cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    KILN_TRY(launched);
    KILN_TRY(recorded);
    KILN_TRY(synced);
    auto kernel = elapsed_seconds(body_.start, body_.stop);
    if (!kernel) return kernel.err();
    st.kernel_s = *kernel;
    st.chunks = 1;
    st.total_s = seconds_since(t0);
    return st;
  }

  status download(std::span<i64> out) const override {
    if (n_ == 0) return {};
    device_scope scope;
    KILN_TRY(scope.enter(dev_.index()));
    transfer_job job;
    job.host_out = out.data();
    job.out_pinned = is_pinned(out.data(), out.size_bytes());
    job.resident = data();
    job.n = n_;
    auto r = dev_.transfer(job);
    if (!r) return r.err();
    return {};
  }

 private:
  device_state& dev_;
  std::size_t n_;
  buffer_body body_;
};

std::string cuda_version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// Lists the devices, with one state per entry (null where unavailable); on any failure to reach
// the driver, one unavailable entry that says why.
std::vector<device_info> probe_devices(std::vector<std::unique_ptr<device_state>>& states) {
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    (void)cudaGetLastError();
    std::string what = e == cudaErrorNoDevice            ? "no CUDA-capable device was found"
                       : e == cudaErrorInsufficientDriver ? "no CUDA driver was found, or it is older than this CUDA runtime"
                                                          : "the CUDA driver could not be initialized";
    states.push_back(nullptr);
    return {unavailable_device(backend_kind::cuda, what + " (cudaGetDeviceCount: " + cudaGetErrorString(e) + ")")};
  }
  if (count <= 0) {
    states.push_back(nullptr);
    return {unavailable_device(backend_kind::cuda, "no CUDA-capable device was found (cudaGetDeviceCount returned 0)")};
  }

  int runtime = 0, driver = 0;
  (void)cudaRuntimeGetVersion(&runtime);
  (void)cudaDriverGetVersion(&driver);
  const std::string platform = "CUDA " + cuda_version_string(runtime) + " / driver " + cuda_version_string(driver);

  std::vector<device_info> list;
  for (int i = 0; i < count; ++i) {
    device_info d;
    d.backend = backend_kind::cuda;
    d.index = i;
    d.platform = platform;
    d.gpu = true;
    d.name = "CUDA device " + std::to_string(i);
    cudaDeviceProp prop{};
    int mode = cudaComputeModeDefault;
    if (cudaError_t e = cudaGetDeviceProperties(&prop, i); e != cudaSuccess) {
      d.reason = cuda_error(e, "cudaGetDeviceProperties").message;
    } else if (cudaError_t e2 = cudaDeviceGetAttribute(&mode, cudaDevAttrComputeMode, i); e2 != cudaSuccess) {
      d.reason = cuda_error(e2, "cudaDeviceGetAttribute").message;
    } else {
      d.name = prop.name;
      d.compute_units = prop.multiProcessorCount;
      d.memory_bytes = prop.totalGlobalMem;
      const int arch = prop.major * 10 + prop.minor;
      if (arch < oldest_supported_arch())
        d.reason = "compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                   " is older than this build supports (" + std::to_string(oldest_supported_arch() / 10) + "." +
                   std::to_string(oldest_supported_arch() % 10) + ")";
      else if (mode == cudaComputeModeProhibited)
        d.reason = "the device is in compute-prohibited mode";
      else
        d.available = true;
    }
    states.push_back(d.available ? std::make_unique<device_state>(i, d.compute_units, prop.major * 10 + prop.minor, d.memory_bytes)
                                 : nullptr);
    list.push_back(std::move(d));
  }
  return list;
}

class cuda_backend final : public backend {
 public:
  backend_kind kind() const override { return backend_kind::cuda; }

  const std::vector<device_info>& devices() override {
    probe();
    return devices_;
  }

  result<run_stats> run(int device, std::span<const i64> in, std::span<i64> out, const kernel_params& kp,
                        const run_options& options) override {
    auto devs = states_for(device);
    if (!devs) return devs.err();
    device_scope scope;
    KILN_TRY(scope.enter(devs->front()->index()));
    transfer_job job;
    job.set_map(in, out, kp, options);
    set_pinned(job, in, out);
    return device_state::transfer(*devs, job);
  }

  status kernel_support() override { return nvrtc_available(); }

  // A kernel runs as the map does (the same lanes, staging and devices), compiled with NVRTC for
  // each device's compute capability on first use.
  result<run_stats> run_kernel(int device, const decoded_kernel& dk, std::span<const i64> in, std::span<i64> out,
                               const run_options& options) override {
    KILN_TRY(nvrtc_available());
    auto devs = states_for(device);
    if (!devs) return devs.err();
    const std::string source = kernel_source(dk, kernel_dialect::cuda);
    program_launch launch;
    launch.kernels.resize(states_.size());
    for (device_state* d : *devs) {
      auto k = kernel_for(source, d->arch());
      if (!k) return k.err();
      launch.kernels[static_cast<std::size_t>(d->index())] = *k;
    }
    launch.params = dk.scalars;
    launch.iterations = dk.iterations;
    device_scope scope;
    KILN_TRY(scope.enter(devs->front()->index()));
    transfer_job job;
    job.set_arrays(in, out, options);
    job.program = &launch;
    set_pinned(job, in, out);
    auto r = device_state::transfer(*devs, job);
    if (!r) return r.err();
    KILN_TRY(device_outcome(dk, in, launch.first_fault, "CUDA"));
    return r;
  }

  // Portable page-locked memory (every device sees it as pinned), only where CUDA can run.
  void* allocate_pinned(std::size_t bytes) override {
    probe();
    bool usable = false;
    for (const auto& st : states_) usable = usable || st != nullptr;
    void* p = nullptr;
    if (!usable || cudaHostAlloc(&p, bytes, cudaHostAllocPortable) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    return p;
  }

  void free_pinned(void* p) override { (void)cudaFreeHost(p); }

  result<std::unique_ptr<resident_buffer>> allocate(int device, std::size_t n) override {
    auto ds = state_of(device);
    if (!ds) return ds.err();
    device_scope scope;
    KILN_TRY(scope.enter(device));
    auto buf = std::make_unique<cuda_buffer>(**ds, n);
    KILN_TRY(buf->init());
    return std::unique_ptr<resident_buffer>(std::move(buf));
  }

  // A kernel over resident buffers: the map's own kernel where it is the map, else the kernel
  // compiled for buffers (kiln_resident), one launch over all elements. A fault is reported by the
  // element's index; its inputs, which a faulting element never overwrites, are read back to say why.
  result<run_stats> run_resident(int device, const decoded_kernel& dk, std::span<resident_buffer* const> arrays,
                                 std::span<resident_buffer* const> outputs) override {
    auto ds = state_of(device);
    if (!ds) return ds.err();
    device_scope scope;
    KILN_TRY(scope.enter(device));
    auto* first = static_cast<cuda_buffer*>(arrays.front());
    const std::size_t n = first->size();
    if (dk.builtin) {
      auto* in = static_cast<cuda_buffer*>(arrays[0]);
      auto* out = static_cast<cuda_buffer*>(outputs[0]);
      const kernel_params kp = prepare(dk.builtin->params);
      return out->timed([&](cudaStream_t stream) {
        return cuda_check(launch_logistic(in->data(), out->data(), n, kp, (*ds)->sm_count(), stream),
                          "logistic_kernel launch");
      });
    }
    KILN_TRY(nvrtc_available());
    auto kernel = kernel_for(kernel_source(dk, kernel_dialect::cuda, true), (*ds)->arch(), "kiln_resident");
    if (!kernel) return kernel.err();
    // The fault word, then the scalars.
    std::vector<i64> words(1 + std::max<std::size_t>(dk.scalars.size(), 1), 0);
    words[0] = -1;  // no_fault, as unsigned
    std::copy(dk.scalars.begin(), dk.scalars.end(), words.begin() + 1);
    auto mem = allocate_device(words.size() * sizeof(i64), "cudaMalloc (kernel parameters)");
    if (!mem) return mem.err();
    auto* fault = static_cast<unsigned long long*>(mem->get());
    const i64* params = reinterpret_cast<const i64*>(fault + 1);
    std::vector<const i64*> ins;
    std::vector<i64*> outs;
    for (auto* a : arrays) ins.push_back(static_cast<cuda_buffer*>(a)->data());
    for (auto* o : outputs) outs.push_back(static_cast<cuda_buffer*>(o)->data());
    long long count = static_cast<long long>(n), iterations = dk.iterations, base = 0;
    std::vector<void*> launch_args;
    for (auto& p : ins) launch_args.push_back(&p);
    for (auto& p : outs) launch_args.push_back(&p);
    launch_args.push_back(&params);
    launch_args.push_back(&count);
    launch_args.push_back(&iterations);
    launch_args.push_back(&fault);
    launch_args.push_back(&base);
    constexpr unsigned threads = 256;
    const dim3 blocks(static_cast<unsigned>((n + threads - 1) / threads));
    auto* out0 = static_cast<cuda_buffer*>(outputs[0]);
    std::uint64_t first_fault = no_fault;
    auto r = out0->timed([&](cudaStream_t stream) -> status {
      KILN_TRY(cuda_check(cudaMemcpyAsync(mem->get(), words.data(), words.size() * sizeof(i64), cudaMemcpyHostToDevice,
                                          stream),
                          "cudaMemcpyAsync (kernel parameters)"));
      KILN_TRY(cuda_check(cudaLaunchKernel(reinterpret_cast<const void*>(*kernel), blocks, dim3(threads),
                                           launch_args.data(), 0, stream),
                          "cudaLaunchKernel (kiln_resident)"));
      return cuda_check(cudaMemcpyAsync(&first_fault, fault, sizeof first_fault, cudaMemcpyDeviceToHost, stream),
                        "cudaMemcpyAsync (kernel fault)");
    });
    if (!r) return r.err();
    if (first_fault != no_fault) {
      if (first_fault >= n)
        return make_error(errc::internal, "a CUDA device reported a fault at element " + std::to_string(first_fault) +
                                              ", past the buffers' end");
      std::vector<i64> element(ins.size());
      for (std::size_t j = 0; j < ins.size(); ++j)
        KILN_TRY(cuda_check(cudaMemcpy(&element[j], ins[j] + first_fault, sizeof(i64), cudaMemcpyDeviceToHost),
                            "cudaMemcpy (faulting element)"));
      std::vector<const i64*> at;
      for (auto& v : element) at.push_back(&v);
      return device_fault(dk, at, static_cast<std::size_t>(first_fault), "CUDA", static_cast<std::size_t>(first_fault));
    }
    return r;
  }

  result<std::unique_ptr<resident_buffer>> upload(int device, std::span<const i64> data) override {
    auto ds = state_of(device);
    if (!ds) return ds.err();
    device_scope scope;
    KILN_TRY(scope.enter(device));
    auto buf = std::make_unique<cuda_buffer>(**ds, data.size());
    KILN_TRY(buf->init());
    if (!data.empty()) {
      transfer_job job;
      job.host_in = data.data();
      job.in_pinned = is_pinned(data.data(), data.size_bytes());
      job.resident = buf->data();
      job.n = data.size();
      auto r = (*ds)->transfer(job);
      if (!r) return r.err();
    }
    return std::unique_ptr<resident_buffer>(std::move(buf));
  }

 private:
  void probe() {
    std::call_once(probed_, [this] { devices_ = probe_devices(states_); });
  }

  // The states a run uses: one device's, or every usable one's for all_devices.
  result<std::vector<device_state*>> states_for(int device) {
    std::vector<device_state*> devs;
    if (device == all_devices) {
      probe();
      for (const auto& st : states_)
        if (st) devs.push_back(st.get());
      if (devs.empty()) return make_error(errc::backend_unavailable, "no CUDA device is usable: " + devices_.front().reason);
    } else {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      devs.push_back(*ds);
    }
    return devs;
  }

  // Page-locked memory is portable under unified addressing (every platform this CUDA supports),
  // so memory pinned for one device is pinned for all.
  static void set_pinned(transfer_job& job, std::span<const i64> in, std::span<i64> out) {
    job.in_pinned = is_pinned(in.data(), in.size_bytes());
    job.out_pinned = is_pinned(out.data(), out.size_bytes());
  }

  // The program's kernel for one compute capability: compiled and loaded once, then kept for the
  // life of the process (a library is context-independent: one serves every device of its
  // capability).
  result<cudaKernel_t> kernel_for(const std::string& source, int arch, const char* name = "kiln_program") {
    std::lock_guard<std::mutex> lock(programs_m_);
    auto key = std::make_pair(source, arch);
    if (auto it = kernels_.find(key); it != kernels_.end()) return it->second;
    auto cubin = compile_cubin(source, arch);
    if (!cubin) return cubin.err();
    cudaLibrary_t lib = nullptr;
    KILN_TRY(cuda_check(cudaLibraryLoadData(&lib, cubin->data(), nullptr, nullptr, 0, nullptr, nullptr, 0),
                        "cudaLibraryLoadData (kiln_program)"));
    library_handle owner(lib);
    cudaKernel_t kernel = nullptr;
    KILN_TRY(cuda_check(cudaLibraryGetKernel(&kernel, lib, name), (std::string("cudaLibraryGetKernel (") + name + ")").c_str()));
    libraries_.push_back(std::move(owner));
    kernels_.emplace(std::move(key), kernel);
    return kernel;
  }

  result<device_state*> state_of(int device) {
    probe();
    if (device < 0 || static_cast<std::size_t>(device) >= states_.size())
      return make_error(errc::invalid_argument, "CUDA device index " + std::to_string(device) + " is out of range (" +
                                                    std::to_string(states_.size()) + " device(s))");
    if (!states_[static_cast<std::size_t>(device)])
      return make_error(errc::backend_unavailable, devices_[static_cast<std::size_t>(device)].reason);
    return states_[static_cast<std::size_t>(device)].get();
  }

  std::once_flag probed_;
  std::vector<device_info> devices_;
  std::vector<std::unique_ptr<device_state>> states_;  // per entry of devices_; null where unavailable
  std::mutex programs_m_;
  std::map<std::pair<std::string, int>, cudaKernel_t> kernels_;  // by source and compute capability
  std::vector<library_handle> libraries_;                       // the kernels' libraries
};

}  // namespace

std::unique_ptr<backend> make_cuda_backend() { return std::make_unique<cuda_backend>(); }

}  // namespace kiln::detail
