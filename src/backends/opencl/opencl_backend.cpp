// The `opencl` backend: every device of every OpenCL platform, with chunked, double-buffered runs.

// opencl.hpp only asks whether CL_HPP_ENABLE_EXCEPTIONS is defined (even as 0 it switches
// exceptions on); this file checks every returned cl_int instead, so it must stay undefined.
#undef CL_HPP_ENABLE_EXCEPTIONS
#include <CL/opencl.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.hpp"

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

// 16 Mi elements (128 MiB) per staging buffer: large enough that per-chunk overheads vanish on
// any device, small enough that two of them fit next to resident data.
constexpr std::size_t max_default_chunk = std::size_t{1} << 24;

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

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Everything one device needs, created once at probe time. `m` serialises all use: the kernel's
// arguments are shared state, and runs on one device gain nothing from interleaving.
struct device_state {
  cl::Device device;
  cl::Context context;
  std::array<cl::CommandQueue, 2> queues;  // in-order, profiled; chunk i runs on queues[i % 2]
  cl::Program program;
  cl::Kernel kernel;
  std::size_t local_size = 1;          // work-group size for every launch
  std::size_t max_alloc_elements = 1;  // CL_DEVICE_MAX_MEM_ALLOC_SIZE in elements
  std::size_t default_chunk = 1;       // elements per staging buffer when the caller does not say
  std::mutex m;
};

// Waits for every queue of a device on every way out of a run: commands read and write the
// caller's memory until they complete, so none may outlive the call that enqueued it.
class drain_guard {
 public:
  explicit drain_guard(device_state& ds) : ds_(ds) {}
  drain_guard(const drain_guard&) = delete;
  drain_guard& operator=(const drain_guard&) = delete;
  ~drain_guard() {
    // A failure here was (or will be) reported by the command that caused it.
    for (auto& q : ds_.queues) q.finish();
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

// Maps the first `len` elements of `buf` in place.
status enqueue_map(device_state& ds, cl::CommandQueue& q, const cl::Buffer& buf, std::size_t len, cl::Event* done) {
  const cl_int errs[] = {ds.kernel.setArg(0, buf), ds.kernel.setArg(1, buf),
                         ds.kernel.setArg(2, static_cast<cl_ulong>(len))};
  for (cl_int e : errs)
    if (e != CL_SUCCESS) return cl_error("clSetKernelArg", e);
  const std::size_t global = (len + ds.local_size - 1) / ds.local_size * ds.local_size;
  const cl_int e = q.enqueueNDRangeKernel(ds.kernel, cl::NullRange, cl::NDRange(global), cl::NDRange(ds.local_size),
                                          nullptr, done);
  if (e != CL_SUCCESS) return cl_error("clEnqueueNDRangeKernel", e);
  return {};
}

struct named_event {
  const cl::Event* event;
  const char* call;
};

// Waits for `last` (which completes after every earlier command on its in-order queue) and, if
// something failed, names the first command whose execution status is an error.
status wait_for(const cl::Event& last, std::initializer_list<named_event> commands) {
  const cl_int err = last.wait();
  if (err == CL_SUCCESS) return {};
  for (const auto& c : commands) {
    cl_int st = CL_COMPLETE;
    if (c.event->getInfo(CL_EVENT_COMMAND_EXECUTION_STATUS, &st) == CL_SUCCESS && st < 0)
      return cl_error(c.call, st);
  }
  return cl_error("clWaitForEvents", err);
}

// One chunk's three commands, in queue order.
struct chunk_events {
  cl::Event write, kernel, read;
  bool busy = false;
};

status retire(chunk_events& c, run_stats& s) {
  c.busy = false;
  KILN_TRY(wait_for(c.read, {{&c.write, "clEnqueueWriteBuffer"},
                             {&c.kernel, "clEnqueueNDRangeKernel"},
                             {&c.read, "clEnqueueReadBuffer"}}));
  s.host_to_device_s += event_seconds(c.write);
  s.kernel_s += event_seconds(c.kernel);
  s.device_to_host_s += event_seconds(c.read);
  return {};
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

// The pipeline: chunk i is written, mapped in place and read back on queues[i % 2], into that
// queue's own staging buffer. The in-order queue keeps a buffer's reuse behind its previous
// read-back, while the other queue's transfers overlap this queue's kernel. Waiting for chunk
// i - 2 before enqueueing chunk i keeps the number of live events (and the host's lead) bounded.
result<run_stats> run_chunks(device_state& ds, std::span<const std::int64_t> in, std::span<std::int64_t> out,
                             const kernel_params& kp, std::size_t chunk_elements) {
  std::lock_guard<std::mutex> lock(ds.m);
  const auto t0 = clock_type::now();
  run_stats s;
  const std::size_t n = in.size();
  if (n == 0) return s;
  std::size_t chunk = chunk_elements ? std::min(chunk_elements, ds.max_alloc_elements) : ds.default_chunk;
  chunk = std::min(chunk, n);
  s.chunks = (n + chunk - 1) / chunk;

  // Fresh per call: a staging buffer is never visible to another call, and device memory is
  // not held between calls.
  std::array<cl::Buffer, 2> staging;
  const std::size_t slots = s.chunks > 1 ? 2 : 1;
  for (std::size_t i = 0; i < slots; ++i) {
    cl_int e = CL_SUCCESS;
    staging[i] = cl::Buffer(ds.context, CL_MEM_READ_WRITE, chunk * element_bytes, nullptr, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateBuffer", e);
  }
  KILN_TRY(set_param_args(ds.kernel, kp));

  drain_guard drain(ds);
  std::array<chunk_events, 2> flight;
  for (std::size_t i = 0; i < s.chunks; ++i) {
    const std::size_t slot = i % 2;
    chunk_events& c = flight[slot];
    if (c.busy) KILN_TRY(retire(c, s));
    const std::size_t begin = i * chunk;
    const std::size_t len = std::min(chunk, n - begin);
    cl::CommandQueue& q = ds.queues[slot];
    cl_int e = q.enqueueWriteBuffer(staging[slot], CL_FALSE, 0, len * element_bytes, in.data() + begin, nullptr,
                                    &c.write);
    if (e != CL_SUCCESS) return cl_error("clEnqueueWriteBuffer", e);
    KILN_TRY(enqueue_map(ds, q, staging[slot], len, &c.kernel));
    e = q.enqueueReadBuffer(staging[slot], CL_FALSE, 0, len * element_bytes, out.data() + begin, nullptr, &c.read);
    if (e != CL_SUCCESS) return cl_error("clEnqueueReadBuffer", e);
    c.busy = true;
    // Submit now: some platforms hold commands back until a flush or a wait.
    e = q.flush();
    if (e != CL_SUCCESS) return cl_error("clFlush", e);
  }
  for (std::size_t k = 0; k < 2; ++k) {
    chunk_events& c = flight[(s.chunks + k) % 2];  // the older of the last two chunks first
    if (c.busy) KILN_TRY(retire(c, s));
  }
  s.total_s = seconds_since(t0);
  return s;
}

// Data resident on one device, split into buffers no larger than the device's allocation limit.
class opencl_buffer final : public resident_buffer {
 public:
  static result<std::unique_ptr<resident_buffer>> create(std::shared_ptr<device_state> ds,
                                                         std::span<const std::int64_t> data) {
    auto buf = std::unique_ptr<opencl_buffer>(new opencl_buffer(std::move(ds), data.size()));
    KILN_TRY(buf->fill(data));
    return std::unique_ptr<resident_buffer>(std::move(buf));
  }

  std::size_t size() const override { return size_; }

  result<run_stats> run(const kernel_params& kp) override {
    return catching_bad_alloc([&]() -> result<run_stats> {
      std::lock_guard<std::mutex> lock(ds_->m);
      const auto t0 = clock_type::now();
      run_stats s;
      s.chunks = segments_.size();
      KILN_TRY(set_param_args(ds_->kernel, kp));
      drain_guard drain(*ds_);
      std::vector<cl::Event> done(segments_.size());
      for (std::size_t i = 0; i < segments_.size(); ++i)
        KILN_TRY(enqueue_map(*ds_, ds_->queues[0], segments_[i], segment_length(i), &done[i]));
      for (const auto& ev : done) {
        KILN_TRY(wait_for(ev, {{&ev, "clEnqueueNDRangeKernel"}}));
        s.kernel_s += event_seconds(ev);
      }
      s.total_s = seconds_since(t0);
      return s;
    });
  }

  status download(std::span<std::int64_t> out) const override {
    return catching_bad_alloc([&]() -> status {
      std::lock_guard<std::mutex> lock(ds_->m);
      for (std::size_t i = 0; i < segments_.size(); ++i) {
        const cl_int e = ds_->queues[0].enqueueReadBuffer(segments_[i], CL_TRUE, 0, segment_length(i) * element_bytes,
                                                          out.data() + i * segment_);
        if (e != CL_SUCCESS) return cl_error("clEnqueueReadBuffer", e);
      }
      return {};
    });
  }

 private:
  opencl_buffer(std::shared_ptr<device_state> ds, std::size_t size)
      : ds_(std::move(ds)), size_(size), segment_(ds_->max_alloc_elements) {}

  std::size_t segment_length(std::size_t i) const { return std::min(segment_, size_ - i * segment_); }

  status fill(std::span<const std::int64_t> data) {
    std::lock_guard<std::mutex> lock(ds_->m);
    const std::size_t count = (size_ + segment_ - 1) / segment_;
    segments_.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t bytes = segment_length(i) * element_bytes;
      cl_int e = CL_SUCCESS;
      cl::Buffer b(ds_->context, CL_MEM_READ_WRITE, bytes, nullptr, &e);
      if (e != CL_SUCCESS) return cl_error("clCreateBuffer", e);
      // Blocking: the caller's span may go away as soon as upload returns.
      e = ds_->queues[0].enqueueWriteBuffer(b, CL_TRUE, 0, bytes, data.data() + i * segment_);
      if (e != CL_SUCCESS) return cl_error("clEnqueueWriteBuffer", e);
      segments_.push_back(std::move(b));
    }
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
  cl_int e = CL_SUCCESS;
  ds->context = cl::Context(dev, nullptr, nullptr, nullptr, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateContext", e);
  for (auto& q : ds->queues) {
    q = cl::CommandQueue(ds->context, dev, CL_QUEUE_PROFILING_ENABLE, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateCommandQueue", e);
  }
  ds->program = cl::Program(ds->context, cl::Program::Sources{kernel_prelude, opencl_kernel_source}, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateProgramWithSource", e);
  e = ds->program.build(dev, "");
  if (e != CL_SUCCESS) {
    cl_int le = CL_SUCCESS;
    const std::string log = ds->program.getBuildInfo<CL_PROGRAM_BUILD_LOG>(dev, &le);
    return make_error(errc::device_error, "kernel build failed, clBuildProgram: " + cl_code(e) +
                                              "; build log: " + (le == CL_SUCCESS ? log_head(log) : "unavailable"));
  }
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
  // Two staging buffers take at most a quarter of device memory, leaving room for resident data.
  const auto by_memory = static_cast<std::size_t>(global_mem / element_bytes / 8);
  ds->default_chunk = std::max<std::size_t>(std::min({ds->max_alloc_elements, by_memory, max_default_chunk}), 1);
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
                        const kernel_params& kp, std::size_t chunk_elements) override {
    return catching_bad_alloc([&]() -> result<run_stats> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      return run_chunks(**ds, in, out, kp, chunk_elements);
    });
  }

  result<std::unique_ptr<resident_buffer>> upload(int device, std::span<const std::int64_t> data) override {
    return catching_bad_alloc([&]() -> result<std::unique_ptr<resident_buffer>> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      return opencl_buffer::create(*ds, data);
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
