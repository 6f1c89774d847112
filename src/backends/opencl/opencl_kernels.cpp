// The OpenCL backend's kernels: programs built with their logs, arguments set, launches, kernel runs and runs over buffers.
#include "backends/opencl/opencl_kernels.hpp"
#include "backends/opencl/opencl_program_cache.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <sstream>
#include <string>
#include <vector>

#include "backends/opencl/build_thread.hpp"
#include "backends/opencl/opencl_buffers.hpp"

namespace kiln::detail {
namespace {

using clock_type = std::chrono::steady_clock;

// The first lines of a build log: enough to recognise the problem in a device listing.
std::string log_head(const std::string& log) {
  constexpr int max_lines = 8;
  constexpr std::size_t max_line = 200;
  std::istringstream lines(log);
  std::string line, head;
  int count = 0;
  while (count < max_lines && std::getline(lines, line)) {
    line = opencl_trim(line);
    if (line.empty()) continue;
    if (line.size() > max_line) line = line.substr(0, max_line) + "...";
    head += (count++ ? " | " : "") + line;
  }
  return head.empty() ? "(empty build log)" : head;
}

// Waits for the resident queue of a device on every way out of a run, so that nothing a call
// enqueued outlives it (the next call, or the caller's view of the data, depends on it).
class drain_guard {
 public:
  explicit drain_guard(opencl_device_state& ds) : ds_(ds) {}
  drain_guard(const drain_guard&) = delete;
  drain_guard& operator=(const drain_guard&) = delete;
  ~drain_guard() {
    // A failure here was (or will be) reported by the command that caused it.
    (void)ds_.queue.finish();
  }

 private:
  opencl_device_state& ds_;
};

// The device's build of this source, with a kernel object per lane, made on first use. The caller
// holds ds.m.
result<const opencl_built_program*> build_program(opencl_device_state& ds, const std::string& source) {
  if (auto it = ds.programs.find(source); it != ds.programs.end()) return &it->second;
  KILN_TRY(create_lanes(ds));
  cl_int e = CL_SUCCESS;
  opencl_built_program built;
  auto program = build_cached(ds.context, ds.device, source, "",
                              [](cl::Program& p, const cl::Device& d) { return build_cl_program(p, d, "program"); });
  if (!program) return program.err();
  built.program = std::move(*program);
  for (std::size_t l = 0; l < ds.lanes.size(); ++l) {
    built.lane_kernels.emplace_back(built.program, "kiln_program", &e);
    if (e != CL_SUCCESS) return cl_error("clCreateKernel (kiln_program)", e);
  }
  return &ds.programs.emplace(source, std::move(built)).first->second;
}

// The pairs kernel over one segment: four elements a work-item, so a quarter of the items (of
// max(len, width), so every launch of a run keeps the first segment's width, see enqueue_over).
status enqueue_map_pairs(opencl_device_state& ds, const cl::Buffer& in, const cl::Buffer& out, std::size_t len,
                         std::size_t width, cl::Event* done) {
  cl::Kernel& k = ds.pairs_kernel;
  const cl_int errs[] = {k.setArg(0, in), k.setArg(1, out), k.setArg(2, static_cast<cl_ulong>(len))};
  for (cl_int e : errs)
    if (e != CL_SUCCESS) return cl_error("clSetKernelArg (kiln_logistic_map_pairs)", e);
  // The kernel's `gap` work-items, and at least one for a lone element.
  auto quarter = [](std::size_t m) { return std::max<std::size_t>(1, (m / 2 + 1) / 2); };
  return enqueue_over(ds, k, ds.queue, quarter(len), quarter(width), done,
                      "clEnqueueNDRangeKernel (kiln_logistic_map_pairs)");
}

}  // namespace

status build_cl_program(cl::Program& program, const cl::Device& dev, const char* what) {
  cl_int e = CL_SUCCESS;
  KILN_TRY(run_on_build_thread([&] { e = program.build(dev, ""); }));
  if (e == CL_SUCCESS) return {};
  cl_int le = CL_SUCCESS;
  const std::string log = program.getBuildInfo<CL_PROGRAM_BUILD_LOG>(dev, &le);
  return make_error(errc::device_error, std::string(what) + " build failed, clBuildProgram: " + cl_code(e) +
                                            "; build log: " + (le == CL_SUCCESS ? log_head(log) : "unavailable"));
}

status set_param_args(cl::Kernel& k, const kernel_params& kp) {
  const cl_int errs[] = {k.setArg(3, static_cast<cl_long>(kp.iterations)), k.setArg(4, kp.p_d),
                         k.setArg(5, kp.pinv),   k.setArg(6, kp.mu_res),
                         k.setArg(7, kp.two32),  k.setArg(8, static_cast<cl_int>(kp.negative))};
  for (cl_int e : errs)
    if (e != CL_SUCCESS) return cl_error("clSetKernelArg", e);
  return {};
}

status set_mont_args(cl::Kernel& k, const kernel_params& kp, cl_uint first) {
  const bool square = use_square(kp);
  const cl_int errs[] = {k.setArg(first, static_cast<cl_int>(use_int_lanes(kp) ? 1 : 0)),
                         k.setArg(first + 1, static_cast<cl_uint>(kp.mont_p)),
                         k.setArg(first + 2, static_cast<cl_uint>(kp.mont_pneg)),
                         k.setArg(first + 3, static_cast<cl_uint>(kp.mont_r2)),
                         k.setArg(first + 4, static_cast<cl_uint>(kp.mont_mu)),
                         k.setArg(first + 5, static_cast<cl_uint>(kp.mont_mu_r1)),
                         k.setArg(first + 6, static_cast<cl_int>(square ? 1 : 0)),
                         k.setArg(first + 7, static_cast<cl_uint>(kp.mont_square_e2)),
                         k.setArg(first + 8, kp.square_h),
                         k.setArg(first + 9, kp.square_e),
                         k.setArg(first + 10, kp.square_muinv),
                         k.setArg(first + 11, kp.square_c)};
  for (cl_int e : errs)
    if (e != CL_SUCCESS) return cl_error("clSetKernelArg (Montgomery constants)", e);
  return {};
}

status enqueue_over(const opencl_device_state& ds, cl::Kernel& k, const cl::CommandQueue& q, std::size_t n,
                    std::size_t width, cl::Event* done, const char* call) {
  const std::size_t items = std::max(n, width);
  const std::size_t global = (items + ds.local_size - 1) / ds.local_size * ds.local_size;
  const cl_int e =
      q.enqueueNDRangeKernel(k, cl::NullRange, cl::NDRange(global), cl::NDRange(ds.local_size), nullptr, done);
  if (e != CL_SUCCESS) return cl_error(call, e);
  return {};
}

status enqueue_map(const opencl_device_state& ds, cl::Kernel& k, const cl::CommandQueue& q, const cl::Buffer& in,
                   const cl::Buffer& out, std::size_t len, std::size_t width, cl::Event* done, bool in32, bool out32) {
  const cl_int errs[] = {k.setArg(0, in), k.setArg(1, out), k.setArg(2, static_cast<cl_ulong>(len)),
                         k.setArg(9, static_cast<cl_int>(in32)), k.setArg(10, static_cast<cl_int>(out32))};
  for (cl_int e : errs)
    if (e != CL_SUCCESS) return cl_error("clSetKernelArg", e);
  // Two elements a work-item (logistic.cl).
  return enqueue_over(ds, k, q, (len + 1) / 2, (width + 1) / 2, done, "clEnqueueNDRangeKernel");
}

status enqueue_program(const opencl_device_state& ds, cl::Kernel& k, const cl::CommandQueue& q, opencl_slot& s,
                       std::size_t count, std::size_t width) {
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

// ---- programs --------------------------------------------------------------------------------

result<run_stats> run_kernel_on(opencl_device_state& ds, const decoded_kernel& dk, std::span<const std::int64_t> in,
                                std::span<std::int64_t> out, const run_options& options) {
  opencl_program_job pj;
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
  opencl_transfer_job job;
  job.set_arrays(in, out, options);
  job.program = &pj;
  auto r = transfer(ds, job);
  if (!r) return r.err();
  KILN_TRY(device_outcome(dk, in, pj.first_fault.load(), "OpenCL"));
  return r;
}

result<run_stats> run_resident_on(opencl_device_state& ds, const decoded_kernel& dk,
                                  std::span<resident_buffer* const> arrays, std::span<resident_buffer* const> outputs,
                                  std::size_t base) {
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
    KILN_TRY(set_param_args(ds.pairs_kernel, kp));
    KILN_TRY(set_mont_args(ds.pairs_kernel, kp, pairs_mont_arg));
    for (std::size_t i = 0; i < segments; ++i)
      KILN_TRY(enqueue_map_pairs(ds, ins[0]->segments()[i], outs[0]->segments()[i], shape.segment_length(i), width,
                                 &done[i]));
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
    auto program = build_cached(ds.context, ds.device, source, "",
                                [](cl::Program& p, const cl::Device& d) { return build_cl_program(p, d, "kernel"); });
    if (!program) return program.err();
    cl::Kernel kernel(*program, "kiln_resident", &e);
    if (e != CL_SUCCESS) return cl_error("clCreateKernel (kiln_resident)", e);
    it = ds.resident_programs.emplace(source, std::make_pair(std::move(*program), std::move(kernel))).first;
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
                           k.setArg(fixed + 4, static_cast<cl_long>(base + i * shape.segment()))};
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
    const std::size_t index = base + i * shape.segment() + static_cast<std::size_t>(faults[i]);
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

}  // namespace kiln::detail
