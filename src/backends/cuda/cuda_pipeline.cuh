// The CUDA backend's per-device state and pipeline: slots, lanes, lane groups and the jobs streamed through them.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "backends/cuda/cuda_buffers.cuh"
#include "backends/cuda/cuda_resources.cuh"
#include "core/backend.hpp"
#include "core/idle_release.hpp"
#include "core/kernel_ir.hpp"
#include "core/lanes.hpp"

namespace kiln::detail {

// One stage of a lane: pointers into its group's staging blocks (both sides of the bus), its own
// stream (so one chunk's upload overlaps another's download: the copy engines run both directions
// at once only for different streams), four timing events that bracket the phases of the chunk
// it carries when the caller asked for phase times (before H2D, after H2D, after the kernel,
// after D2H), and an event without timing that marks its end otherwise (timing events slow a
// run down measurably; docs/BENCHMARKS.md).
struct cuda_slot {
  stream_handle stream;
  std::int64_t* in_host = nullptr;
  std::int64_t* out_host = nullptr;
  std::int64_t* in_dev = nullptr;
  std::int64_t* out_dev = nullptr;
  std::array<event_handle, 4> events;
  event_handle done;  // recorded after the chunk's last command when phases are not timed
  bool busy = false;  // a chunk was enqueued and not yet finished (drained, timed)
  bool in32 = false;   // the chunk's staged input was packed to int32 (narrow_transfers)
  bool out32 = false;  // the chunk's results come back as int32 into out_host
  bool zero_copy = false;  // the chunk's kernel reads and writes host memory itself (zero_copy)
  // done() saw the chunk complete, so finish() need not wait for it: every CUDA call takes a
  // lock that the lanes contend for, and a query then a synchronise cost two per chunk, which
  // made zero-copy runs measurably slower (docs/BENCHMARKS.md).
  bool completed = false;
  std::size_t begin = 0;
  std::size_t count = 0;

  // The event recorded after the chunk's last command: the fourth timing event, or `done`.
  const event_handle& last(bool phase_times) const { return phase_times ? events[3] : done; }
};

// Slots fed by one host thread at a time.
struct cuda_lane {
  std::vector<cuda_slot> slots;
};

// A compiled kernel (core/kernel_source.cpp, CUDA dialect) as one job runs it: its kernel for
// each device (by index; compiled for that device's compute capability), its parameters and
// iteration count. The host does not share a program's work: the host interpreter is far slower
// per element than the map's SIMD kernel, so its pieces would finish long after the device's
// chunks.
struct cuda_program_launch {
  std::vector<cudaKernel_t> kernels;
  std::span<const std::int64_t> params;
  std::int64_t iterations = 0;
  std::uint64_t first_fault = no_fault;  // set by transfer()
};

// Whether [p, p + bytes) is page-locked host memory (checked at both ends: Kiln's pinned blocks
// are single allocations). Cheap next to the copy of the whole array it saves.
bool cuda_is_pinned(const void* p, std::size_t bytes);

// What one pass through the pipeline does to n elements. A run maps host_in to host_out through
// the slots' device buffers, with the map (kp) or a compiled program; an upload (host_in and
// resident) and a download (host_out and resident) move data between the host and a resident
// device buffer.
struct cuda_transfer_job : map_job {
  cuda_program_launch* program = nullptr;  // instead of kp: the program's kernel on every chunk
  std::int64_t* resident = nullptr;        // device memory the chunks go to / come from, instead of the slots'
  // The caller's memory is page-locked: DMA reaches it directly, no staging copy on that side.
  bool in_pinned = false;
  bool out_pinned = false;

  bool staged() const { return (host_in && !in_pinned) || (host_out && !out_pinned); }

  // Finds out which side of a run is page-locked. Page-locked memory is portable under unified
  // addressing (every platform this CUDA supports), so memory pinned for one device is pinned for all.
  void set_pinned(std::span<const std::int64_t> in, std::span<std::int64_t> out) {
    in_pinned = cuda_is_pinned(in.data(), in.size_bytes());
    out_pinned = cuda_is_pinned(out.data(), out.size_bytes());
  }
};

// Lanes of one shape with their staging: one pinned and one device allocation, carved into slots
// (two allocations instead of four per slot keep the first call's set-up short). Allocated on
// first use, reused by every later call, and regrown when a call wants larger chunks. The lane
// count is asked for at that first use too, so that listing devices starts no worker pool.
class cuda_lane_group {
 public:
  cuda_lane_group(std::size_t (*lanes)(), std::size_t slots, std::size_t default_chunk, std::size_t chunk_limit)
      : lanes_(lanes), slots_(slots), default_chunk_(default_chunk), chunk_limit_(chunk_limit) {}

  // Valid after ensure().
  std::size_t lane_count() const { return lanes_v_.size(); }
  cuda_lane& at(std::size_t i) { return lanes_v_[i]; }

  // Makes sure the group has lanes enough for a job of `elements` and every slot holds at least
  // its chunk; returns the chunk to use, smaller when free device memory does not allow the
  // requested one. The caller has made the device current.
  result<std::size_t> ensure(std::size_t chunk_request, std::size_t elements, int device);

  void clear();

  // What the group holds, handed over so that it can be freed outside the device's lock (in the
  // device's context); the group is left as before its first use.
  struct contents {
    std::vector<cuda_lane> lanes;  // destroyed last: their streams and events
    pinned_memory host;
    device_memory dev;
  };
  contents take();

  // Bytes of the staging block, and as many of the device block (0 before first use).
  std::size_t bytes() const { return lanes_v_.size() * slots_ * 2 * capacity_ * sizeof(std::int64_t); }

 private:
  std::size_t (*lanes_)();
  std::size_t slots_, default_chunk_, chunk_limit_;
  std::vector<cuda_lane> lanes_v_;
  pinned_memory host_block_;
  device_memory dev_block_;
  std::size_t capacity_ = 0;         // elements per slot buffer
  std::size_t clamped_request_ = 0;  // the chunk that free memory cut down to capacity_, if any
};

// Everything Kiln keeps per CUDA device: the two lane groups (see the shapes in cuda_pipeline.cu),
// the pool of resident buffers' bodies, and a program's parameters. The pipeline's members are
// defined in cuda_pipeline.cu, a program's (begin_program, program_fault, launch_program) in
// cuda_kernels.cu.
class cuda_device_state {
 public:
  cuda_device_state(int index, int sm_count, int arch, std::size_t memory_bytes);
  cuda_device_state(const cuda_device_state&) = delete;
  cuda_device_state& operator=(const cuda_device_state&) = delete;

  ~cuda_device_state();

  int index() const { return index_; }
  cuda_buffer_pool& buffers() { return buffers_; }
  int sm_count() const { return sm_count_; }
  int arch() const { return arch_; }
  idle_release& idle() { return idle_; }

  // What the device keeps between jobs now (see held_memory); waits for a job under way.
  held_memory held();

  // Streams one job through the lanes of its shape, with the host's share (see map_job).
  // The caller has made this device current.
  result<run_stats> transfer(const cuda_transfer_job& job);

  // The same over several devices (distinct, in ascending index order): one work counter feeds
  // every device's lanes and the host's workers, so each GPU takes chunks as fast as it finishes
  // them. A staged job divides the staging lanes (one per pool thread) among the devices.
  static result<run_stats> transfer(std::span<cuda_device_state* const> devs, const cuda_transfer_job& job);

 private:
  // feed_lane's view of one lane (see core/lanes.hpp).
  struct lane_ops;

  // Before a program's job (device current, device locked): its parameters, after one word that
  // the kernels lower to the first faulting element's index, set to "none".
  status begin_program(const cuda_program_launch& p);

  // After a program's job: the lowest faulting element index its kernels recorded here.
  result<std::uint64_t> program_fault();

  // Enqueues the program's kernel over one chunk: 256 threads a block, one element a thread.
  status launch_program(const void* in_elements, void* out_elements, bool narrow_in, const cuda_program_launch& p,
                        std::size_t begin, std::size_t count, cudaStream_t stream);

  // idle_'s release: frees the lane groups, the program's memory and the pool's bodies unless a
  // job holds the device or has ended since the release was due. Freed outside the lock (cudaFree
  // waits for the whole device, resident buffers' kernels too), in the device's context.
  void release_idle();

  // Carries chunks through one lane, on a pool thread; with `share` its thread computes host
  // pieces while its slots are busy.
  status run_lane(cuda_lane& ln, std::size_t chunk, work_counter& work, bool share, const cuda_transfer_job& job,
                  lane_times& t, std::atomic<bool>& failed);

  // Enqueues one chunk on the slot's stream. Stream order makes device-buffer reuse safe; host
  // staging is reused only after finish() has seen the slot's last event. The caller has set
  // s.in32 (a staged input packed to int32); results of a staged map come back as int32
  // when they all fit (narrow_results). A zero-copy chunk (see zero_copy) has no copy commands:
  // its kernel reads and writes host memory itself, so its phase times put everything in the kernel.
  status submit(cuda_slot& s, const cuda_transfer_job& job, std::size_t begin, std::size_t count);

  // Adds the phases of a slot's completed chunk, timed by its four events. A zero-copy chunk has
  // no copies: its whole time, transfers included, is the kernel's.
  static status add_phase_times(const cuda_slot& s, lane_times& t);

  // Waits for the slot's chunk, adds its phase times and copies its output to the caller. The
  // sums are per chunk: phases of different chunks overlap, so together they can exceed total_s,
  // and each interval also holds any time the chunk queued behind another stream's work.
  status finish(cuda_slot& s, const cuda_transfer_job& job, lane_times& t);

  int index_;
  int sm_count_;
  int arch_;  // compute capability, major * 10 + minor
  cuda_buffer_pool buffers_;
  std::mutex m_;
  cuda_lane_group direct_;
  cuda_lane_group staged_;
  // A program's fault word and parameters (begin_program), and the stream that moves them.
  device_memory program_mem_;
  std::size_t program_bytes_ = 0;
  stream_handle aux_;
  // Armed at the end of every job and whenever the pool takes a body; last, so that it is
  // destroyed before what its release frees (the destructor cancels it first in any case).
  idle_release idle_{device_pool_idle(), [this] { release_idle(); }};
};

}  // namespace kiln::detail
