// The OpenCL backend's per-device state and pipeline: slots, lanes, the jobs streamed through them.
#pragma once

#include <array>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "backends/opencl/opencl_handles.hpp"
#include "core/backend.hpp"
#include "core/idle_release.hpp"
#include "core/kernel_ir.hpp"
#include "core/lanes.hpp"

namespace kiln::detail {

// The pipeline's shape (see transfer): staging_lanes() lanes (up to 16) of 3 slots, each slot its
// own queue. OpenCL has no portable way to tell pinned caller memory from pageable, so every chunk
// is copied through mapped staging, by all the pool's threads at once. How the slots are fed
// depends on the device (opencl_device_state::driven):
//  - GPUs and other accelerators: one thread makes every OpenCL call and the others copy
//    (driven_pipeline in core/lanes.hpp), because NVIDIA's OpenCL serialises enqueues behind a
//    lock that 16 threads contend for badly. With one driver a device-only run is clearly faster
//    than with a thread per lane, and about as fast as CUDA's on the same host
//    (docs/BENCHMARKS.md).
//  - the host's own CPU (PoCL): each lane fed by its own thread, which sleeps in the driver while
//    its slots are busy (feed_lane), leaving the cores to the device's kernels; spinning driver
//    and copy threads took those cores away, and runs on a small host took longer.
// KILN_OPENCL_PIPELINE=driven|lanes overrides the choice (tests run both everywhere).
constexpr std::size_t lane_slots = 3;

// One stage of a lane: its own in-order queue (so one chunk's upload can overlap another's
// download; a second, profiled one for runs that time their phases, because profiling costs
// time on every command), pinned staging on the host side, buffers on the device side, and the
// events of the chunk it carries. Queue order makes device-buffer reuse safe (a chunk's upload
// follows the previous chunk's kernel, its kernel the previous download); staging is reused only
// after finish() has waited for the slot's last command.
struct opencl_slot {
  cl::CommandQueue queue;     // in-order, without profiling: a run that does not time its phases
  cl::CommandQueue profiled;  // in-order, profiled: a run that does (created on first use)
  opencl_mapped_staging in_host;
  opencl_mapped_staging out_host;
  cl::Buffer in_dev;
  cl::Buffer out_dev;
  // A program's chunk: the lowest faulting index in it (INT_MAX for none), on the device and, once
  // the chunk has ended, here (program jobs only; see submit).
  cl::Buffer fault_dev;
  cl_int fault_host = INT_MAX;
  // The chunk's commands; an unused phase holds a null event (skipped when waiting and timing).
  cl::Event write, kernel, read, fault_read;
  bool busy = false;  // a chunk was enqueued and not yet finished (waited for, timed, drained)
  bool in32 = false;   // the chunk's input was packed to int32 in in_host (narrow_transfers)
  bool out32 = false;  // its results come back as int32 into out_host
  std::size_t begin = 0;
  std::size_t count = 0;

  // Frees the buffers (staging unmaps itself first).
  void release_buffers() {
    in_host.reset();
    out_host.reset();
    in_dev = cl::Buffer();
    out_dev = cl::Buffer();
    fault_dev = cl::Buffer();
    write = kernel = read = fault_read = cl::Event();
    busy = false;
  }
};

// Slots fed by one host thread at a time, with the lane's own kernel object (kernel arguments are
// per object, and lanes set theirs concurrently).
struct opencl_lane {
  cl::Kernel kernel;
  cl::Kernel program;  // the running program job's kernel object for this lane, if any
  std::array<opencl_slot, lane_slots> slots;
};

// A kernel (core/kernel_source.cpp, OpenCL dialect) built for one device, with one kernel object
// per lane, created with the lanes' count on first use.
struct opencl_built_program {
  cl::Program program;
  std::vector<cl::Kernel> lane_kernels;
};

struct opencl_device_state;

// Frees the lanes' buffers (staging and slot buffers; queues and kernel objects stay) unless a
// job holds the device or has ended since the release was due: idle's release.
void release_idle_lanes(opencl_device_state& ds);

// Everything one device needs. Context, queue and kernel are created once at probe time; the lanes
// on first use, then reused by every later call (pinned allocation costs milliseconds) and grown
// when a call wants larger chunks, and their buffers freed once the device has been idle for
// device_pool_idle() (`idle`). `m` serialises all use: the kernels' arguments and the lanes
// are shared state, and runs on one device gain nothing from interleaving.
struct opencl_device_state {
  cl::Device device;
  cl::Context context;
  cl::CommandQueue queue;  // in-order, profiled: resident buffers' kernels
  cl::Program program;
  cl::Kernel kernel;       // the map's one-element kernel (the lanes make their own from `program`)
  cl::Kernel pairs_kernel; // resident buffers' map (kiln_logistic_map_pairs)
  std::size_t local_size = 1;          // work-group size for every launch
  std::size_t max_alloc_elements = 1;  // CL_DEVICE_MAX_MEM_ALLOC_SIZE in elements
  std::uint64_t global_mem = 0;        // CL_DEVICE_GLOBAL_MEM_SIZE
  bool driven = false;                 // one thread drives the slots (see lane_slots)
  // Set with the lanes (create_lanes), because they depend on how many there are:
  std::size_t chunk_limit = 1;         // the largest chunk a slot may hold (allocation and memory bounds)
  std::size_t request_limit = 1;       // the largest chunk, asked for or default (the staging budget)
  std::mutex m;
  // The lanes (see transfer); each slot's staging holds a reference to the queue that unmaps it,
  // so destruction order does not matter.
  std::vector<opencl_lane> lanes;
  std::size_t lane_capacity = 0;     // elements per slot buffer; 0 = not allocated
  std::size_t lane_clamped = 0;      // the chunk that an allocation failure cut down to lane_capacity, if any
  // Programs (kernels written in Elixir), compiled once per device and kept by their source.
  std::map<std::string, opencl_built_program> programs;
  // The same kernels compiled for resident buffers (kiln_resident), one kernel object each.
  std::map<std::string, std::pair<cl::Program, cl::Kernel>> resident_programs;
  // Armed at the end of every job through the lanes; last, so that it is destroyed (and a
  // release under way waited for) before the lanes it frees.
  idle_release idle{device_pool_idle(), [this] { release_idle_lanes(*this); }};
};

// What the lanes hold now (opencl_device_state::lanes' buffers); waits for a job under way.
held_memory lanes_held(opencl_device_state& ds);

// A program as one job runs it: the kernel object of each lane is set up by transfer(); the
// chunks' faults meet in first_fault (the lowest faulting element index; no_fault for none). The
// host does not share a program's work (the interpreter is far slower per element than the map's
// SIMD kernel).
struct opencl_program_job {
  const opencl_built_program* built = nullptr;
  cl::Buffer params;
  std::int64_t iterations = 0;
  std::atomic<std::uint64_t> first_fault{no_fault};

  void note_fault(std::uint64_t index) {
    std::uint64_t cur = first_fault.load(std::memory_order_relaxed);
    while (index < cur && !first_fault.compare_exchange_weak(cur, index, std::memory_order_relaxed)) {
    }
  }
};

// What one pass through the lanes does to n elements. A run maps host_in to host_out through the
// slots' device buffers; an upload (host_in and resident) and a download (host_out and resident)
// move data between the host and a resident buffer through the same pinned staging.
struct opencl_transfer_job : map_job {
  opencl_program_job* program = nullptr;              // instead of kp: the program's kernel on every chunk
  const std::vector<cl::Buffer>* resident = nullptr;  // the buffers chunks go to / come from, instead of the slots'
  std::size_t segment = 0;                            // elements per resident buffer (the last may be shorter)
  std::size_t width = 0;                              // every kernel launch's width (enqueue_over); transfer sets it
};

// Creates the lanes (queues and kernel objects, no buffers yet) on first use, and the chunk
// bounds that depend on how many there are. At first use, not at probe time, so that listing
// devices starts no worker pool.
status create_lanes(opencl_device_state& ds);

// Streams one job through the device's slots, one job per device at a time, fed by the driven
// pipeline or by the lanes (see lane_slots); either way the work comes from one counter and runs
// on the worker pool. Sets the job's launch width to its chunk.
result<run_stats> transfer(opencl_device_state& ds, opencl_transfer_job job);

}  // namespace kiln::detail
