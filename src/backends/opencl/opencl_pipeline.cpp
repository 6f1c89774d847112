// The OpenCL backend's pipeline: lanes' staging and queues, chunks submitted and completed by lane threads or one driver.
#include "backends/opencl/opencl_pipeline.hpp"

#include <algorithm>
#include <chrono>

#include "backends/opencl/opencl_kernels.hpp"
#include "core/thread_pool.hpp"

namespace kiln::detail {
namespace {

using clock_type = std::chrono::steady_clock;

// Driven: 2 MiB chunks, faster than half or twice that (docs/BENCHMARKS.md). Lanes: 4 MiB,
// because each thread's commands wait for the others', so smaller chunks made whole runs far
// slower.
constexpr std::size_t driven_chunk = std::size_t{1} << 18;
constexpr std::size_t lane_chunk = std::size_t{1} << 19;
// Chunks, asked for (chunk_elements) or the defaults above, are cut so that the lanes' pinned
// staging, and as much device memory for their slot buffers, stay within this: the bound on what
// a device keeps between jobs (docs/DESIGN.md). The defaults fit it up to 21 lanes.
constexpr std::size_t staging_budget_bytes = std::size_t{512} << 20;
// Slot buffers grow in steps of 64 Ki elements so that slightly different sizes reuse them.
constexpr std::size_t capacity_step = std::size_t{1} << 16;
// The lanes' device buffers (in + out per slot) take at most this share of global memory,
// leaving the rest to resident data and other users of the device.
constexpr std::size_t staging_memory_divisor = 4;

// How many chunks of at most `chunk` elements n elements make when no chunk may straddle a multiple
// of `segment` (resident buffers are split there; the whole range is one segment when there are none).
std::size_t chunk_count(std::size_t n, std::size_t segment, std::size_t chunk) {
  const std::size_t per_segment = (segment + chunk - 1) / chunk;
  return n / segment * per_segment + (n % segment + chunk - 1) / chunk;
}

// Allocates one lane's slot buffers at `capacity` elements (its queue already exists).
status allocate_lane(opencl_device_state& ds, opencl_lane& ln, std::size_t capacity) {
  const std::size_t bytes = capacity * element_bytes;
  for (auto& s : ln.slots) {
    KILN_TRY(s.in_host.create(ds.context, s.queue, capacity));
    KILN_TRY(s.out_host.create(ds.context, s.queue, capacity));
    cl_int e = CL_SUCCESS;
    s.in_dev = cl::Buffer(ds.context, CL_MEM_READ_WRITE, bytes, nullptr, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateBuffer (device staging)", e);
    s.out_dev = cl::Buffer(ds.context, CL_MEM_READ_WRITE, bytes, nullptr, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateBuffer (device staging)", e);
    s.fault_dev = cl::Buffer(ds.context, CL_MEM_READ_WRITE, sizeof(cl_int), nullptr, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateBuffer (program fault)", e);
  }
  return {};
}

void release_lanes(opencl_device_state& ds) {
  for (auto& ln : ds.lanes)
    for (auto& s : ln.slots) s.release_buffers();
  ds.lane_capacity = 0;
}

// Makes sure every slot holds at least `chunk` elements; returns the chunk to use, which is
// smaller when the platform cannot allocate the requested one. The lanes exist.
result<std::size_t> ensure_lanes(opencl_device_state& ds, std::size_t chunk) {
  if (ds.lane_capacity && (chunk <= ds.lane_capacity || chunk <= ds.lane_clamped))
    return std::min(chunk, ds.lane_capacity);
  // The lanes are idle here (every call drains them), so the smaller buffers can go before the
  // larger ones are allocated, which also leaves their memory to the new ones.
  release_lanes(ds);
  ds.lane_clamped = 0;
  std::size_t capacity = std::min((chunk + capacity_step - 1) / capacity_step * capacity_step, ds.chunk_limit);
  for (;;) {
    status st = {};
    for (auto& ln : ds.lanes)
      if (st.ok()) st = allocate_lane(ds, ln, capacity);
    if (st.ok()) break;
    release_lanes(ds);
    // OpenCL cannot say how much memory is free, so halve until it fits; other errors are final.
    if (st.err().code != errc::out_of_memory || capacity <= capacity_step) return st.err();
    capacity = std::max(capacity / 2, capacity_step);
    ds.lane_clamped = chunk;  // don't reallocate on every call while memory stays short
  }
  ds.lane_capacity = capacity;
  return std::min(chunk, capacity);
}

// Enqueues one chunk on the slot's queue and submits it. stage_input has set s.in32; a map's
// results come back as int32 when they all fit (narrow_results).
status submit(const opencl_device_state& ds, opencl_lane& ln, opencl_slot& s, const opencl_transfer_job& job,
              std::size_t begin, std::size_t count) {
  s.out32 = job.kp && job.host_out && !job.resident && narrow_results(*job.kp);
  // The chunk's place in its resident buffer, if it has one (chunks never straddle two).
  const cl::Buffer* resident = job.resident ? &(*job.resident)[begin / job.segment] : nullptr;
  const std::size_t offset = job.resident ? begin % job.segment * element_bytes : 0;
  s.busy = true;  // from here on something may be in flight
  s.begin = begin;
  s.count = count;
  s.write = s.kernel = s.read = s.fault_read = cl::Event();
  // A slot's chunks are drained before it takes the next, so switching queues between runs keeps
  // the order every chunk needs.
  const cl::CommandQueue& q = job.phase_times ? s.profiled : s.queue;
  if (job.host_in) {
    const cl_int e = q.enqueueWriteBuffer(resident ? *resident : s.in_dev, CL_FALSE, offset,
                                          chunk_bytes(count, s.in32), s.in_host.data(), nullptr, &s.write);
    if (e != CL_SUCCESS) return cl_error("clEnqueueWriteBuffer", e);
  }
  if (job.kp)
    KILN_TRY(enqueue_map(ds, ln.kernel, q, s.in_dev, s.out_dev, count, job.width, &s.kernel, s.in32, s.out32));
  if (job.program) KILN_TRY(enqueue_program(ds, ln.program, q, s, count, job.width));
  if (job.host_out) {
    const cl_int e = q.enqueueReadBuffer(resident ? *resident : s.out_dev, CL_FALSE, offset,
                                         chunk_bytes(count, s.out32), s.out_host.data(), nullptr, &s.read);
    if (e != CL_SUCCESS) return cl_error("clEnqueueReadBuffer", e);
  }
  // Submit now: some platforms hold commands back until a flush or a wait.
  const cl_int e = q.flush();
  if (e != CL_SUCCESS) return cl_error("clFlush", e);
  return {};
}

// The slot's chunk's last command: it completes after every earlier one on its in-order queue
// (a program's fault read comes before the chunk's read).
const cl::Event& last_event(const opencl_slot& s) { return s.read() ? s.read : s.kernel() ? s.kernel : s.write; }

// Waits for the slot's chunk (at once if it has ended) and adds its phase times. The sums are per
// chunk: phases of different chunks overlap, so together they can exceed total_s.
status complete(opencl_slot& s, const opencl_transfer_job& job, lane_times& t) {
  KILN_TRY(wait_for(last_event(s), {{&s.write, "clEnqueueWriteBuffer"},
                                    {&s.kernel, "clEnqueueNDRangeKernel"},
                                    {&s.fault_read, "clEnqueueReadBuffer (program fault)"},
                                    {&s.read, "clEnqueueReadBuffer"}}));
  if (job.program && s.fault_host != INT_MAX) job.program->note_fault(s.begin + static_cast<std::size_t>(s.fault_host));
  if (job.phase_times) {
    if (s.write()) t.h2d += event_seconds(s.write);
    if (s.kernel()) t.kernel += event_seconds(s.kernel);
    if (s.read()) t.d2h += event_seconds(s.read);
  }
  return {};
}

// The caller's input range r into the slot's staging, narrowed where it can be (stage_chunk).
void stage_input(opencl_slot& s, const opencl_transfer_job& job, work_range r) {
  s.in32 = job.host_in && stage_chunk(s.in_host.data(), job.host_in + r.begin, r.count, job.kp || job.program);
}

// The slot's output staging into the caller's range r (drain_chunk).
void drain_output(const opencl_slot& s, const opencl_transfer_job& job, work_range r) {
  if (job.host_out) drain_chunk(job.host_out + r.begin, s.out_host.data(), r.count, s.out32);
}

// Waits for the slot's chunk, adds its phase times and copies its output to the caller.
status finish(opencl_slot& s, const opencl_transfer_job& job, lane_times& t) {
  KILN_TRY(complete(s, job, t));
  drain_output(s, job, {s.begin, s.count});
  s.busy = false;
  return {};
}

// feed_lane's view of one lane (see core/lanes.hpp).
struct lane_ops {
  const opencl_device_state& ds;
  opencl_lane& ln;
  const opencl_transfer_job& job;
  std::size_t chunk_elements;
  lane_times& t;

  std::size_t slots() const { return ln.slots.size(); }
  std::size_t chunk() const { return chunk_elements; }
  bool busy(std::size_t k) const { return ln.slots[k].busy; }
  result<bool> done(std::size_t k) const {
    cl_int st = CL_QUEUED;
    const cl_int e = last_event(ln.slots[k]).getInfo(CL_EVENT_COMMAND_EXECUTION_STATUS, &st);
    if (e != CL_SUCCESS) return cl_error("clGetEventInfo", e);
    return st <= CL_COMPLETE;  // complete, or failed (finish reports which command)
  }
  status finish(std::size_t k) { return kiln::detail::finish(ln.slots[k], job, t); }
  status start(std::size_t k, work_range r) {
    opencl_slot& s = ln.slots[k];
    stage_input(s, job, r);
    return submit(ds, ln, s, job, r.begin, r.count);
  }
  void compute_on_host(work_range r) const { job.compute_on_host(r); }
};

// Runs one lane on a pool thread; on any failure (errors and exceptions alike) waits out its queues
// (errors ignored: the first one is being reported) so that no command still reads or writes
// staging the next call will reuse, and tells the other lanes to stop.
status run_lane(const opencl_device_state& ds, opencl_lane& ln, std::size_t chunk, work_counter& work,
                const opencl_transfer_job& job, lane_times& t, std::atomic<bool>& failed) {
  const bool share = job.shared_with_host();
  lane_ops ops{ds, ln, job, chunk, t};
  const std::size_t piece = job.host_piece_of(lane_piece);
  status st = opencl_catching_bad_alloc([&]() -> status { return feed_lane(ops, work, share, failed, piece); });
  if (!st.ok()) {
    failed.store(true, std::memory_order_relaxed);
    for (auto& s : ln.slots) {
      (void)s.queue.finish();
      if (s.profiled()) (void)s.profiled.finish();
    }
  }
  for (auto& s : ln.slots) s.busy = false;
  return st;
}

// driven_pipeline's view of a job (see core/lanes.hpp): every slot of the used lanes, driven from
// one thread with the first lane's kernel object (so kernel arguments are set by that thread alone).
struct driven_ops {
  const opencl_device_state& ds;
  opencl_lane& driver_lane;
  const opencl_transfer_job& job;
  std::vector<opencl_slot*> all;
  lane_times& t;

  std::size_t slots() const { return all.size(); }
  void stage(std::size_t i, work_range r) { stage_input(*all[i], job, r); }
  // Host allocation failures (event objects, messages) become errors here, on the driver's
  // thread, which may be a pool thread: the pipeline then stops as for any failed call.
  status submit(std::size_t i, work_range r) {
    return opencl_catching_bad_alloc(
        [&]() -> status { return kiln::detail::submit(ds, driver_lane, *all[i], job, r.begin, r.count); });
  }
  result<bool> poll(std::size_t i) {
    return opencl_catching_bad_alloc([&]() -> result<bool> {
      opencl_slot& s = *all[i];
      cl_int es = CL_QUEUED;
      if (last_event(s).getInfo(CL_EVENT_COMMAND_EXECUTION_STATUS, &es) == CL_SUCCESS && es > CL_COMPLETE) return false;
      s.busy = false;
      KILN_TRY(complete(s, job, t));
      return true;
    });
  }
  void abandon(std::size_t i) {
    opencl_slot& s = *all[i];
    // Whatever was enqueued must end before the staging is reused (errors: the submit's is reported).
    (void)(job.phase_times ? s.profiled : s.queue).finish();
    s.busy = false;
  }
  void drain(std::size_t i, work_range r) { drain_output(*all[i], job, r); }
  void compute_on_host(work_range r) const { job.compute_on_host(r); }
  template <class F>
  status in_driver_context(F&& body) {
    return body();
  }
};

}  // namespace

status create_lanes(opencl_device_state& ds) {
  if (!ds.lanes.empty()) return {};
  const std::size_t count = staging_lanes();
  std::vector<opencl_lane> lanes(count);
  for (auto& ln : lanes) {
    cl_int e = CL_SUCCESS;
    for (auto& s : ln.slots) {
      s.queue = cl::CommandQueue(ds.context, ds.device, 0, &e);
      if (e != CL_SUCCESS) return cl_error("clCreateCommandQueue", e);
    }
    ln.kernel = cl::Kernel(ds.program, map_kernel_name, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateKernel", e);
  }
  ds.lanes = std::move(lanes);
  const std::size_t per_element = 2 * count * lane_slots * element_bytes;  // in + out of every slot
  const auto by_memory = static_cast<std::size_t>(ds.global_mem / staging_memory_divisor / per_element);
  ds.chunk_limit = std::max<std::size_t>(std::min(ds.max_alloc_elements, by_memory), 1);
  ds.request_limit = std::max(staging_budget_bytes / per_element / capacity_step, std::size_t{1}) * capacity_step;
  return {};
}

void release_idle_lanes(opencl_device_state& ds) {
  std::unique_lock<std::mutex> lock(ds.m, std::try_to_lock);
  // A job holds the device (its end arms the release again), or one ended since this release was
  // due (its arm is pending): the lanes are still in use.
  if (!lock.owns_lock() || ds.idle.pending()) return;
  release_lanes(ds);
}

held_memory lanes_held(opencl_device_state& ds) {
  std::lock_guard<std::mutex> lock(ds.m);
  held_memory h;
  if (ds.lane_capacity == 0) return h;
  const std::size_t slots = ds.lanes.size() * lane_slots;
  // In and out on each side of every slot, and a program's fault word on the device.
  h.pinned_bytes = slots * 2 * ds.lane_capacity * element_bytes;
  h.device_bytes = h.pinned_bytes + slots * sizeof(cl_int);
  return h;
}

result<run_stats> transfer(opencl_device_state& ds, opencl_transfer_job job) {
  std::lock_guard<std::mutex> lock(ds.m);
  // The lanes' buffers are freed after idle time from this job's end, whichever way it ends.
  arm_at_end arm(ds.idle);
  const auto t0 = clock_type::now();
  run_stats st;
  if (job.n == 0) return st;
  KILN_TRY(create_lanes(ds));
  std::size_t chunk = job.chunk_elements ? job.chunk_elements : ds.driven ? driven_chunk : lane_chunk;
  chunk = std::min({chunk, ds.request_limit, ds.chunk_limit, job.n});
  auto got = ensure_lanes(ds, chunk);
  if (!got) return got.err();
  const std::size_t chunk_got = *got;
  job.width = chunk_got;
  const std::size_t segment = job.resident ? job.segment : job.n;
  const std::size_t lanes = std::min(ds.lanes.size(), chunk_count(job.n, segment, chunk_got));
  if (job.phase_times)
    for (std::size_t l = 0; l < lanes; ++l)
      for (auto& s : ds.lanes[l].slots) {
        if (s.profiled()) continue;
        cl_int e = CL_SUCCESS;
        s.profiled = cl::CommandQueue(ds.context, ds.device, CL_QUEUE_PROFILING_ENABLE, &e);
        if (e != CL_SUCCESS) return cl_error("clCreateCommandQueue (profiled)", e);
      }
  if (job.kp)
    for (std::size_t l = 0; l < lanes; ++l) {
      KILN_TRY(set_param_args(ds.lanes[l].kernel, *job.kp));
      KILN_TRY(set_mont_args(ds.lanes[l].kernel, *job.kp, map_mont_arg));
    }
  if (job.program)
    for (std::size_t l = 0; l < lanes; ++l) {
      cl::Kernel& k = ds.lanes[l].program = job.program->built->lane_kernels[l];
      const cl_int errs[] = {k.setArg(2, job.program->params),
                             k.setArg(4, static_cast<cl_long>(job.program->iterations))};
      for (cl_int e : errs)
        if (e != CL_SUCCESS) return cl_error("clSetKernelArg (kiln_program)", e);
    }
  work_counter work(job.n, segment, job.stop);
  if (ds.driven) {
    // Every slot of the used lanes; the pool's threads copy, one of them drives.
    lane_times times;
    driven_ops ops{ds, ds.lanes[0], job, {}, times};
    for (std::size_t l = 0; l < lanes; ++l)
      for (auto& sl : ds.lanes[l].slots) ops.all.push_back(&sl);
    driven_pipeline<driven_ops> pipeline(ops, work, chunk_got, job.shared_with_host(),
                                         job.host_piece_of(lane_piece));
    KILN_TRY(pipeline.run(lanes));
    times.add_to(st);
  } else {
    KILN_TRY(run_lanes(
        lanes,
        [&](std::size_t l, lane_times& t, std::atomic<bool>& failed) {
          return run_lane(ds, ds.lanes[l], chunk_got, work, job, t, failed);
        },
        st));
  }
  st.chunks = work.ranges();
  st.host_elements = work.host_elements();
  st.total_s = seconds_since(t0);
  return st;
}

}  // namespace kiln::detail
