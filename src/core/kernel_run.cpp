// kiln::run: the one entry every kernel takes, the built-in map included: checks, picks the device, dispatches.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
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

// A kernel's host arrays placed on one device: every array uploaded to a buffer and a buffer for
// every output (none where the one array is the one output: the kernel works in place on it).
struct placed_arrays {
  std::vector<device_buffer> ins, outs;
  std::vector<arg> on_device;  // the run's arguments, each array replaced by its buffer
  bool in_place = false;
  double up_s = 0;
};

result<placed_arrays> place_arrays(std::span<const arg> args, std::span<const std::span<i64>> outputs,
                                   const run_options& options, backend_kind backend, int index) {
  run_options where = options;
  where.backend = backend_name(backend);
  where.device = index;
  const auto t_up = std::chrono::steady_clock::now();
  placed_arrays p;
  p.on_device.assign(args.begin(), args.end());
  for (const auto& a : args) {
    if (a.what != arg::kind::array) continue;
    if (options.stop.stop_requested()) return cancelled_error();
    auto b = device_buffer::upload(a.array, where);
    if (!b) return b.err();
    p.ins.push_back(std::move(b).value());
  }
  // One array and one output: the run works in place on the one buffer (the kernel is
  // element-wise), so an array half the device's memory still fits.
  p.in_place = p.ins.size() == 1 && outputs.size() == 1;
  for (std::size_t j = 0; j < outputs.size() && !p.in_place; ++j) {
    auto b = device_buffer::allocate(outputs[j].size(), where);
    if (!b) return b.err();
    p.outs.push_back(std::move(b).value());
  }
  for (std::size_t a = 0, j = 0; a < args.size(); ++a)
    if (args[a].what == arg::kind::array) p.on_device[a] = arg::of_buffer(p.ins[j++]);
  p.up_s = seconds_since(t_up);
  return p;
}

// Runs the kernel over placed arrays (in rounds where it has many iterations) and downloads the
// outputs; `base` as run_buffers'.
result<run_stats> run_placed(const decoded_kernel& dk, placed_arrays& p, std::span<const std::span<i64>> outputs,
                             const std::stop_token& stop, std::size_t base) {
  std::vector<device_buffer*> out_ptrs;
  for (auto& b : p.in_place ? p.ins : p.outs) out_ptrs.push_back(&b);
  auto r = run_buffers(dk, p.on_device, out_ptrs, stop, base);
  if (!r) return r.err();
  const auto t_down = std::chrono::steady_clock::now();
  for (std::size_t j = 0; j < outputs.size(); ++j) KILN_TRY(out_ptrs[j]->download(outputs[j]));
  r->host_to_device_s += p.up_s;
  r->device_to_host_s += seconds_since(t_down);
  return r;
}

// Runs a kernel of host arrays on one GPU over device buffers: every array crosses once, the
// kernel runs over the buffers (in rounds where it has many iterations), the outputs come back.
// `placed`: whether every buffer could be made (an array too large for the device fails before).
result<run_stats> through_buffers(const decoded_kernel& dk, std::span<const arg> args,
                                  std::span<const std::span<i64>> outputs, const run_options& options,
                                  backend_kind backend, int index, bool& placed) {
  placed = false;
  auto p = place_arrays(args, outputs, options, backend, index);
  if (!p) return p.err();
  placed = true;
  return run_placed(dk, *p, outputs, options.stop, 0);
}

}  // namespace

std::vector<std::pair<std::size_t, std::size_t>> device_slices(std::size_t n, std::span<const int> weights) {
  std::vector<std::pair<std::size_t, std::size_t>> slices;
  unsigned __int128 total = 0;
  for (int w : weights) total += static_cast<unsigned>(std::max(w, 1));
  unsigned __int128 before = 0;
  std::size_t begin = 0;
  for (int w : weights) {
    before += static_cast<unsigned>(std::max(w, 1));
    const auto end = static_cast<std::size_t>(static_cast<unsigned __int128>(n) * before / total);
    slices.emplace_back(begin, end - begin);
    begin = end;
  }
  return slices;
}

namespace {
// f(i) for i in [0, count), each on a thread of its own (the first on the caller's; the others
// at the workers' niceness, as every thread of Kiln's), all at once; their results (result<T>s)
// in order. Where no more threads can be started, the caller runs the rest one after another. An
// exception inside f becomes its result's error: on a thread of its own it would end the process.
template <class F>
auto on_threads(std::size_t count, F&& f) {
  using R = decltype(f(std::size_t{0}));
  std::vector<std::optional<R>> got(count);
  auto one = [&](std::size_t i) {
    try {
      got[i].emplace(f(i));
    } catch (const std::bad_alloc&) {
      got[i].emplace(make_error(errc::out_of_memory, "no memory for a device's part of the run"));
    } catch (const std::exception& e) {
      got[i].emplace(make_error(errc::internal, std::string("a device's part of the run failed: ") + e.what()));
    } catch (...) {
      got[i].emplace(make_error(errc::internal, "a device's part of the run failed"));
    }
  };
  std::vector<std::thread> threads;
  std::size_t started = 1;
  try {
    threads.reserve(count > 0 ? count - 1 : 0);
    for (; started < count; ++started)
      threads.emplace_back([&one](std::size_t i) { lower_thread_priority(), one(i); }, started);
  } catch (const std::exception&) {
    // No more threads: the rest below, on this one.
  }
  if (count > 0) one(0);
  for (std::size_t i = started; i < count; ++i) one(i);
  for (auto& t : threads) t.join();
  std::vector<R> out;
  out.reserve(count);
  for (auto& g : got) out.push_back(std::move(*g));
  return out;
}

// The lowest slice's error among `results`, if any failed.
template <class R>
std::optional<error> lowest_error(const std::vector<R>& results) {
  for (const auto& r : results)
    if (!r) return r.err();
  return std::nullopt;
}
}  // namespace

result<run_stats> on_every_slice(std::size_t slices, const std::function<result<run_stats>(std::size_t)>& slice,
                                 const std::function<void(std::size_t)>& on_error) {
  auto results = on_threads(slices, [&](std::size_t i) {
    auto r = slice(i);
    if (!r && on_error) on_error(i);
    return r;
  });
  if (auto e = lowest_error(results)) return *e;
  run_stats st;
  for (const auto& r : results) {
    st.host_to_device_s = std::max(st.host_to_device_s, r->host_to_device_s);
    st.kernel_s = std::max(st.kernel_s, r->kernel_s);
    st.device_to_host_s = std::max(st.device_to_host_s, r->device_to_host_s);
    st.total_s = std::max(st.total_s, r->total_s);
    st.chunks += r->chunks;
    st.host_elements += r->host_elements;
  }
  return st;
}

result<run_stats> run_over_devices(const decoded_kernel& dk, std::span<const arg> args,
                                   std::span<const std::span<i64>> outputs, const run_options& options,
                                   backend_kind backend, std::span<const device_info> devices, bool& placed) {
  placed = false;
  std::size_t n = 0;
  for (const auto& o : outputs) n = o.size();
  std::vector<int> weights;
  for (const auto& d : devices) weights.push_back(d.compute_units);
  std::vector<std::pair<std::size_t, std::size_t>> slices;
  std::vector<int> where;
  {
    const auto all = device_slices(n, weights);
    for (std::size_t i = 0; i < all.size(); ++i)
      if (all[i].second > 0) slices.push_back(all[i]), where.push_back(devices[i].index);
  }
  if (slices.empty())
    return make_error(errc::internal, n == 0 ? "a run over several devices of no elements"
                                             : "a run over several devices named no device");
  // Each slice's arguments and outputs: the arrays' and outputs' parts, the scalars as they are.
  std::vector<std::vector<arg>> slice_args(slices.size());
  std::vector<std::vector<std::span<i64>>> slice_outs(slices.size());
  for (std::size_t i = 0; i < slices.size(); ++i) {
    const auto [begin, count] = slices[i];
    for (const auto& a : args)
      slice_args[i].push_back(a.what == arg::kind::array ? arg::of_array(a.array.subspan(begin, count)) : a);
    for (const auto& o : outputs) slice_outs[i].push_back(o.subspan(begin, count));
  }
  // Every slice placed before any runs: a device short of memory then fails the run before any
  // output (which may be an argument's memory) is written, as one device's does.
  auto on_device = on_threads(slices.size(), [&](std::size_t i) {
    return place_arrays(slice_args[i], slice_outs[i], options, backend, where[i]);
  });
  if (auto e = lowest_error(on_device)) return *e;
  placed = true;
  // Each slice's own stop: the caller's stops them all, and a slice that fails stops those after
  // it, whose errors could not be the run's.
  std::vector<std::stop_source> stops(slices.size());
  std::stop_callback caller_stop(options.stop, [&] {
    for (auto& s : stops) s.request_stop();
  });
  return on_every_slice(
      slices.size(),
      [&](std::size_t i) { return run_placed(dk, *on_device[i], slice_outs[i], stops[i].get_token(), slices[i].first); },
      [&](std::size_t i) {
        for (std::size_t j = i + 1; j < stops.size(); ++j) stops[j].request_stop();
      });
}

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
  // Through device buffers: on the one device, or a slice on each for all_devices.
  auto via_buffers = [&] {
    r = *index == all_devices
            ? run_over_devices(dk, args, outputs, options, dev->backend, usable_devices(dev->backend), placed)
            : through_buffers(dk, args, outputs, options, dev->backend, *index, placed);
    if (r) r->total_s = seconds_since(t0);
  };
  if (is_gpu(dev->backend) && single && total_iterations(dk) > gpu_round_min) {
    if (!dk.builtin) KILN_TRY(be.kernel_support());
    via_buffers();
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
      // the outputs come back (the pipelines stream one array each way); over several devices,
      // each takes a slice of every array.
      via_buffers();
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
                              std::span<device_buffer* const> outputs, const std::stop_token& stop, std::size_t base) {
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
                                              : be.run_resident(dev.index, *dk, arrays, outs, stop, base))
                     : in_rounds(*dk, first->size(), stop, resident_round_s, [&](const decoded_kernel& d, bool first_round) {
                         return be.run_resident(dev.index, d, first_round ? std::span<resident_buffer* const>(arrays)
                                                                          : std::span<resident_buffer* const>(outs),
                                                outs, stop, base);
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
