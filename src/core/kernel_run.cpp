// kiln::run: the one entry every kernel takes, the built-in map included: checks, picks the device, dispatches.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <mutex>
#include <optional>
#include <vector>

#include "core/backend.hpp"
#include "core/host_pool.hpp"
#include "core/kernel_ir.hpp"
#include "core/thread_pool.hpp"
#include "kiln/kernel.hpp"
#include "kiln/kiln.hpp"

namespace kiln {
namespace detail {
namespace {

using i64 = std::int64_t;

// Where "auto" runs a kernel the GPU backends stream (one array, one output) of n elements: on a
// GPU whose backend compiles kernels (CUDA first), unless n is below gpu_kernel_min, where a
// launch and the copies (and a compile, on the first call) cost more than the host takes; else
// the cpu backend. Kernels of several arrays run on the host backends.
constexpr std::size_t gpu_kernel_min = std::size_t{1} << 16;

// Below this much work (elements x iterations) "auto" runs on the host's cores: a GPU run from
// host memory has a fixed cost however small (about 80 us on the H200 from ordinary memory),
// which the host's cores undercut there. Many iterations over few elements stay on the GPU,
// where the host's few vectors per thread each run one long dependent chain: beyond 10
// iterations the host keeps only a much smaller amount of work, and none beyond 100 (the sweeps
// of docs/BENCHMARKS.md, "The sweep and auto" and CX, measure both sides: at 2^16 elements and
// 100 iterations the cpu backend took 0.302 ms, the GPU 0.079 ms; at 1024 and 100, 0.019 against
// 0.022 ms).
constexpr double host_work_max = double(std::int64_t{1} << 24);
constexpr std::int64_t host_short_iterations = 10;
constexpr double host_long_work_max = double(std::int64_t{1} << 18);
constexpr std::int64_t host_iterations_max = 100;

std::int64_t total_iterations(const decoded_kernel& dk) {
  return dk.builtin ? dk.builtin->params.iterations : dk.iterations;
}

bool small_work(const decoded_kernel& dk, std::size_t n) {
  const std::int64_t k = total_iterations(dk);
  const double work = static_cast<double>(n) * static_cast<double>(k);
  if (k <= host_short_iterations) return work <= host_work_max;
  return k <= host_iterations_max && work <= host_long_work_max;
}

result<device_info> resolve_kernel_device(const run_options& options, const decoded_kernel& dk, std::size_t n) {
  if (options.backend != "auto") return resolve(options);
  if (options.device == 0 && small_work(dk, n)) {
    run_options cpu = options;
    cpu.backend = "cpu";
    return resolve(cpu);
  }
  if (dk.builtin) return resolve(options);  // the map: the best device resolve's "auto" finds
  // A device index other than 0 names a GPU: resolve's "auto" finds it or says there is none.
  if (options.device != 0 && options.device != all_devices) return resolve(options);
  const auto all = devices();
  if (n >= gpu_kernel_min && dk.arrays == 1 && dk.outputs == 1)
    for (auto k : {backend_kind::cuda, backend_kind::opencl})
      for (const auto& d : all)
        if (d.backend == k && d.available && d.gpu && backend_of(k).kernel_support().ok()) return d;
  run_options cpu = options;
  cpu.backend = "cpu";
  cpu.device = 0;  // as resolve's "auto", which picks its device itself
  return resolve(cpu);
}

// Every output is the same memory as an array argument or apart from all of them, and outputs are
// apart from each other.
status check_aliasing(std::span<const arg> args, std::span<const std::span<i64>> outputs) {
  for (std::size_t j = 0; j < outputs.size(); ++j) {
    for (const auto& a : args)
      if (a.what == arg::kind::array) KILN_TRY(check_in_out(a.array, outputs[j]));
    for (std::size_t o = 0; o < j; ++o) {
      const auto* p = outputs[j].data();
      const auto* q = outputs[o].data();
      if (!outputs[j].empty() && p < q + outputs[o].size() && q < p + outputs[j].size())
        return make_error(errc::invalid_argument, "outputs " + std::to_string(o) + " and " + std::to_string(j) + " overlap");
    }
  }
  return {};
}

// GPU backends run a launch to its end, and look at run_options::stop between chunks. A chunk of
// many iterations would hold a stopped run for as long as it takes, so runs of more iterations
// than gpu_round_min go in rounds, each a run of its own (the map applied a then b times is the
// map applied a + b times). The first round is short; each next one is sized from the last's
// time to take about `round_s`, so the device's speed (an H200, or OpenCL on a CPU) sets the
// rounds, not a guess. Counts up to gpu_round_min never split: the usual runs take one round.
// The first round applies at most gpu_first_round iterations and about gpu_first_work element
// iterations (a few ms on a CPU device, well under one on a GPU), so that a long array's first
// round is short too.
constexpr std::int64_t gpu_round_min = 4096;
constexpr std::int64_t gpu_first_round = 64;
constexpr std::int64_t gpu_first_work = std::int64_t{1} << 22;

decoded_kernel with_iterations(const decoded_kernel& dk, std::int64_t k) {
  decoded_kernel c = dk;
  if (c.builtin) c.builtin->params.iterations = k;
  else c.iterations = k;
  return c;
}

// A fault in a later round names its iteration within the round: the run's count is `done` more.
error shift_iteration(error e, std::int64_t done) {
  if (done == 0) return e;
  const std::string tag = "iteration ";
  const auto at = e.message.find(tag);
  if (at == std::string::npos) return e;
  const auto digits = at + tag.size();
  auto end = digits;
  while (end < e.message.size() && e.message[end] >= '0' && e.message[end] <= '9') ++end;
  if (end == digits) return e;
  const std::int64_t k = std::stoll(e.message.substr(digits, end - digits)) + done;
  // The element's value quoted before it is the round's input, not the run's: leave it out.
  std::string head = e.message.substr(0, at);
  if (const auto open = head.rfind(" ("); open != std::string::npos) head = head.substr(0, open) + ", ";
  e.message = head + tag + std::to_string(k) + e.message.substr(end);
  return e;
}

// Runs `round(dk_round, first)` for every round of a single-array kernel of n elements on a GPU
// backend (the first round reads the caller's array, later ones the output in place), summing their stats,
// stopping between rounds once `stop` is requested. `round_s`: the time a round should take
// (streamed rounds cross the bus each time, so they are longer than rounds over buffers).
template <class Round>
result<run_stats> in_rounds(const decoded_kernel& dk, std::size_t n, const std::stop_token& stop, double round_s,
                            Round&& round) {
  const std::int64_t total = total_iterations(dk);
  if (total <= gpu_round_min) return round(dk, true);
  run_stats sum;
  std::int64_t step =
      std::clamp<std::int64_t>(gpu_first_work / static_cast<std::int64_t>(std::max<std::size_t>(n, 1)), 1, gpu_first_round);
  for (std::int64_t done = 0; done < total;) {
    if (stop.stop_requested()) return cancelled_error();
    const std::int64_t k = std::min(step, total - done);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = round(with_iterations(dk, k), done == 0);
    if (!r) return shift_iteration(r.err(), done);
    const double took = seconds_since(t0);
    done += k;
    // The next round's count from this one's pace, at most 8 times larger at once.
    const double scale = took > 0 ? std::min(8.0, round_s / took) : 8.0;
    step = std::clamp<std::int64_t>(static_cast<std::int64_t>(static_cast<double>(k) * scale), 1, std::int64_t{1} << 40);
    sum.host_to_device_s += r->host_to_device_s;
    sum.kernel_s += r->kernel_s;
    sum.device_to_host_s += r->device_to_host_s;
    sum.total_s += r->total_s;
    sum.chunks += r->chunks;
    sum.host_elements += r->host_elements;
  }
  return sum;
}

// Round times: streamed rounds move the array over the bus each time, so they are longer.
constexpr double streamed_round_s = 0.05;
constexpr double resident_round_s = 0.01;

bool is_gpu(backend_kind k) { return k == backend_kind::cuda || k == backend_kind::opencl; }

// Whether a run holds the host pool's background pins off (run_scope): a GPU run (a pin would
// stall its copies), or a host run over arrays of pooled size, whose blocks may not have been
// touched yet (a pin would stall the page faults of their first touch); smaller arrays come from
// the heap, and a scope costs a clock read.
bool holds_pins_off(backend_kind backend, std::size_t elements) {
  return is_gpu(backend) || elements * sizeof(i64) >= host_pool_block_min;
}

// Runs a kernel of host arrays on one GPU over device buffers: every array crosses once, the
// kernel runs over the buffers (in rounds where it has many iterations), the outputs come back.
// `placed`: whether every buffer could be made (an array too large for the device fails before).
result<run_stats> through_buffers(const decoded_kernel& dk, std::span<const arg> args,
                                  std::span<const std::span<i64>> outputs, const run_options& options,
                                  backend_kind backend, int index, bool& placed) {
  placed = false;
  run_options where = options;
  where.backend = backend_name(backend);
  where.device = index;
  const auto t_up = std::chrono::steady_clock::now();
  std::vector<device_buffer> ins, outs;
  std::vector<arg> on_device(args.begin(), args.end());
  for (const auto& a : args) {
    if (a.what != arg::kind::array) continue;
    auto b = device_buffer::upload(a.array, where);
    if (!b) return b.err();
    ins.push_back(std::move(b).value());
  }
  // One array and one output: the run works in place on the one buffer (the kernel is
  // element-wise), so an array half the device's memory still fits.
  const bool in_place = ins.size() == 1 && outputs.size() == 1;
  for (std::size_t j = 0; j < outputs.size() && !in_place; ++j) {
    auto b = device_buffer::allocate(outputs[j].size(), where);
    if (!b) return b.err();
    outs.push_back(std::move(b).value());
  }
  const double up_s = seconds_since(t_up);
  placed = true;
  for (std::size_t a = 0, j = 0; a < args.size(); ++a)
    if (args[a].what == arg::kind::array) on_device[a] = arg::of_buffer(ins[j++]);
  std::vector<device_buffer*> out_ptrs;
  for (auto& b : in_place ? ins : outs) out_ptrs.push_back(&b);
  auto r = run_buffers(dk, on_device, out_ptrs, options.stop);
  if (!r) return r.err();
  const auto t_down = std::chrono::steady_clock::now();
  for (std::size_t j = 0; j < outputs.size(); ++j) KILN_TRY(out_ptrs[j]->download(outputs[j]));
  r->host_to_device_s += up_s;
  r->device_to_host_s += seconds_since(t_down);
  return r;
}

}  // namespace

result<run_stats> run_decoded(const decoded_kernel& dk, std::span<const arg> args,
                              std::span<const std::span<i64>> outputs, const run_options& options) {
  const auto t0 = std::chrono::steady_clock::now();
  if (outputs.size() != dk.outputs)
    return make_error(errc::invalid_argument, "the kernel has " + std::to_string(dk.outputs) + " output(s), " +
                                                  std::to_string(outputs.size()) + " array(s) given for them");
  for (std::size_t a = 0; a < args.size(); ++a)
    if (args[a].what == arg::kind::buffer)
      return make_error(errc::invalid_argument, "argument " + std::to_string(a) +
                                                    " is a device buffer; a run over host arrays takes none (run a "
                                                    "kernel over buffers with device_buffer outputs instead)");
  auto n = run_length(args, outputs);
  if (!n) return n.err();
  KILN_TRY(check_aliasing(args, outputs));
  auto dev = resolve_kernel_device(options, dk, *n);
  if (!dev) return dev.err();
  run_stats st;
  auto index = run_target(options, *dev, st);
  if (!index) return index.err();
  backend& be = backend_of(dev->backend);
  std::optional<run_scope> running;
  if (holds_pins_off(dev->backend, *n)) running.emplace();

  std::span<const i64> single_array;
  for (const auto& a : args)
    if (a.what == arg::kind::array) single_array = a.array;
  // Nothing to compute: the single array copied (kernel::iterations == 0), or no elements.
  if (*n == 0 || dk.iterations == 0 || (dk.builtin && dk.builtin->params.iterations == 0)) {
    if (*n > 0 && single_array.data() != outputs[0].data())
      std::memcpy(outputs[0].data(), single_array.data(), single_array.size_bytes());
    st.total_s = seconds_since(t0);
    return st;
  }

  result<run_stats> r = make_error(errc::internal, "no path ran the kernel");
  // Many iterations on one GPU: the array crosses once, and the rounds run over buffers (each
  // round then costs about resident_round_s of device work, not a trip over the bus). An array
  // the device cannot hold twice streams in rounds instead.
  const bool single = dk.arrays == 1 && dk.outputs == 1;
  bool placed = false;
  if (is_gpu(dev->backend) && single && total_iterations(dk) > gpu_round_min && *index != all_devices) {
    if (!dk.builtin) KILN_TRY(be.kernel_support());
    r = through_buffers(dk, args, outputs, options, dev->backend, *index, placed);
    if (r) r->total_s = seconds_since(t0);
  }
  if (placed) {
    // Ran (or failed) over buffers: r holds its result.
  } else if (dk.builtin) {
    // The built-in map: every backend's hand-tuned code, the host's share included.
    const auto& a = args[dk.builtin->array].array;
    if (is_gpu(dev->backend)) {
      r = in_rounds(dk, *n, options.stop, streamed_round_s, [&](const decoded_kernel& d, bool first) {
        return be.run(*index, first ? a : std::span<const i64>(outputs[0]), outputs[0], prepare(d.builtin->params),
                      options);
      });
    } else {
      r = be.run(*index, a, outputs[0], prepare(dk.builtin->params), options);
    }
  } else if (dev->backend == backend_kind::scalar || dev->backend == backend_kind::cpu) {
    std::vector<const i64*> arrays;
    for (const auto& a : args)
      if (a.what == arg::kind::array) arrays.push_back(a.array.data());
    std::vector<i64*> outs;
    for (const auto& o : outputs) outs.push_back(o.data());
    r = interpret_all(dk, arrays, outs, *n, dev->backend == backend_kind::cpu, options.stop);
  } else {
    KILN_TRY(be.kernel_support());
    if (single) {
      r = in_rounds(dk, *n, options.stop, streamed_round_s, [&](const decoded_kernel& d, bool first) {
        return be.run_kernel(*index, d, first ? single_array : std::span<const i64>(outputs[0]), outputs[0], options);
      });
    } else {
      // Several arrays: each crosses to the device whole, the kernel runs there over buffers, and
      // the outputs come back (the pipelines stream one array each way).
      if (*index == all_devices)
        return make_error(errc::invalid_argument,
                          "a kernel of several arrays runs on one device: choose a device index");
      r = through_buffers(dk, args, outputs, options, dev->backend, *index, placed);
      if (r) r->total_s = seconds_since(t0);
    }
  }
  if (!r) return r.err();
  // Lanes stop taking chunks once a stop is requested, and end the run early with what they had.
  if (options.stop.stop_requested()) return cancelled_error();
  r->backend = st.backend;
  r->device = st.device;
  return r;
}

}  // namespace detail

result<run_stats> run(const kernel& k, std::span<const arg> args, std::span<device_buffer* const> outputs) {
  return run(k, args, outputs, run_options{});
}

result<run_stats> run(const kernel& k, std::span<const arg> args, std::span<device_buffer* const> outputs,
                      const run_options& options) {
  auto dk = detail::decode_kernel(k, args);
  if (!dk) return dk.err();
  return detail::run_buffers(*dk, args, outputs, options.stop);
}

namespace detail {

result<run_stats> run_buffers(const decoded_kernel& decoded, std::span<const arg> args,
                              std::span<device_buffer* const> outputs, const std::stop_token& stop) {
  const auto t0 = std::chrono::steady_clock::now();
  const decoded_kernel* dk = &decoded;
  if (outputs.size() != dk->outputs)
    return make_error(errc::invalid_argument, "the kernel has " + std::to_string(dk->outputs) + " output(s), " +
                                                  std::to_string(outputs.size()) + " buffer(s) given for them");
  // Every array a buffer, every buffer on one device and of one length.
  const device_buffer* first = nullptr;
  std::vector<detail::resident_buffer*> arrays, outs;
  auto same_place = [&](const device_buffer& b, const std::string& what) -> status {
    if (!first) first = &b;
    const auto& d = buffer_access::of(b).device;
    const auto& f = buffer_access::of(*first).device;
    if (d.backend != f.backend || d.index != f.index)
      return make_error(errc::invalid_argument, what + " lives on " + backend_name(d.backend) + " device " +
                                                    std::to_string(d.index) + ", the others on " +
                                                    backend_name(f.backend) + " device " + std::to_string(f.index));
    if (b.size() != first->size())
      return make_error(errc::invalid_argument, what + " has " + std::to_string(b.size()) + " elements, the others " +
                                                    std::to_string(first->size()));
    return {};
  };
  for (std::size_t a = 0; a < args.size(); ++a) {
    if (args[a].what == arg::kind::scalar) continue;
    if (args[a].what != arg::kind::buffer || !args[a].buffer)
      return make_error(errc::invalid_argument, "argument " + std::to_string(a) +
                                                    " is a host array; a run over buffers takes every array as a buffer");
    KILN_TRY(same_place(*args[a].buffer, "argument " + std::to_string(a)));
    arrays.push_back(buffer_access::of(*args[a].buffer).buffer.get());
  }
  for (std::size_t j = 0; j < outputs.size(); ++j) {
    if (!outputs[j]) return make_error(errc::invalid_argument, "output " + std::to_string(j) + " is no buffer");
    KILN_TRY(same_place(*outputs[j], "output " + std::to_string(j)));
    for (std::size_t o = 0; o < j; ++o)
      if (outputs[o] == outputs[j])
        return make_error(errc::invalid_argument, "outputs " + std::to_string(o) + " and " + std::to_string(j) +
                                                      " are the same buffer");
    outs.push_back(buffer_access::of(*outputs[j]).buffer.get());
  }
  const device_info& dev = buffer_access::of(*first).device;
  run_stats st;
  const bool nothing = first->size() == 0 || dk->iterations == 0 || (dk->builtin && dk->builtin->params.iterations == 0);
  if (nothing) {
    if (first->size() > 0 && outs[0] != arrays[0])
      return make_error(errc::invalid_argument,
                        "no iterations over buffers leaves the argument as it is: give its buffer as the output");
  } else {
    backend& be = backend_of(dev.backend);
    std::optional<run_scope> running;
    if (holds_pins_off(dev.backend, first->size())) running.emplace();
    const bool rounds = is_gpu(dev.backend) && dk->arrays == 1 && dk->outputs == 1;
    auto r = !rounds ? (stop.stop_requested() ? result<run_stats>(cancelled_error())
                                              : be.run_resident(dev.index, *dk, arrays, outs, stop))
                     : in_rounds(*dk, first->size(), stop, resident_round_s, [&](const decoded_kernel& d, bool first_round) {
                         return be.run_resident(dev.index, d, first_round ? std::span<resident_buffer* const>(arrays)
                                                                          : std::span<resident_buffer* const>(outs),
                                                outs, stop);
                       });
    if (!r) return r.err();
    st = std::move(r).value();
  }
  st.backend = backend_name(dev.backend);
  st.device = dev.name;
  if (st.total_s == 0) st.total_s = seconds_since(t0);
  return st;
}

}  // namespace detail

status validate(const kernel& k, std::span<const arg> args) {
  auto dk = detail::decode_kernel(k, args);
  if (!dk) return dk.err();
  return {};
}

result<run_stats> run(const kernel& k, std::span<const arg> args, std::span<const std::span<std::int64_t>> outputs,
                      const run_options& options) {
  auto dk = detail::decode_kernel(k, args);
  if (!dk) return dk.err();
  return detail::run_decoded(*dk, args, outputs, options);
}

}  // namespace kiln
