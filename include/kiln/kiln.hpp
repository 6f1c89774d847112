// Public API of Kiln: devices, options, the exact integer logistic map, host memory and device buffers (kernels: kiln/kernel.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/kernel.hpp"
#include "kiln/result.hpp"

namespace kiln {

namespace detail {
struct buffer_access;
}  // namespace detail

// The map x <- rem(mu * x * (x + 1), p), applied `iterations` times to every element.
//
// Contract (identical on every backend): the result equals Elixir's
//   Enum.reduce(1..iterations, x, fn _, x -> rem(mu * x * (x + 1), p) end)
// evaluated with unbounded integers, where rem/2 takes the sign of the dividend. Domain:
//   x, mu: any int64;  p: 1 .. 2^32 - 1;  iterations: >= 0 (0 returns x unchanged).
// For iterations >= 1 every result lies in (-p, p), so it always fits in int64.
// Anything outside the domain is errc::invalid_argument, never a wrong answer.
struct map_params {
  std::int64_t p = 6'700'417;
  std::int64_t mu = 22;
  std::int64_t iterations = 10;
};

inline constexpr std::int64_t max_p = (std::int64_t{1} << 32) - 1;

// Checks a map_params against the domain above.
status validate(const map_params& params);

// The reference definition for one element (the `scalar` backend's loop body).
std::int64_t logistic_map_reference(std::int64_t x, const map_params& params);

enum class backend_kind { scalar, cpu, opencl, cuda };

// "scalar", "cpu", "opencl", "cuda".
const char* backend_name(backend_kind kind) noexcept;

// One device of one backend, as the registry probed it.
struct device_info {
  backend_kind backend;
  int index = 0;                  // index within the backend, as taken by run_options::device
  std::string name;               // e.g. "NVIDIA H100 80GB HBM3", "AMD EPYC (16 threads)"
  std::string platform;           // OpenCL platform, CUDA driver/runtime, or "host"
  bool gpu = false;               // a GPU (what "auto" prefers)
  int compute_units = 0;          // SMs, OpenCL compute units, or CPU threads
  std::uint64_t memory_bytes = 0; // device (or host) memory
  bool available = false;         // usable right now
  std::string reason;             // why not, when !available
};

// Every backend Kiln knows, with each device; a backend with no usable device appears once,
// unavailable, with the reason. Probing happens once per process; later calls are cheap.
std::vector<device_info> devices();

// run_options::device for a run spread over every usable device of its backend: the CUDA
// backend feeds all its GPUs from one queue of chunks (each GPU, and the host's share, taking the
// next elements as soon as it is free); runs that go through device buffers (kernels of several
// arrays or outputs, one array beyond 4096 iterations) give each GPU one slice of every array, in
// proportion to its SMs. A backend with one usable device runs on that one. Other backends with
// several usable devices (OpenCL) return invalid_argument, as does device_buffer::upload, whose
// buffer lives on one device.
inline constexpr int all_devices = -1;

// How to run: which backend and device, and how large a chunk a device processes at once.
// GPU backends copy ordinary (pageable) host memory through pinned staging; a staged chunk whose
// values all fit in 32 bits crosses the bus as int32, and a map's results come back as int32
// whenever p <= 2^31 (KILN_NARROW_TRANSFERS=0 turns this off). Results are the same either way.
struct run_options {
  std::string backend = "auto";  // "auto" | "scalar" | "cpu" | "opencl" | "cuda"
  int device = 0;                // index among that backend's devices, or all_devices
  std::size_t chunk_elements = 0;// 0 = the backend's choice; otherwise at most this many per chunk
  // GPU backends: time every chunk's host->device, kernel and device->host phases with device
  // events and report their sums in run_stats. Off by default because the events cost a
  // noticeable share of an end-to-end run (docs/BENCHMARKS.md).
  bool phase_times = false;
  // GPU backends, runs between two host arrays: the host's cores share the array with the
  // device, each taking the next elements as soon as it is free, computed on the host with the
  // `cpu` backend's kernel (run_stats::host_elements counts them). From ordinary (pageable)
  // memory the staging threads do it while their device slots are busy; from page-locked memory
  // (host_memory), which needs no staging copies, the worker pool's other threads do. Runs of
  // fewer than 2^20 elements, or beyond 10 iterations fewer than 2^20 * iterations / 10, are not
  // shared (a host piece would outlast what the host's share saves).
  // Results are the same either way; off, the device computes every element (what comparing
  // devices, or timing a device's phases, wants).
  bool host_share = true;
  // Asks a run to stop early: once stop is requested, the run returns errc::cancelled within
  // about 10 ms of work on every backend (host pieces, device chunks and, for long iterations,
  // rounds of iterations are where it looks), having released what it held; the outputs are then
  // unspecified. An iteration count of any size stays runnable for a caller that waits.
  std::stop_token stop;
};

// Where the time went in one call (seconds; 0 where a phase does not exist or was not measured:
// a GPU backend measures the phases only with run_options::phase_times; host backends report
// their whole run as kernel_s; CUDA's chunks from ordinary (pageable) memory have no copies, their
// kernel reading and writing pinned host staging itself, so their whole time is kernel_s).
struct run_stats {
  std::string backend;
  std::string device;
  double host_to_device_s = 0;
  double kernel_s = 0;
  double device_to_host_s = 0;
  double total_s = 0;
  std::size_t chunks = 0;         // ranges the work was cut into (device chunks and host pieces)
  std::size_t host_elements = 0;  // elements the host computed (run_options::host_share)
};

// Resolves "auto" and checks availability: the backend and device a run would use (with
// all_devices, the first usable one of the backend's devices).
result<device_info> resolve(const run_options& options);

// Runs the map over `in`, writing `out` (same size; may alias `in` exactly, not partially).
// Safe to call from many threads at once. The map is a kernel like any other (kiln::run with
// logistic_kernel()), which every backend recognises and runs with its hand-tuned code.
result<run_stats> logistic_map(std::span<const std::int64_t> in, std::span<std::int64_t> out,
                               const map_params& params, const run_options& options = {});

// The built-in map as a kernel of three arguments (x, p, mu): rem(mu * x * (x + 1), p), applied
// `iterations` times. Its code lives for the whole process.
kernel logistic_kernel(std::int64_t iterations);

// Host memory that devices reach fastest: page-locked (pinned) blocks where a CUDA device is
// usable, so transfers skip the staging copy, else ordinary memory with transparent huge pages.
// Blocks of 2 MiB and more are pooled: destroying one returns it for reuse, because pinning and
// first-touch page faults cost far more than the copies they save. Safe to use from many threads.
//
// allocate() never pins on the caller's thread: pinning 256 MiB costs about 100 ms, twenty times
// a staged (pageable) GPU run of that size, and saves under a millisecond per run. It hands out
// a free pinned block of the size class if the pool has one, else a free ordinary one, else fresh
// ordinary memory (which GPU backends stage), and then asks the pool's thread to pin a block of
// that class for a later call. So a process's first call of a size is a staged run, a loop that
// drops its results gets pinned blocks from the next calls on, and a caller holding many results
// gets ordinary memory once the bound is reached, at a staged run's cost, never a pin's. Fresh
// ordinary blocks of 8 MiB and more are first touched on the worker threads before they are
// returned (one thread takes several times as long to fault in 256 MiB), so a run's pipeline
// does not stall on page faults.
//
// Bound: page-locked bytes (in use + cached + being pinned) stay under KILN_PINNED_LIMIT (bytes;
// 0: never pin), by default the smaller of 1/8 of physical memory and 8 GiB; free ordinary blocks
// are kept up to the smaller of 1/8 of physical memory and 4 GiB. A cached block left unused for
// KILN_HOST_POOL_IDLE_MS (default 2000) is released, pinned ones unpinned, so a process that has
// finished its jobs keeps nothing pooled beyond that time. Both are read once, at first use.
class host_memory {
 public:
  host_memory() = default;
  ~host_memory();
  host_memory(host_memory&& o) noexcept;
  host_memory& operator=(host_memory&& o) noexcept;

  // `elements` int64 slots, 64-byte aligned; contents are unspecified.
  static result<host_memory> allocate(std::size_t elements);
  // As allocate(), but where no pinned block of the size class is free and the bound leaves
  // room, pins one now, on this thread (about 100 ms per 256 MiB): for a block kept for many
  // runs, such as `kiln run --pinned`'s. Ordinary memory where nothing can be pinned.
  static result<host_memory> allocate_pinned(std::size_t elements);

  std::span<std::int64_t> span() const noexcept { return {data_, size_}; }
  std::int64_t* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool pinned() const noexcept { return pinned_; }

 private:
  static result<host_memory> make(std::size_t elements, bool pin_now);

  std::int64_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_bytes_ = 0;
  bool pinned_ = false;
};

// Copies `parts`, one after another, into `out`, whose size must be their total
// (invalid_argument otherwise); on every core, with non-temporal stores for large outputs. How
// results computed apart (by several BEAM nodes, say) become one array. `out` must not overlap
// any part.
status concatenate(std::span<const std::span<const std::int64_t>> parts, std::span<std::int64_t> out);

// Lowers the calling thread to the niceness of Kiln's worker threads (KILN_WORKER_NICE, default
// 19; 0 leaves it as it is), for threads an embedding starts to call the engine from: they then
// yield the cores to latency-sensitive threads (a BEAM's schedulers) as the workers do, and the
// threads a driver starts from them inherit it. Where the OS refuses (a sandbox), nothing changes.
void lower_thread_priority() noexcept;

// Data kept on a device between calls, so that runs can be chained without copies.
class device_buffer {
 public:
  class impl;
  ~device_buffer();
  device_buffer(device_buffer&&) noexcept;
  device_buffer& operator=(device_buffer&&) noexcept;

  // Copies `data` to the device chosen by `options`.
  static result<device_buffer> upload(std::span<const std::int64_t> data, const run_options& options = {});
  // `elements` on the device chosen by `options`, with unspecified contents (a kernel's output).
  static result<device_buffer> allocate(std::size_t elements, const run_options& options = {});

  std::size_t size() const noexcept;
  const device_info& device() const noexcept;

  // Applies the map in place on the device (kiln::run over buffers with logistic_kernel()).
  result<run_stats> run(const map_params& params);
  // Copies the current contents back; `out.size()` must equal size().
  status download(std::span<std::int64_t> out) const;

 private:
  explicit device_buffer(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
  friend struct detail::buffer_access;  // the engine's view of what a buffer holds
};

}  // namespace kiln
