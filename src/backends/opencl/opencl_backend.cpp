// The `opencl` backend: every device of every OpenCL platform, runs streamed through cached lanes of pinned staging.

// opencl.hpp only asks whether CL_HPP_ENABLE_EXCEPTIONS is defined (even as 0 it switches
// exceptions on); this file checks every returned cl_int instead, so it must stay undefined.
#undef CL_HPP_ENABLE_EXCEPTIONS
#include <CL/opencl.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <climits>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backends/opencl/build_thread.hpp"
#include "backends/opencl/opencl_library.hpp"
#include "core/backend.hpp"
#include "core/lanes.hpp"
#include "core/settings.hpp"
#include "core/thread_pool.hpp"

namespace kiln::detail {

// core/modmath.h followed by logistic.cl, generated at build time (cmake/embed_source.cmake).
extern const char* const opencl_kernel_source;

namespace {

using clock_type = std::chrono::steady_clock;

// Goes ahead of opencl_kernel_source: the fp64 pragma must precede modmath.h's first double,
// and FP_CONTRACT OFF keeps every rounding that modmath.h's exactness argument counts.
constexpr const char* kernel_prelude =
    "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
    "#pragma OPENCL FP_CONTRACT OFF\n";

constexpr const char* kernel_name = "kiln_logistic_map";

// A multiple of every GPU's SIMD width (32 or 64); the kernel uses no local memory, so larger
// groups gain nothing. Capped by what the device and the built kernel allow.
constexpr std::size_t preferred_local_size = 256;

// The pipeline's shape (see transfer): staging_lanes() lanes (up to 16) of 3 slots, each slot its
// own queue. OpenCL has no portable way to tell pinned caller memory from pageable, so every chunk
// is copied through mapped staging, by all the pool's threads at once. How the slots are fed
// depends on the device (device_state::driven):
//  - GPUs and other accelerators: one thread makes every OpenCL call and the others copy
//    (driven_pipeline in core/lanes.hpp), because NVIDIA's OpenCL serialises enqueues behind a
//    lock that 16 threads contend for badly. Measured on the H100 host (2^25 elements, the device
//    computing everything): 8.2-9.6 ms against 11.0-13.2 ms with a thread per lane, and CUDA's
//    8.3-9.0 ms on the same instance.
//  - the host's own CPU (PoCL): each lane fed by its own thread, which sleeps in the driver while
//    its slots are busy (feed_lane), leaving the cores to the device's kernels; spinning driver
//    and copy threads took those cores away (56 ms against 68-104 ms for 2^22 elements on 2 cores).
// KILN_OPENCL_PIPELINE=driven|lanes overrides the choice (tests run both everywhere).
constexpr std::size_t lane_slots = 3;
// Driven: 2 MiB chunks (2^17 took 9.0-9.8 ms, 2^18 8.2-9.6 ms, 2^19 9.2-10.9 ms on the H100).
// Lanes: 4 MiB, because each thread's commands wait for the others' (2^17 elements took twice as
// long as 2^19 end to end on the H100).
constexpr std::size_t driven_chunk = std::size_t{1} << 18;
constexpr std::size_t lane_chunk = std::size_t{1} << 19;
// Larger chunks (chunk_elements) are allowed while the lanes' pinned staging stays within this.
constexpr std::size_t staging_budget_bytes = std::size_t{512} << 20;
// Slot buffers grow in steps of 64 Ki elements so that slightly different sizes reuse them.
constexpr std::size_t capacity_step = std::size_t{1} << 16;
// The lanes' device buffers (in + out per slot) take at most this share of global memory,
// leaving the rest to resident data and other users of the device.
constexpr std::size_t staging_memory_divisor = 4;

constexpr std::size_t element_bytes = sizeof(std::int64_t);

const char* cl_error_name(cl_int code) {
  switch (code) {
    case CL_SUCCESS: return "CL_SUCCESS";
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_PROFILING_INFO_NOT_AVAILABLE: return "CL_PROFILING_INFO_NOT_AVAILABLE";
    case CL_MEM_COPY_OVERLAP: return "CL_MEM_COPY_OVERLAP";
    case CL_IMAGE_FORMAT_MISMATCH: return "CL_IMAGE_FORMAT_MISMATCH";
    case CL_IMAGE_FORMAT_NOT_SUPPORTED: return "CL_IMAGE_FORMAT_NOT_SUPPORTED";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_MAP_FAILURE: return "CL_MAP_FAILURE";
    case CL_MISALIGNED_SUB_BUFFER_OFFSET: return "CL_MISALIGNED_SUB_BUFFER_OFFSET";
    case CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST: return "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST";
    case CL_COMPILE_PROGRAM_FAILURE: return "CL_COMPILE_PROGRAM_FAILURE";
    case CL_LINKER_NOT_AVAILABLE: return "CL_LINKER_NOT_AVAILABLE";
    case CL_LINK_PROGRAM_FAILURE: return "CL_LINK_PROGRAM_FAILURE";
    case CL_DEVICE_PARTITION_FAILED: return "CL_DEVICE_PARTITION_FAILED";
    case CL_KERNEL_ARG_INFO_NOT_AVAILABLE: return "CL_KERNEL_ARG_INFO_NOT_AVAILABLE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_DEVICE_TYPE: return "CL_INVALID_DEVICE_TYPE";
    case CL_INVALID_PLATFORM: return "CL_INVALID_PLATFORM";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_CONTEXT: return "CL_INVALID_CONTEXT";
    case CL_INVALID_QUEUE_PROPERTIES: return "CL_INVALID_QUEUE_PROPERTIES";
    case CL_INVALID_COMMAND_QUEUE: return "CL_INVALID_COMMAND_QUEUE";
    case CL_INVALID_HOST_PTR: return "CL_INVALID_HOST_PTR";
    case CL_INVALID_MEM_OBJECT: return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_IMAGE_FORMAT_DESCRIPTOR: return "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR";
    case CL_INVALID_IMAGE_SIZE: return "CL_INVALID_IMAGE_SIZE";
    case CL_INVALID_SAMPLER: return "CL_INVALID_SAMPLER";
    case CL_INVALID_BINARY: return "CL_INVALID_BINARY";
    case CL_INVALID_BUILD_OPTIONS: return "CL_INVALID_BUILD_OPTIONS";
    case CL_INVALID_PROGRAM: return "CL_INVALID_PROGRAM";
    case CL_INVALID_PROGRAM_EXECUTABLE: return "CL_INVALID_PROGRAM_EXECUTABLE";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME";
    case CL_INVALID_KERNEL_DEFINITION: return "CL_INVALID_KERNEL_DEFINITION";
    case CL_INVALID_KERNEL: return "CL_INVALID_KERNEL";
    case CL_INVALID_ARG_INDEX: return "CL_INVALID_ARG_INDEX";
    case CL_INVALID_ARG_VALUE: return "CL_INVALID_ARG_VALUE";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_DIMENSION: return "CL_INVALID_WORK_DIMENSION";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_WORK_ITEM_SIZE: return "CL_INVALID_WORK_ITEM_SIZE";
    case CL_INVALID_GLOBAL_OFFSET: return "CL_INVALID_GLOBAL_OFFSET";
    case CL_INVALID_EVENT_WAIT_LIST: return "CL_INVALID_EVENT_WAIT_LIST";
    case CL_INVALID_EVENT: return "CL_INVALID_EVENT";
    case CL_INVALID_OPERATION: return "CL_INVALID_OPERATION";
    case CL_INVALID_GL_OBJECT: return "CL_INVALID_GL_OBJECT";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_MIP_LEVEL: return "CL_INVALID_MIP_LEVEL";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case CL_INVALID_PROPERTY: return "CL_INVALID_PROPERTY";
    case CL_INVALID_IMAGE_DESCRIPTOR: return "CL_INVALID_IMAGE_DESCRIPTOR";
    case CL_INVALID_COMPILER_OPTIONS: return "CL_INVALID_COMPILER_OPTIONS";
    case CL_INVALID_LINKER_OPTIONS: return "CL_INVALID_LINKER_OPTIONS";
    case CL_INVALID_DEVICE_PARTITION_COUNT: return "CL_INVALID_DEVICE_PARTITION_COUNT";
    case CL_PLATFORM_NOT_FOUND_KHR: return "CL_PLATFORM_NOT_FOUND_KHR";
    default: return "unknown OpenCL error";
  }
}

// "<call> failed: CL_NAME (code)"; allocation failures become out_of_memory so callers can
// retry with smaller data, everything else is a device error.
// "CL_NAME (code)".
std::string cl_code(cl_int code) { return std::string(cl_error_name(code)) + " (" + std::to_string(code) + ")"; }

error cl_error(const std::string& call, cl_int code) {
  const errc kind = code == CL_MEM_OBJECT_ALLOCATION_FAILURE || code == CL_OUT_OF_HOST_MEMORY ? errc::out_of_memory
                                                                                                : errc::device_error;
  return make_error(kind, call + " failed: " + cl_code(code));
}

std::string trim(std::string s) {
  const char* space = " \t\r\n";
  const auto b = s.find_first_not_of(space);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(space) - b + 1);
}

// The first lines of a build log: enough to recognise the problem in a device listing.
std::string log_head(const std::string& log) {
  constexpr int max_lines = 8;
  constexpr std::size_t max_line = 200;
  std::istringstream lines(log);
  std::string line, head;
  int count = 0;
  while (count < max_lines && std::getline(lines, line)) {
    line = trim(line);
    if (line.empty()) continue;
    if (line.size() > max_line) line = line.substr(0, max_line) + "...";
    head += (count++ ? " | " : "") + line;
  }
  return head.empty() ? "(empty build log)" : head;
}

// Builds `program` for `dev`; on failure the error carries the head of the build log. `what`
// ("kernel", "program") begins its message. The build runs on a thread with a deep stack
// (build_thread.hpp): an in-process compiler recurses with the program's length, and the caller
// may be a VM's dirty scheduler with a small stack.
status build(cl::Program& program, const cl::Device& dev, const char* what) {
  cl_int e = CL_SUCCESS;
  KILN_TRY(run_on_build_thread([&] { e = program.build(dev, ""); }));
  if (e == CL_SUCCESS) return {};
  cl_int le = CL_SUCCESS;
  const std::string log = program.getBuildInfo<CL_PROGRAM_BUILD_LOG>(dev, &le);
  return make_error(errc::device_error, std::string(what) + " build failed, clBuildProgram: " + cl_code(e) +
                                            "; build log: " + (le == CL_SUCCESS ? log_head(log) : "unavailable"));
}

bool has_extension(const std::string& extensions, const std::string& name) {
  std::istringstream words(extensions);
  std::string w;
  while (words >> w)
    if (w == name) return true;
  return false;
}

// Seconds a completed command took on the device; 0 where the queue could not time it.
double event_seconds(const cl::Event& e) {
  cl_int e1 = CL_SUCCESS, e2 = CL_SUCCESS;
  const cl_ulong start = e.getProfilingInfo<CL_PROFILING_COMMAND_START>(&e1);
  const cl_ulong end = e.getProfilingInfo<CL_PROFILING_COMMAND_END>(&e2);
  if (e1 != CL_SUCCESS || e2 != CL_SUCCESS || end < start) return 0;
  return static_cast<double>(end - start) * 1e-9;
}

// Host memory the device reaches by DMA: a CL_MEM_ALLOC_HOST_PTR buffer, mapped once and kept
// mapped for its whole life (NVIDIA's documented way to get pinned memory in OpenCL). Transfers
// then use the mapped pointer as their host pointer, so the driver needs no staging of its own.
class mapped_staging {
 public:
  mapped_staging() = default;
  mapped_staging(const mapped_staging&) = delete;
  mapped_staging& operator=(const mapped_staging&) = delete;
  ~mapped_staging() { reset(); }

  status create(const cl::Context& context, const cl::CommandQueue& queue, std::size_t elements) {
    reset();
    const std::size_t bytes = elements * element_bytes;
    cl_int e = CL_SUCCESS;
    buffer_ = cl::Buffer(context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, nullptr, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateBuffer (pinned staging)", e);
    // Read and write: the host fills input staging, and a read command (a host-side write)
    // fills output staging.
    void* p = queue.enqueueMapBuffer(buffer_, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes, nullptr, nullptr, &e);
    if (e != CL_SUCCESS || !p) {
      buffer_ = cl::Buffer();
      return cl_error("clEnqueueMapBuffer (pinned staging)", e != CL_SUCCESS ? e : CL_MAP_FAILURE);
    }
    queue_ = queue;
    data_ = static_cast<std::int64_t*>(p);
    return {};
  }

  // Unmaps before the release: a buffer released while mapped is left to the platform's mercy.
  void reset() {
    if (data_) {
      // Errors are ignored: nothing more can be done about them while tearing down.
      (void)queue_.enqueueUnmapMemObject(buffer_, data_);
      (void)queue_.finish();
    }
    data_ = nullptr;
    buffer_ = cl::Buffer();
    queue_ = cl::CommandQueue();
  }

  std::int64_t* data() const { return data_; }

 private:
  cl::Buffer buffer_;
  cl::CommandQueue queue_;  // the queue that mapped it, which unmaps it
  std::int64_t* data_ = nullptr;
};

// One stage of a lane: its own in-order queue (so one chunk's upload can overlap another's
// download; a second, profiled one for runs that time their phases, because profiling costs
// time on every command), pinned staging on the host side, buffers on the device side, and the
// events of the chunk it carries. Queue order makes device-buffer reuse safe (a chunk's upload
// follows the previous chunk's kernel, its kernel the previous download); staging is reused only
// after finish() has waited for the slot's last command.
struct slot {
  cl::CommandQueue queue;     // in-order, without profiling: a run that does not time its phases
  cl::CommandQueue profiled;  // in-order, profiled: a run that does (created on first use)
  mapped_staging in_host;
  mapped_staging out_host;
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
struct lane {
  cl::Kernel kernel;
  cl::Kernel program;  // the running program job's kernel object for this lane, if any
  std::array<slot, lane_slots> slots;
};

// A kernel (core/kernel_source.cpp, OpenCL dialect) built for one device, with one kernel object
// per lane, created with the lanes' count on first use.
struct built_program {
  cl::Program program;
  std::vector<cl::Kernel> lane_kernels;
};

// Everything one device needs. Context, queue and kernel are created once at probe time; the lanes
// on first use, then reused by every later call (pinned allocation costs milliseconds) and grown
// when a call wants larger chunks. `m` serialises all use: the kernels' arguments and the lanes
// are shared state, and runs on one device gain nothing from interleaving.
struct device_state {
  cl::Device device;
  cl::Context context;
  cl::CommandQueue queue;  // in-order, profiled: resident buffers' kernels
  cl::Program program;
  cl::Kernel kernel;       // resident buffers' kernel; each lane has its own
  std::size_t local_size = 1;          // work-group size for every launch
  std::size_t max_alloc_elements = 1;  // CL_DEVICE_MAX_MEM_ALLOC_SIZE in elements
  std::uint64_t global_mem = 0;        // CL_DEVICE_GLOBAL_MEM_SIZE
  bool driven = false;                 // one thread drives the slots (see lane_slots)
  // Set with the lanes (create_lanes), because they depend on how many there are:
  std::size_t chunk_limit = 1;         // the largest chunk a slot may hold (allocation and memory bounds)
  std::size_t request_limit = 1;       // the largest chunk_elements honoured (the staging budget)
  std::mutex m;
  // The lanes (see transfer); each slot's staging holds a reference to the queue that unmaps it,
  // so destruction order does not matter.
  std::vector<lane> lanes;
  std::size_t lane_capacity = 0;     // elements per slot buffer; 0 = not allocated
  std::size_t lane_clamped = 0;      // the chunk that an allocation failure cut down to lane_capacity, if any
  // Programs (kernels written in Elixir), compiled once per device and kept by their source.
  std::map<std::string, built_program> programs;
  // The same kernels compiled for resident buffers (kiln_resident), one kernel object each.
  std::map<std::string, std::pair<cl::Program, cl::Kernel>> resident_programs;
};

// Waits for the resident queue of a device on every way out of a run, so that nothing a call
// enqueued outlives it (the next call, or the caller's view of the data, depends on it).
class drain_guard {
 public:
  explicit drain_guard(device_state& ds) : ds_(ds) {}
  drain_guard(const drain_guard&) = delete;
  drain_guard& operator=(const drain_guard&) = delete;
  ~drain_guard() {
    // A failure here was (or will be) reported by the command that caused it.
    (void)ds_.queue.finish();
  }

 private:
  device_state& ds_;
};

// Arguments 3..8 are fixed for a whole call; set them once, under the device lock.
status set_param_args(cl::Kernel& k, const kernel_params& kp) {
  const cl_int errs[] = {k.setArg(3, static_cast<cl_long>(kp.iterations)), k.setArg(4, kp.p_d),
                         k.setArg(5, kp.pinv),   k.setArg(6, kp.mu_res),
                         k.setArg(7, kp.two32),  k.setArg(8, static_cast<cl_int>(kp.negative))};
  for (cl_int e : errs)
    if (e != CL_SUCCESS) return cl_error("clSetKernelArg", e);
  return {};
}

// Launches kernel object `k` (its arguments set) over `n` elements with a global size of `width`
// (at least n) rounded up to the device's work-group size (the kernels guard their last group);
// `call` names it in errors. Every launch of one job takes the same width, the job's chunk, even
// over a short last chunk: PoCL (3.1) keeps a compiled version of a kernel per grid width and
// releases a finished launch against the newest version that matches, not the one it ran, so a
// narrower launch still running when a wider one first appears corrupts its counts and aborts the
// process. Jobs run one at a time per device, so one width per job keeps every launch on one version.
status enqueue_over(const device_state& ds, cl::Kernel& k, const cl::CommandQueue& q, std::size_t n,
                    std::size_t width, cl::Event* done, const char* call) {
  const std::size_t items = std::max(n, width);
  const std::size_t global = (items + ds.local_size - 1) / ds.local_size * ds.local_size;
  const cl_int e =
      q.enqueueNDRangeKernel(k, cl::NullRange, cl::NDRange(global), cl::NDRange(ds.local_size), nullptr, done);
  if (e != CL_SUCCESS) return cl_error(call, e);
  return {};
}

// Maps the first `len` elements of `in` into `out` (the same buffer for in-place runs) with kernel
// object `k`, whose fixed arguments are set, launched `width` wide (enqueue_over); in32 / out32:
// the chunk's input / output is int32.
status enqueue_map(const device_state& ds, cl::Kernel& k, const cl::CommandQueue& q, const cl::Buffer& in,
                   const cl::Buffer& out, std::size_t len, std::size_t width, cl::Event* done, bool in32 = false,
                   bool out32 = false) {
  const cl_int errs[] = {k.setArg(0, in), k.setArg(1, out), k.setArg(2, static_cast<cl_ulong>(len)),
                         k.setArg(9, static_cast<cl_int>(in32)), k.setArg(10, static_cast<cl_int>(out32))};
  for (cl_int e : errs)
    if (e != CL_SUCCESS) return cl_error("clSetKernelArg", e);
  return enqueue_over(ds, k, q, len, width, done, "clEnqueueNDRangeKernel");
}

// A program's chunk, after its upload: the fault index reset, the kernel over `count` elements
// (faulting ones written with their input, so in-place runs keep it for the fault's report), and
// the fault index read back into the slot. The kernel's fixed arguments are set (transfer).
status enqueue_program(const device_state& ds, cl::Kernel& k, const cl::CommandQueue& q, slot& s, std::size_t count,
                       std::size_t width) {
  static const cl_int none = INT_MAX;
  s.fault_host = INT_MAX;
  cl_int e = q.enqueueWriteBuffer(s.fault_dev, CL_FALSE, 0, sizeof(cl_int), &none);
  if (e != CL_SUCCESS) return cl_error("clEnqueueWriteBuffer (program fault)", e);
  const cl_int errs[] = {k.setArg(0, s.in_dev), k.setArg(1, s.out_dev), k.setArg(3, static_cast<cl_long>(count)),
                         k.setArg(5, s.fault_dev), k.setArg(6, static_cast<cl_int>(s.in32)),
                         k.setArg(7, static_cast<cl_long>(s.begin))};
  for (cl_int a : errs)
    if (a != CL_SUCCESS) return cl_error("clSetKernelArg (kiln_program)", a);
  KILN_TRY(enqueue_over(ds, k, q, count, width, &s.kernel, "clEnqueueNDRangeKernel (kiln_program)"));
  e = q.enqueueReadBuffer(s.fault_dev, CL_FALSE, 0, sizeof(cl_int), &s.fault_host, nullptr, &s.fault_read);
  if (e != CL_SUCCESS) return cl_error("clEnqueueReadBuffer (program fault)", e);
  return {};
}

struct named_event {
  const cl::Event* event;
  const char* call;
};

// Waits for `last` (which completes after every earlier command on its in-order queue) and, if
// something failed, names the first command whose execution status is an error. Null events
// (phases a chunk does not have) are skipped.
status wait_for(const cl::Event& last, std::initializer_list<named_event> commands) {
  const cl_int err = last.wait();
  if (err == CL_SUCCESS) return {};
  for (const auto& c : commands) {
    if (!(*c.event)()) continue;
    cl_int st = CL_COMPLETE;
    if (c.event->getInfo(CL_EVENT_COMMAND_EXECUTION_STATUS, &st) == CL_SUCCESS && st < 0)
      return cl_error(c.call, st);
  }
  return cl_error("clWaitForEvents", err);
}

// Host allocation failures (event lists, messages) become errors rather than escaping the API.
template <class F>
auto catching_bad_alloc(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return make_error(errc::out_of_memory, "the OpenCL backend ran out of host memory");
  }
}

// What one pass through the lanes does to n elements. A run maps host_in to host_out through the
// slots' device buffers; an upload (host_in and resident) and a download (host_out and resident)
// move data between the host and a resident buffer through the same pinned staging.
// A program as one job runs it: the kernel object of each lane is set up by transfer(); the
// chunks' faults meet in first_fault (the lowest faulting element index; no_fault for none). The
// host does not share a program's work (the interpreter is 20-30 times slower per element than
// the map's SIMD kernel).
struct program_job {
  const built_program* built = nullptr;
  cl::Buffer params;
  std::int64_t iterations = 0;
  std::atomic<std::uint64_t> first_fault{no_fault};

  void note_fault(std::uint64_t index) {
    std::uint64_t cur = first_fault.load(std::memory_order_relaxed);
    while (index < cur && !first_fault.compare_exchange_weak(cur, index, std::memory_order_relaxed)) {
    }
  }
};

struct transfer_job : map_job {
  program_job* program = nullptr;                    // instead of kp: the program's kernel on every chunk
  const std::vector<cl::Buffer>* resident = nullptr;  // the buffers chunks go to / come from, instead of the slots'
  std::size_t segment = 0;                      // elements per resident buffer (the last may be shorter)
  std::size_t width = 0;                        // every kernel launch's width (enqueue_over); transfer sets it
};

// How many chunks of at most `chunk` elements n elements make when no chunk may straddle a multiple
// of `segment` (resident buffers are split there; the whole range is one segment when there are none).
std::size_t chunk_count(std::size_t n, std::size_t segment, std::size_t chunk) {
  const std::size_t per_segment = (segment + chunk - 1) / chunk;
  return n / segment * per_segment + (n % segment + chunk - 1) / chunk;
}

// Allocates one lane's slot buffers at `capacity` elements (its queue already exists).
status allocate_lane(device_state& ds, lane& ln, std::size_t capacity) {
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

void release_lanes(device_state& ds) {
  for (auto& ln : ds.lanes)
    for (auto& s : ln.slots) s.release_buffers();
  ds.lane_capacity = 0;
}

// Creates the lanes (queues and kernel objects, no buffers yet) on first use, and the chunk
// bounds that depend on how many there are. At first use, not at probe time, so that listing
// devices starts no worker pool.
status create_lanes(device_state& ds) {
  if (!ds.lanes.empty()) return {};
  const std::size_t count = staging_lanes();
  std::vector<lane> lanes(count);
  for (auto& ln : lanes) {
    cl_int e = CL_SUCCESS;
    for (auto& s : ln.slots) {
      s.queue = cl::CommandQueue(ds.context, ds.device, 0, &e);
      if (e != CL_SUCCESS) return cl_error("clCreateCommandQueue", e);
    }
    ln.kernel = cl::Kernel(ds.program, kernel_name, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateKernel", e);
  }
  ds.lanes = std::move(lanes);
  const std::size_t per_element = 2 * count * lane_slots * element_bytes;  // in + out of every slot
  const auto by_memory = static_cast<std::size_t>(ds.global_mem / staging_memory_divisor / per_element);
  ds.chunk_limit = std::max<std::size_t>(std::min(ds.max_alloc_elements, by_memory), 1);
  ds.request_limit = std::max(staging_budget_bytes / per_element / capacity_step, std::size_t{1}) * capacity_step;
  return {};
}

// Makes sure every slot holds at least `chunk` elements; returns the chunk to use, which is
// smaller when the platform cannot allocate the requested one. The lanes exist.
result<std::size_t> ensure_lanes(device_state& ds, std::size_t chunk) {
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
status submit(const device_state& ds, lane& ln, slot& s, const transfer_job& job, std::size_t begin,
              std::size_t count) {
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
const cl::Event& last_event(const slot& s) { return s.read() ? s.read : s.kernel() ? s.kernel : s.write; }

// Waits for the slot's chunk (at once if it has ended) and adds its phase times. The sums are per
// chunk: phases of different chunks overlap, so together they can exceed total_s.
status complete(slot& s, const transfer_job& job, lane_times& t) {
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
void stage_input(slot& s, const transfer_job& job, work_range r) {
  s.in32 = job.host_in && stage_chunk(s.in_host.data(), job.host_in + r.begin, r.count, job.kp || job.program);
}

// The slot's output staging into the caller's range r (drain_chunk).
void drain_output(const slot& s, const transfer_job& job, work_range r) {
  if (job.host_out) drain_chunk(job.host_out + r.begin, s.out_host.data(), r.count, s.out32);
}

// Waits for the slot's chunk, adds its phase times and copies its output to the caller.
status finish(slot& s, const transfer_job& job, lane_times& t) {
  KILN_TRY(complete(s, job, t));
  drain_output(s, job, {s.begin, s.count});
  s.busy = false;
  return {};
}

// feed_lane's view of one lane (see core/lanes.hpp).
struct lane_ops {
  const device_state& ds;
  lane& ln;
  const transfer_job& job;
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
    slot& s = ln.slots[k];
    stage_input(s, job, r);
    return submit(ds, ln, s, job, r.begin, r.count);
  }
  void compute_on_host(work_range r) const { job.compute_on_host(r); }
};

// Runs one lane on a pool thread; on any failure (errors and exceptions alike) waits out its queues
// (errors ignored: the first one is being reported) so that no command still reads or writes
// staging the next call will reuse, and tells the other lanes to stop.
status run_lane(const device_state& ds, lane& ln, std::size_t chunk, work_counter& work, const transfer_job& job,
                lane_times& t, std::atomic<bool>& failed) {
  const bool share = job.shared_with_host();
  lane_ops ops{ds, ln, job, chunk, t};
  const std::size_t piece = job.host_piece_of(lane_piece);
  status st = catching_bad_alloc([&]() -> status { return feed_lane(ops, work, share, failed, piece); });
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
  const device_state& ds;
  lane& driver_lane;
  const transfer_job& job;
  std::vector<slot*> all;
  lane_times& t;

  std::size_t slots() const { return all.size(); }
  void stage(std::size_t i, work_range r) { stage_input(*all[i], job, r); }
  // Host allocation failures (event objects, messages) become errors here, on the driver's
  // thread, which may be a pool thread: the pipeline then stops as for any failed call.
  status submit(std::size_t i, work_range r) {
    return catching_bad_alloc(
        [&]() -> status { return kiln::detail::submit(ds, driver_lane, *all[i], job, r.begin, r.count); });
  }
  result<bool> poll(std::size_t i) {
    return catching_bad_alloc([&]() -> result<bool> {
      slot& s = *all[i];
      cl_int es = CL_QUEUED;
      if (last_event(s).getInfo(CL_EVENT_COMMAND_EXECUTION_STATUS, &es) == CL_SUCCESS && es > CL_COMPLETE) return false;
      s.busy = false;
      KILN_TRY(complete(s, job, t));
      return true;
    });
  }
  void abandon(std::size_t i) {
    slot& s = *all[i];
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

// Streams one job through the device's slots, one job per device at a time, fed by the driven
// pipeline or by the lanes (see lane_slots); either way the work comes from one counter and runs
// on the worker pool. Sets the job's launch width to its chunk.
result<run_stats> transfer(device_state& ds, transfer_job job) {
  std::lock_guard<std::mutex> lock(ds.m);
  const auto t0 = clock_type::now();
  run_stats st;
  if (job.n == 0) return st;
  KILN_TRY(create_lanes(ds));
  std::size_t chunk = job.chunk_elements ? std::min(job.chunk_elements, ds.request_limit)
                                         : ds.driven ? driven_chunk : lane_chunk;
  chunk = std::min({chunk, ds.chunk_limit, job.n});
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
    for (std::size_t l = 0; l < lanes; ++l) KILN_TRY(set_param_args(ds.lanes[l].kernel, *job.kp));
  if (job.program)
    for (std::size_t l = 0; l < lanes; ++l) {
      cl::Kernel& k = ds.lanes[l].program = job.program->built->lane_kernels[l];
      const cl_int errs[] = {k.setArg(2, job.program->params),
                             k.setArg(4, static_cast<cl_long>(job.program->iterations))};
      for (cl_int e : errs)
        if (e != CL_SUCCESS) return cl_error("clSetKernelArg (kiln_program)", e);
    }
  work_counter work(job.n, segment);
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

// Data resident on one device, split into buffers no larger than the device's allocation limit.
// Kernels run in place on the device's resident queue; uploads and downloads go through the lanes.
class opencl_buffer final : public resident_buffer {
 public:
  static result<std::unique_ptr<resident_buffer>> create(std::shared_ptr<device_state> ds,
                                                         std::span<const std::int64_t> data) {
    auto buf = std::unique_ptr<opencl_buffer>(new opencl_buffer(std::move(ds), data.size()));
    KILN_TRY(buf->fill(data));
    return std::unique_ptr<resident_buffer>(std::move(buf));
  }

  std::size_t size() const override { return size_; }

  // `n` elements, contents unspecified.
  static result<std::unique_ptr<resident_buffer>> allocate(std::shared_ptr<device_state> ds, std::size_t n) {
    auto buf = std::unique_ptr<opencl_buffer>(new opencl_buffer(std::move(ds), n));
    KILN_TRY(buf->create_segments());
    return std::unique_ptr<resident_buffer>(std::move(buf));
  }

  const std::vector<cl::Buffer>& segments() const { return segments_; }
  std::size_t segment() const { return segment_; }
  std::size_t segment_length(std::size_t i) const { return std::min(segment_, size_ - i * segment_); }

  status download(std::span<std::int64_t> out) const override {
    return catching_bad_alloc([&]() -> status { return move_through_lanes(nullptr, out.data()); });
  }

 private:
  opencl_buffer(std::shared_ptr<device_state> ds, std::size_t size)
      : ds_(std::move(ds)), size_(size), segment_(ds_->max_alloc_elements) {}

  status create_segments() {
    const std::size_t count = (size_ + segment_ - 1) / segment_;
    segments_.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      cl_int e = CL_SUCCESS;
      cl::Buffer b(ds_->context, CL_MEM_READ_WRITE, segment_length(i) * element_bytes, nullptr, &e);
      if (e != CL_SUCCESS) return cl_error("clCreateBuffer", e);
      segments_.push_back(std::move(b));
    }
    return {};
  }

  status fill(std::span<const std::int64_t> data) {
    KILN_TRY(create_segments());
    // The lanes wait for every chunk: the caller's span may go away as soon as upload returns.
    return move_through_lanes(data.data(), nullptr);
  }

  // Host -> segments (host_in set) or segments -> host (host_out set), through the device's lanes.
  status move_through_lanes(const std::int64_t* host_in, std::int64_t* host_out) const {
    transfer_job job;
    job.host_in = host_in;
    job.host_out = host_out;
    job.resident = &segments_;
    job.segment = segment_;
    job.n = size_;
    auto r = transfer(*ds_, job);
    if (!r) return r.err();
    return {};
  }

  std::shared_ptr<device_state> ds_;  // shared: a buffer may outlive the backend's registry
  std::size_t size_;
  std::size_t segment_;  // elements per buffer; the last one may be shorter
  std::vector<cl::Buffer> segments_;
};

struct probed_device {
  device_info info;
  std::shared_ptr<device_state> state;  // null when !info.available
};

// ---- programs --------------------------------------------------------------------------------

// The device's build of this source, with a kernel object per lane, made on first use. The caller
// holds ds.m.
result<const built_program*> build_program(device_state& ds, const std::string& source) {
  if (auto it = ds.programs.find(source); it != ds.programs.end()) return &it->second;
  KILN_TRY(create_lanes(ds));
  cl_int e = CL_SUCCESS;
  built_program built;
  built.program = cl::Program(ds.context, source, false, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateProgramWithSource", e);
  KILN_TRY(build(built.program, ds.device, "program"));
  for (std::size_t l = 0; l < ds.lanes.size(); ++l) {
    built.lane_kernels.emplace_back(built.program, "kiln_program", &e);
    if (e != CL_SUCCESS) return cl_error("clCreateKernel (kiln_program)", e);
  }
  return &ds.programs.emplace(source, std::move(built)).first->second;
}

// Runs a program over in -> out through the device's pipeline, as the map runs (the same staging,
// lanes or driven slots, chunk sizes), without the host's share; then reports the first fault.
result<run_stats> run_kernel_on(device_state& ds, const decoded_kernel& dk, std::span<const std::int64_t> in,
                                std::span<std::int64_t> out, const run_options& options) {
  program_job pj;
  {
    std::lock_guard<std::mutex> lock(ds.m);
    auto built = build_program(ds, kernel_source(dk, kernel_dialect::opencl));
    if (!built) return built.err();
    pj.built = *built;
  }
  // A parameterless program still gets a (one-element) parameter buffer.
  std::vector<cl_long> params(dk.scalars.begin(), dk.scalars.end());
  if (params.empty()) params.push_back(0);
  cl_int e = CL_SUCCESS;
  pj.params = cl::Buffer(ds.context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, params.size() * sizeof(cl_long),
                         params.data(), &e);
  if (e != CL_SUCCESS) return cl_error("clCreateBuffer (program parameters)", e);
  pj.iterations = dk.iterations;
  transfer_job job;
  job.set_arrays(in, out, options);
  job.program = &pj;
  auto r = transfer(ds, job);
  if (!r) return r.err();
  KILN_TRY(device_outcome(dk, in, pj.first_fault.load(), "OpenCL"));
  return r;
}

// A kernel over resident buffers, segment by segment (buffers of one length share their
// segmentation): the map's own kernel where it is the map, else the kernel compiled for buffers
// (kiln_resident). A faulting element writes nothing, so its inputs are read back to say why.
result<run_stats> run_resident_on(device_state& ds, const decoded_kernel& dk, std::span<resident_buffer* const> arrays,
                                  std::span<resident_buffer* const> outputs) {
  std::lock_guard<std::mutex> lock(ds.m);
  const auto t0 = clock_type::now();
  run_stats st;
  std::vector<const opencl_buffer*> ins;
  std::vector<const opencl_buffer*> outs;
  for (auto* a : arrays) ins.push_back(static_cast<const opencl_buffer*>(a));
  for (auto* o : outputs) outs.push_back(static_cast<const opencl_buffer*>(o));
  const opencl_buffer& shape = *ins.front();
  const std::size_t segments = shape.segments().size();
  st.chunks = segments;
  drain_guard drain(ds);
  std::vector<cl::Event> done(segments);
  // Every launch of the run has the first segment's width (PoCL keeps a compiled version per
  // width, see enqueue_over): the buffers' length where they fit in one segment. Not the segment
  // limit itself, which for one small buffer would launch a grid of the device's whole
  // allocation size.
  const std::size_t width = shape.segment_length(0);
  if (dk.builtin) {
    const kernel_params kp = prepare(dk.builtin->params);
    KILN_TRY(set_param_args(ds.kernel, kp));
    for (std::size_t i = 0; i < segments; ++i)
      KILN_TRY(enqueue_map(ds, ds.kernel, ds.queue, ins[0]->segments()[i], outs[0]->segments()[i],
                           shape.segment_length(i), width, &done[i]));
    for (const auto& ev : done) {
      KILN_TRY(wait_for(ev, {{&ev, "clEnqueueNDRangeKernel"}}));
      st.kernel_s += event_seconds(ev);
    }
    st.total_s = seconds_since(t0);
    return st;
  }
  const std::string source = kernel_source(dk, kernel_dialect::opencl, true);
  auto it = ds.resident_programs.find(source);
  if (it == ds.resident_programs.end()) {
    cl_int e = CL_SUCCESS;
    cl::Program program(ds.context, source, false, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateProgramWithSource", e);
    KILN_TRY(build(program, ds.device, "kernel"));
    cl::Kernel kernel(program, "kiln_resident", &e);
    if (e != CL_SUCCESS) return cl_error("clCreateKernel (kiln_resident)", e);
    it = ds.resident_programs.emplace(source, std::make_pair(std::move(program), std::move(kernel))).first;
  }
  cl::Kernel& k = it->second.second;
  std::vector<cl_long> params(dk.scalars.begin(), dk.scalars.end());
  if (params.empty()) params.push_back(0);
  cl_int e = CL_SUCCESS;
  cl::Buffer param_buf(ds.context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, params.size() * sizeof(cl_long),
                       params.data(), &e);
  if (e != CL_SUCCESS) return cl_error("clCreateBuffer (kernel parameters)", e);
  // One fault word per segment, in a buffer of its own (sub-buffers need aligned offsets).
  std::vector<cl_int> faults(segments, INT_MAX);
  std::vector<cl::Buffer> fault_words;
  for (std::size_t i = 0; i < segments; ++i) {
    fault_words.emplace_back(ds.context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof(cl_int), &faults[i], &e);
    if (e != CL_SUCCESS) return cl_error("clCreateBuffer (kernel faults)", e);
  }
  const cl_uint fixed = static_cast<cl_uint>(ins.size() + outs.size());
  for (std::size_t i = 0; i < segments; ++i) {
    cl_uint a = 0;
    for (const auto* b : ins)
      if (cl_int r = k.setArg(a++, b->segments()[i]); r != CL_SUCCESS) return cl_error("clSetKernelArg (kiln_resident)", r);
    for (const auto* b : outs)
      if (cl_int r = k.setArg(a++, b->segments()[i]); r != CL_SUCCESS) return cl_error("clSetKernelArg (kiln_resident)", r);
    const cl_int errs[] = {k.setArg(fixed, param_buf), k.setArg(fixed + 1, static_cast<cl_long>(shape.segment_length(i))),
                           k.setArg(fixed + 2, static_cast<cl_long>(dk.iterations)), k.setArg(fixed + 3, fault_words[i]),
                           k.setArg(fixed + 4, static_cast<cl_long>(i * shape.segment()))};
    for (cl_int r : errs)
      if (r != CL_SUCCESS) return cl_error("clSetKernelArg (kiln_resident)", r);
    KILN_TRY(enqueue_over(ds, k, ds.queue, shape.segment_length(i), width, &done[i],
                          "clEnqueueNDRangeKernel (kiln_resident)"));
  }
  for (const auto& ev : done) {
    KILN_TRY(wait_for(ev, {{&ev, "clEnqueueNDRangeKernel (kiln_resident)"}}));
    st.kernel_s += event_seconds(ev);
  }
  for (std::size_t i = 0; i < segments; ++i) {
    e = ds.queue.enqueueReadBuffer(fault_words[i], CL_TRUE, 0, sizeof(cl_int), &faults[i]);
    if (e != CL_SUCCESS) return cl_error("clEnqueueReadBuffer (kernel faults)", e);
  }
  for (std::size_t i = 0; i < segments; ++i) {
    if (faults[i] == INT_MAX) continue;
    const std::size_t index = i * shape.segment() + static_cast<std::size_t>(faults[i]);
    std::vector<std::int64_t> element(ins.size());
    std::vector<const std::int64_t*> at;
    for (std::size_t j = 0; j < ins.size(); ++j) {
      e = ds.queue.enqueueReadBuffer(ins[j]->segments()[i], CL_TRUE, static_cast<std::size_t>(faults[i]) * element_bytes,
                                     element_bytes, &element[j]);
      if (e != CL_SUCCESS) return cl_error("clEnqueueReadBuffer (faulting element)", e);
      at.push_back(&element[j]);
    }
    return device_fault(dk, at, index, "OpenCL", index);
  }
  st.total_s = seconds_since(t0);
  return st;
}

// Reads one device property, remembering the first failure as the device's reason.
template <cl_device_info Name>
auto query(const cl::Device& dev, const char* what, std::string& failure) {
  cl_int e = CL_SUCCESS;
  auto v = dev.getInfo<Name>(&e);
  if (e != CL_SUCCESS && failure.empty()) failure = cl_error(std::string("clGetDeviceInfo(") + what + ")", e).message;
  return v;
}

// Creates the context, queues and kernel for a usable device; the reason otherwise.
result<std::shared_ptr<device_state>> set_up(const cl::Device& dev, std::size_t max_alloc, std::uint64_t global_mem) {
  auto ds = std::make_shared<device_state>();
  ds->device = dev;
  cl_device_type type = 0;
  // Driven unless the device is the host's own cores (see lane_slots), or KILN_OPENCL_PIPELINE says.
  ds->driven = !(dev.getInfo(CL_DEVICE_TYPE, &type) == CL_SUCCESS && (type & CL_DEVICE_TYPE_CPU) != 0);
  if (current_settings().opencl_pipeline == opencl_pipeline_mode::driven) ds->driven = true;
  if (current_settings().opencl_pipeline == opencl_pipeline_mode::lanes) ds->driven = false;
  cl_int e = CL_SUCCESS;
  ds->context = cl::Context(dev, nullptr, nullptr, nullptr, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateContext", e);
  ds->queue = cl::CommandQueue(ds->context, dev, CL_QUEUE_PROFILING_ENABLE, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateCommandQueue", e);
  ds->program = cl::Program(ds->context, cl::Program::Sources{kernel_prelude, opencl_kernel_source}, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateProgramWithSource", e);
  KILN_TRY(build(ds->program, dev, "kernel"));
  ds->kernel = cl::Kernel(ds->program, kernel_name, &e);
  if (e == CL_INVALID_KERNEL_NAME)  // the program built, so the embedded source lacks logistic.cl
    return make_error(errc::device_error, "clCreateKernel failed: " + cl_code(e) + ": the embedded source has no " +
                                              kernel_name + " (is logistic.cl among embed_source.cmake's INPUTS?)");
  if (e != CL_SUCCESS) return cl_error("clCreateKernel", e);

  const std::size_t kernel_group = ds->kernel.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(dev, &e);
  if (e != CL_SUCCESS) return cl_error("clGetKernelWorkGroupInfo(CL_KERNEL_WORK_GROUP_SIZE)", e);
  const auto item_sizes = dev.getInfo<CL_DEVICE_MAX_WORK_ITEM_SIZES>(&e);
  if (e != CL_SUCCESS) return cl_error("clGetDeviceInfo(CL_DEVICE_MAX_WORK_ITEM_SIZES)", e);
  std::size_t local = std::min(preferred_local_size, kernel_group);
  if (!item_sizes.empty()) local = std::min<std::size_t>(local, item_sizes[0]);
  ds->local_size = std::max<std::size_t>(local, 1);

  ds->max_alloc_elements = std::max<std::size_t>(max_alloc / element_bytes, 1);
  ds->global_mem = global_mem;
  return ds;
}

probed_device probe_device(const cl::Device& dev, const std::string& platform) {
  probed_device r;
  device_info& d = r.info;
  d.backend = backend_kind::opencl;
  d.platform = platform;
  std::string failure;
  d.name = trim(query<CL_DEVICE_NAME>(dev, "CL_DEVICE_NAME", failure));
  if (d.name.empty()) d.name = "unnamed OpenCL device";
  d.gpu = (query<CL_DEVICE_TYPE>(dev, "CL_DEVICE_TYPE", failure) & CL_DEVICE_TYPE_GPU) != 0;
  d.compute_units = static_cast<int>(query<CL_DEVICE_MAX_COMPUTE_UNITS>(dev, "CL_DEVICE_MAX_COMPUTE_UNITS", failure));
  d.memory_bytes = query<CL_DEVICE_GLOBAL_MEM_SIZE>(dev, "CL_DEVICE_GLOBAL_MEM_SIZE", failure);
  const auto max_alloc = query<CL_DEVICE_MAX_MEM_ALLOC_SIZE>(dev, "CL_DEVICE_MAX_MEM_ALLOC_SIZE", failure);
  const bool available = query<CL_DEVICE_AVAILABLE>(dev, "CL_DEVICE_AVAILABLE", failure);
  const bool compiler = query<CL_DEVICE_COMPILER_AVAILABLE>(dev, "CL_DEVICE_COMPILER_AVAILABLE", failure);
  const std::string extensions = query<CL_DEVICE_EXTENSIONS>(dev, "CL_DEVICE_EXTENSIONS", failure);

  if (!failure.empty())
    d.reason = failure;
  else if (!available)
    d.reason = "the device reports CL_DEVICE_AVAILABLE = false";
  else if (!compiler)
    d.reason = "the platform has no OpenCL C compiler for this device (CL_DEVICE_COMPILER_AVAILABLE = false)";
  else if (!has_extension(extensions, "cl_khr_fp64"))
    d.reason = "the device lacks cl_khr_fp64 (double precision), which Kiln's exact arithmetic needs";
  else if (auto st = set_up(dev, static_cast<std::size_t>(max_alloc), d.memory_bytes); !st)
    d.reason = st.err().message;
  else
    r.state = std::move(st).value();
  d.available = r.state != nullptr;
  return r;
}

class opencl_backend final : public backend {
 public:
  backend_kind kind() const override { return backend_kind::opencl; }

  const std::vector<device_info>& devices() override {
    probe();
    return infos_;
  }

  result<run_stats> run(int device, std::span<const std::int64_t> in, std::span<std::int64_t> out,
                        const kernel_params& kp, const run_options& options) override {
    return catching_bad_alloc([&]() -> result<run_stats> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      transfer_job job;
      job.set_map(in, out, kp, options);
      return transfer(**ds, job);
    });
  }

  status kernel_support() override { return {}; }

  result<run_stats> run_kernel(int device, const decoded_kernel& dk, std::span<const std::int64_t> in,
                               std::span<std::int64_t> out, const run_options& options) override {
    return catching_bad_alloc([&]() -> result<run_stats> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      return run_kernel_on(**ds, dk, in, out, options);
    });
  }

  result<std::unique_ptr<resident_buffer>> upload(int device, std::span<const std::int64_t> data) override {
    return catching_bad_alloc([&]() -> result<std::unique_ptr<resident_buffer>> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      return opencl_buffer::create(*ds, data);
    });
  }

  result<std::unique_ptr<resident_buffer>> allocate(int device, std::size_t n) override {
    return catching_bad_alloc([&]() -> result<std::unique_ptr<resident_buffer>> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      return opencl_buffer::allocate(*ds, n);
    });
  }

  result<run_stats> run_resident(int device, const decoded_kernel& dk, std::span<resident_buffer* const> arrays,
                                 std::span<resident_buffer* const> outputs) override {
    return catching_bad_alloc([&]() -> result<run_stats> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      return run_resident_on(**ds, dk, arrays, outputs);
    });
  }

 private:
  void probe() {
    std::call_once(once_, [this] {
      std::vector<probed_device> found = probe_all();
      // GPUs first (what "auto" looks for), otherwise in platform and device order.
      std::stable_partition(found.begin(), found.end(), [](const probed_device& p) { return p.info.gpu; });
      for (std::size_t i = 0; i < found.size(); ++i) {
        found[i].info.index = static_cast<int>(i);
        infos_.push_back(std::move(found[i].info));
        states_.push_back(std::move(found[i].state));
      }
    });
  }

  static std::vector<probed_device> probe_all() {
    if (status library = opencl_library_available(); !library) return {unavailable(library.err().message)};
    std::vector<probed_device> found;
    std::vector<cl::Platform> platforms;
    const cl_int e = cl::Platform::get(&platforms);
    if (e == CL_PLATFORM_NOT_FOUND_KHR || (e == CL_SUCCESS && platforms.empty()))
      return {unavailable("no OpenCL platform is installed (install an ICD such as pocl-opencl-icd or the GPU "
                          "vendor's driver)")};
    if (e != CL_SUCCESS) return {unavailable(cl_error("clGetPlatformIDs", e).message)};
    for (const auto& platform : platforms) {
      cl_int ne = CL_SUCCESS, ve = CL_SUCCESS;
      std::string name = trim(platform.getInfo<CL_PLATFORM_NAME>(&ne));
      const std::string version = trim(platform.getInfo<CL_PLATFORM_VERSION>(&ve));
      if (ne != CL_SUCCESS || name.empty()) name = "unnamed OpenCL platform";
      const std::string desc = ve == CL_SUCCESS ? name + " (" + version + ")" : name;
      std::vector<cl::Device> devs;
      const cl_int de = platform.getDevices(CL_DEVICE_TYPE_ALL, &devs);
      if (de == CL_DEVICE_NOT_FOUND) continue;  // a platform without devices is no device
      if (de != CL_SUCCESS) {
        // Listed, so that the user sees why a whole platform is missing.
        probed_device p = unavailable(cl_error("clGetDeviceIDs", de).message);
        p.info.platform = desc;
        found.push_back(std::move(p));
        continue;
      }
      for (const auto& dev : devs) found.push_back(probe_device(dev, desc));
    }
    if (found.empty())
      return {unavailable("the OpenCL platforms (" + std::to_string(platforms.size()) + ") list no devices")};
    return found;
  }

  static probed_device unavailable(std::string reason) {
    return {unavailable_device(backend_kind::opencl, std::move(reason)), nullptr};
  }

  result<std::shared_ptr<device_state>> state_of(int device) {
    probe();
    if (device < 0 || static_cast<std::size_t>(device) >= states_.size())
      return make_error(errc::invalid_argument, "backend opencl has " + std::to_string(states_.size()) +
                                                    " device(s); device index " + std::to_string(device) +
                                                    " is out of range");
    const auto i = static_cast<std::size_t>(device);
    if (!states_[i])
      return make_error(errc::backend_unavailable,
                        "device " + std::to_string(device) + " of opencl is unavailable: " + infos_[i].reason);
    return states_[i];
  }

  std::once_flag once_;
  std::vector<device_info> infos_;
  std::vector<std::shared_ptr<device_state>> states_;  // parallel to infos_
};

}  // namespace

std::unique_ptr<backend> make_opencl_backend() { return std::make_unique<opencl_backend>(); }

}  // namespace kiln::detail
