// The CUDA backend's pipeline: pinned staging in lane groups, chunks streamed through slots by lane threads, zero copy.
#include "backends/cuda/cuda_pipeline.cuh"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "backends/cuda/cuda_kernels.cuh"
#include "core/settings.hpp"
#include "core/thread_pool.hpp"

namespace kiln::detail {
namespace {

using i64 = std::int64_t;

// Two pipeline shapes (see cuda_device_state::transfer). Direct jobs, where DMA reaches the caller's
// memory (pinned host blocks, resident buffers), need no host copies: one lane of 4 slots of 8 MiB
// keeps both copy engines and the SMs busy, and per-chunk API costs vanish next to PCIe time. With
// host sharing the pool's other threads compute pieces beside it, and a run from pinned memory
// finishes well before the device's alone would (docs/BENCHMARKS.md).
constexpr std::size_t direct_slots = 4;
constexpr std::size_t direct_chunk = std::size_t{1} << 20;
// 64 MiB per buffer caps the pinned staging of the direct lane at 512 MiB (4 slots, in + out),
// whatever chunk_elements a caller asks for (the option is an upper bound, so this is allowed).
constexpr std::size_t max_chunk = std::size_t{1} << 23;
// Staged jobs (pageable caller memory) are bound by the host copies into and out of pinned
// staging. One thread per lane (staging_lanes(): up to 16), each with 3 slots of 1 MiB: every core copies at
// once with no hand-over per chunk, and the staging (96 MiB at most) mostly stays in the
// last-level cache between the host copy and the DMA. That is clearly faster than one thread
// driving 4 slots of 8 MiB with the copies split over the pool (kiln_transfer_limits,
// docs/BENCHMARKS.md). With host sharing (run_options::host_share) a lane thread whose 3 slots
// are busy computes a chunk itself (feed_lane), which beats both the device computing everything
// and the cpu backend alone. One thread making every CUDA call while the others copy
// (driven_pipeline, which OpenCL needs) was no faster here, so CUDA keeps a thread per lane.
// Chunks of values that fit in 32 bits cross narrowed (narrow_transfers), which halves the copies
// and the bus traffic, and the kernel of a staged chunk works on the pinned staging itself
// (zero_copy), so a staged slot's device buffers serve only when that is turned off.
constexpr std::size_t staged_slots = 3;
constexpr std::size_t staged_chunk = std::size_t{1} << 17;
// Slot buffers grow in steps of 64 Ki elements so that slightly different sizes reuse them.
constexpr std::size_t capacity_step = std::size_t{1} << 16;

// Zero copy. The host copies a staged job's elements through pinned staging anyway, and the GPU
// reaches pinned host memory by the same address (unified addressing), so the kernel of a staged
// map or program reads its chunk from the staging and writes its results there itself, over the
// bus, instead of two copy commands around it: one launch per chunk instead of three commands.
// Staged runs from pageable memory are faster so, with the host's share or without, and for
// inputs beyond 32 bits too (docs/BENCHMARKS.md): much of what the copies cost was their
// per-chunk CUDA calls, which the lanes contend for. Direct jobs (page-locked caller memory) keep
// the copy engines: they move full-width bytes, and the engines move those over the bus faster
// than a kernel reading and writing pinned memory does. Uploads to and downloads from resident
// buffers are copies. KILN_ZERO_COPY=0 turns it off (to measure what it saves;
// core/settings.hpp).
bool zero_copy() { return current_settings().zero_copy; }

// Whether the job's chunks run zero copy (see zero_copy).
bool zero_copy_chunk(const cuda_transfer_job& job) {
  return zero_copy() && job.staged() && !job.resident && (job.kp || job.program) && job.host_in && job.host_out;
}

}  // namespace

bool cuda_is_pinned(const void* p, std::size_t bytes) {
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

// ---- lane groups -------------------------------------------------------------------------------

result<std::size_t> cuda_lane_group::ensure(std::size_t chunk_request, std::size_t elements, int device) {
  std::size_t chunk = chunk_request ? std::min(chunk_request, chunk_limit_) : default_chunk_;
  // Staging for what this job can use and no more: a job shorter than a chunk needs slots of its
  // own length, and one of c chunks at most c lanes. Pinning is the first job's main cost (about
  // 0.55 ms per MiB on the H200 machine, docs/BENCHMARKS.md), so a small first job stays cheap;
  // the group grows once, to its full shape, when a larger job comes.
  const std::size_t need = std::min(chunk, (std::max<std::size_t>(elements, 1) + capacity_step - 1) / capacity_step * capacity_step);
  const std::size_t lanes_wanted = std::min(lanes_(), (std::max<std::size_t>(elements, 1) + need - 1) / need);
  if (!lanes_v_.empty() && lanes_v_.size() >= lanes_wanted && (need <= capacity_ || need <= clamped_request_))
    return std::min(chunk, capacity_);
  const bool grows = !lanes_v_.empty();
  const std::size_t previous_capacity = capacity_;
  // The group is idle here (every call drains it), so it can be freed before the larger one is
  // allocated; that also returns its device memory to the free count below.
  clear();
  clamped_request_ = 0;
  const std::size_t lane_count = grows ? lanes_() : lanes_wanted;
  std::size_t free_bytes = 0, total_bytes = 0;
  KILN_TRY(cuda_check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo"));
  // Take at most half of what is free (in + out per slot), leaving room for resident buffers
  // and other users of the device.
  const std::size_t buffers = lane_count * slots_ * 2;
  const std::size_t fits = free_bytes / 2 / (buffers * sizeof(i64)) / 8 * 8;  // 64-byte aligned carving
  if (fits == 0)
    return make_error(errc::out_of_memory, "CUDA device " + std::to_string(device) + " has only " +
                                               std::to_string(free_bytes) + " bytes free, too few for staging");
  std::size_t capacity = std::min((std::max(need, previous_capacity) + capacity_step - 1) / capacity_step * capacity_step, chunk_limit_);
  if (capacity > fits) {
    clamped_request_ = need;  // don't reallocate on every call while memory stays short
    capacity = fits;
  }
  const std::size_t bytes = buffers * capacity * sizeof(i64);
  auto host = allocate_pinned(bytes);
  if (!host) return host.err();
  auto dev = allocate_device(bytes, "cudaMalloc (staging)");
  if (!dev) return dev.err();
  std::vector<cuda_lane> lanes(lane_count);
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

cuda_lane_group::contents cuda_lane_group::take() {
  contents c{std::move(lanes_v_), std::move(host_block_), std::move(dev_block_)};
  lanes_v_.clear();
  capacity_ = 0;
  clamped_request_ = 0;
  return c;
}

void cuda_lane_group::clear() {
  lanes_v_.clear();
  host_block_.reset();
  dev_block_.reset();
  capacity_ = 0;
}

// ---- the device's pipeline ---------------------------------------------------------------------

cuda_device_state::cuda_device_state(int index, int sm_count, int arch, std::size_t memory_bytes)
    : index_(index),
      sm_count_(sm_count),
      arch_(arch),
      buffers_(memory_bytes / 4),
      direct_([] { return std::size_t{1}; }, direct_slots, direct_chunk, max_chunk),
      staged_(staging_lanes, staged_slots, staged_chunk, staged_chunk) {}

cuda_device_state::~cuda_device_state() {
  // No release may run beside the teardown below.
  idle_.cancel();
  // Streams, events and device memory belong to this device's context.
  device_scope scope;
  (void)scope.enter(index_);
  direct_.clear();
  staged_.clear();
  buffers_.clear();
  program_mem_.reset();
  aux_.reset();
}

held_memory cuda_device_state::held() {
  std::lock_guard<std::mutex> lock(m_);
  held_memory h;
  h.pinned_bytes = direct_.bytes() + staged_.bytes();
  h.device_bytes = h.pinned_bytes + program_bytes_ + buffers_.cached_bytes();
  return h;
}

void cuda_device_state::release_idle() {
  cuda_lane_group::contents direct, staged;
  device_memory program;
  stream_handle aux;
  {
    std::unique_lock<std::mutex> lock(m_, std::try_to_lock);
    // A job holds the device (its end arms the release again), or one ended since this release
    // was due (its arm is pending): what it used stays.
    if (!lock.owns_lock() || idle_.pending()) return;
    direct = direct_.take();
    staged = staged_.take();
    program = std::move(program_mem_);
    program_bytes_ = 0;
    aux = std::move(aux_);
  }
  // Bodies given back from here on are kept, with the release armed again for them.
  std::vector<cuda_buffer_body> bodies = buffers_.take_all();
  device_scope scope;
  // Freed in the device's context; if it cannot be entered the device is lost, and freeing
  // anyway is what the destructor would do.
  (void)scope.enter(index_);
  bodies.clear();
  direct = {};
  staged = {};
  program.reset();
  aux.reset();
}

result<run_stats> cuda_device_state::transfer(const cuda_transfer_job& job) {
  cuda_device_state* self = this;
  return transfer(std::span<cuda_device_state* const>(&self, 1), job);
}

result<run_stats> cuda_device_state::transfer(std::span<cuda_device_state* const> devs, const cuda_transfer_job& job) {
  // One job per device at a time: the lanes are shared. Always locked in index order.
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(devs.size());
  for (cuda_device_state* d : devs) locks.emplace_back(d->m_);
  // Each device's staging is freed after idle time from this job's end, whichever way it ends;
  // armed while the locks are still held (see idle_release::arm).
  std::vector<std::unique_ptr<arm_at_end>> arms;
  arms.reserve(devs.size());
  for (cuda_device_state* d : devs) arms.push_back(std::make_unique<arm_at_end>(d->idle_));
  const auto t0 = std::chrono::steady_clock::now();
  run_stats st;
  if (job.n == 0) return st;
  struct part {
    cuda_device_state* dev;
    cuda_lane_group* group;
    std::size_t chunk;
    std::size_t lanes;
  };
  std::vector<part> parts;
  std::size_t lanes = 0;
  for (cuda_device_state* d : devs) {
    cuda_lane_group& group = job.staged() ? d->staged_ : d->direct_;
    device_scope scope;
    KILN_TRY(scope.enter(d->index_));
    auto got = group.ensure(job.chunk_elements, job.n, d->index_);
    if (!got) return got.err();
    if (job.program) KILN_TRY(d->begin_program(*job.program));
    const std::size_t chunk = std::min(*got, job.n);
    const std::size_t share_of_lanes = std::max<std::size_t>(1, group.lane_count() / devs.size());
    const std::size_t n_lanes = std::min(job.staged() ? share_of_lanes : group.lane_count(), (job.n + chunk - 1) / chunk);
    parts.push_back({d, &group, chunk, n_lanes});
    lanes += n_lanes;
  }
  work_counter work(job.n, job.n, job.stop);
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
    for (cuda_device_state* d : devs) {
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

struct cuda_device_state::lane_ops {
  cuda_device_state& dev;
  cuda_lane& ln;
  const cuda_transfer_job& job;
  std::size_t chunk_elements;
  lane_times& t;

  std::size_t slots() const { return ln.slots.size(); }
  std::size_t chunk() const { return chunk_elements; }
  bool busy(std::size_t k) const { return ln.slots[k].busy; }
  result<bool> done(std::size_t k) {
    cuda_slot& s = ln.slots[k];
    const cudaError_t e = cudaEventQuery(s.last(job.phase_times).get());
    if (e == cudaErrorNotReady) return false;
    KILN_TRY(cuda_check(e, "cudaEventQuery"));
    s.completed = true;
    return true;
  }
  status finish(std::size_t k) { return dev.finish(ln.slots[k], job, t); }
  status start(std::size_t k, work_range r) {
    cuda_slot& s = ln.slots[k];
    s.in32 = job.host_in && !job.in_pinned &&
             stage_chunk(s.in_host, job.host_in + r.begin, r.count, job.kp || job.program);
    return dev.submit(s, job, r.begin, r.count);
  }
  void compute_on_host(work_range r) const { job.compute_on_host(r); }
};

status cuda_device_state::run_lane(cuda_lane& ln, std::size_t chunk, work_counter& work, bool share,
                                   const cuda_transfer_job& job, lane_times& t, std::atomic<bool>& failed) {
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

status cuda_device_state::submit(cuda_slot& s, const cuda_transfer_job& job, std::size_t begin, std::size_t count) {
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
    KILN_TRY(cuda_check(cuda_launch_map(kernel_in, s.in32, kernel_out, s.out32, count, *job.kp, sm_count_, stream),
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

status cuda_device_state::add_phase_times(const cuda_slot& s, lane_times& t) {
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

status cuda_device_state::finish(cuda_slot& s, const cuda_transfer_job& job, lane_times& t) {
  if (!s.completed)
    KILN_TRY(cuda_check(cudaEventSynchronize(s.last(job.phase_times).get()), "cudaEventSynchronize"));
  if (job.phase_times) KILN_TRY(add_phase_times(s, t));
  if (job.host_out && !job.out_pinned) drain_chunk(job.host_out + s.begin, s.out_host, s.count, s.out32);
  s.busy = false;
  return {};
}

}  // namespace kiln::detail
