// kiln_transfer_limits: measures the host and PCIe limits an end-to-end GPU run is bound by, and pipeline shapes.
//
// Prints one line per figure (median of several runs): host copy bandwidth by thread count and
// store kind; pinned and pageable transfers each way and both ways at once; the cost of pinning
// a caller's array with cudaHostRegister; and end-to-end pageable runs of the logistic map with
// per-thread pipelines of several shapes (each checked against the cpu backend). It is a
// measuring tool for docs/BENCHMARKS.md, not part of the library. Usage: kiln_transfer_limits [n]
// [transfers] (the second argument stops after the copy, transfer and pinning figures).
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_simd.hpp"
#include "backends/cuda/logistic_kernel.cuh"
#include "core/backend.hpp"
#include "core/stream_copy.hpp"
#include "core/thread_pool.hpp"
#include "kiln/kiln.hpp"
#include "cuda_limits_common.cuh"

namespace {

using namespace kiln_limits;

// Splits [0, n) into `threads` contiguous parts and runs body(begin, end) on each in its own thread.
void on_threads(int threads, std::size_t n, const std::function<void(std::size_t, std::size_t)>& body) {
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { body(n * t / threads, n * (t + 1) / threads); });
  for (auto& th : pool) th.join();
}

// One thread's pipeline: `slots` chunks of `chunk` elements in flight on its own stream.
struct lane {
  cudaStream_t stream{};
  std::vector<cudaStream_t> slot_streams;  // one per slot, for the assisted pipeline
  std::vector<i64*> hin, hout, din, dout;
  std::vector<cudaEvent_t> done;
  std::vector<cudaGraphExec_t> graphs;  // per slot, a full chunk's four commands as one graph
};

struct pipeline_shape {
  int threads;
  std::size_t chunk;
  int slots;
  bool stream_in;   // non-temporal stores into the input staging (else memcpy, staging stays cached)
  bool stream_out;  // non-temporal stores into the caller's output
  bool assist = false;  // threads compute chunks on the CPU while their GPU slots are busy
  bool zero_copy = false;  // the kernel reads the input staging and writes the output staging itself
  bool wc_in = false;      // input staging allocated write-combined
  bool slot_streams = false;  // one stream per slot (as the library does) instead of per thread
  bool graph = false;         // full chunks launched as one captured graph per slot (slot streams)
};

// Where the pipeline threads' time goes, summed over threads (the last timed run).
struct thread_phases {
  std::atomic<long long> copy_in{0}, submit{0}, wait{0}, copy_out{0};
  void clear() { copy_in = submit = wait = copy_out = 0; }
};
thread_phases g_phases;

// Pageable in -> pageable out through per-thread staging. Thread t takes chunks t, t + T, ...
void run_pipeline(const pipeline_shape& sh, std::vector<lane>& lanes, const i64* in, i64* out, std::size_t n,
                  const kiln::detail::kernel_params& kp, int sms) {
  const std::size_t chunks = (n + sh.chunk - 1) / sh.chunk;
  g_phases.clear();
  std::vector<std::thread> pool;
  for (int t = 0; t < sh.threads; ++t) {
    pool.emplace_back([&, t] {
      lane& l = lanes[t];
      long long ci = 0, sb = 0, wt = 0, co = 0;
      std::vector<std::size_t> begin(sh.slots), count(sh.slots);
      std::vector<bool> busy(sh.slots, false);
      auto drain = [&](int k) {
        auto t0 = clock_type::now();
        check(cudaEventSynchronize(l.done[k]), "cudaEventSynchronize");
        wt += ns_since(t0);
        t0 = clock_type::now();
        if (sh.stream_out)
          kiln::detail::copy_streaming(out + begin[k], l.hout[k], count[k]);
        else
          std::memcpy(out + begin[k], l.hout[k], count[k] * sizeof(i64));
        co += ns_since(t0);
        busy[k] = false;
      };
      int k = 0;
      for (std::size_t c = t; c < chunks; c += sh.threads, k = (k + 1) % sh.slots) {
        if (busy[k]) drain(k);
        begin[k] = c * sh.chunk;
        count[k] = std::min(sh.chunk, n - begin[k]);
        const std::size_t bytes = count[k] * sizeof(i64);
        auto t0 = clock_type::now();
        if (sh.stream_in)
          kiln::detail::copy_streaming(l.hin[k], in + begin[k], count[k]);
        else
          std::memcpy(l.hin[k], in + begin[k], bytes);
        ci += ns_since(t0);
        t0 = clock_type::now();
        if (sh.zero_copy) {
          cudaStream_t st = l.slot_streams[k];
          check(kiln::detail::launch_logistic(l.hin[k], l.hout[k], count[k], kp, sms, st), "kernel");
          check(cudaEventRecord(l.done[k], st), "cudaEventRecord");
        } else if (sh.graph && count[k] == sh.chunk) {
          check(cudaGraphLaunch(l.graphs[k], l.slot_streams[k]), "cudaGraphLaunch");
        } else {
          cudaStream_t st = sh.slot_streams || sh.graph ? l.slot_streams[k] : l.stream;
          check(cudaMemcpyAsync(l.din[k], l.hin[k], bytes, cudaMemcpyHostToDevice, st), "H2D");
          check(kiln::detail::launch_logistic(l.din[k], l.dout[k], count[k], kp, sms, st), "kernel");
          check(cudaMemcpyAsync(l.hout[k], l.dout[k], bytes, cudaMemcpyDeviceToHost, st), "D2H");
          check(cudaEventRecord(l.done[k], st), "cudaEventRecord");
        }
        sb += ns_since(t0);
        busy[k] = true;
      }
      for (int j = 0; j < sh.slots; ++j) {
        const int s = (k + j) % sh.slots;
        if (busy[s]) drain(s);
      }
      g_phases.copy_in += ci;
      g_phases.submit += sb;
      g_phases.wait += wt;
      g_phases.copy_out += co;
    });
  }
  for (auto& th : pool) th.join();
}

// Like run_pipeline, but chunks come from one shared counter, each slot has its own stream, and a
// thread whose slots are all in flight computes the next chunk itself (the cpu backend's SIMD
// kernel, straight from the caller's input to its output) instead of waiting: the GPU and the
// CPU share the work, each taking chunks as fast as it finishes them.
void run_assisted(const pipeline_shape& sh, std::vector<lane>& lanes, const i64* in, i64* out, std::size_t n,
                  const kiln::detail::kernel_params& kp, int sms, std::size_t& cpu_chunks) {
  const std::size_t chunks = (n + sh.chunk - 1) / sh.chunk;
  std::atomic<std::size_t> next{0}, on_cpu{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < sh.threads; ++t) {
    pool.emplace_back([&, t] {
      lane& l = lanes[t];
      std::vector<std::size_t> begin(sh.slots), count(sh.slots);
      std::vector<int> fifo;  // busy slots, oldest first
      std::vector<int> free_slots;
      for (int k = sh.slots - 1; k >= 0; --k) free_slots.push_back(k);
      auto drain = [&](int k) {
        check(cudaEventSynchronize(l.done[k]), "cudaEventSynchronize");
        kiln::detail::copy_streaming(out + begin[k], l.hout[k], count[k]);
        free_slots.push_back(k);
      };
      for (;;) {
        if (!fifo.empty() && cudaEventQuery(l.done[fifo.front()]) == cudaSuccess) {
          drain(fifo.front());
          fifo.erase(fifo.begin());
          continue;
        }
        const std::size_t c = next.fetch_add(1);
        if (c >= chunks) break;
        const std::size_t b = c * sh.chunk, cnt = std::min(sh.chunk, n - b);
        if (free_slots.empty()) {
          kiln::detail::logistic_simd(in + b, out + b, cnt, kp);
          on_cpu.fetch_add(1);
          continue;
        }
        const int k = free_slots.back();
        free_slots.pop_back();
        begin[k] = b;
        count[k] = cnt;
        cudaStream_t st = l.slot_streams[k];
        std::memcpy(l.hin[k], in + b, cnt * sizeof(i64));
        check(cudaMemcpyAsync(l.din[k], l.hin[k], cnt * 8, cudaMemcpyHostToDevice, st), "H2D");
        check(kiln::detail::launch_logistic(l.din[k], l.dout[k], cnt, kp, sms, st), "kernel");
        check(cudaMemcpyAsync(l.hout[k], l.dout[k], cnt * 8, cudaMemcpyDeviceToHost, st), "D2H");
        check(cudaEventRecord(l.done[k], st), "cudaEventRecord");
        fifo.push_back(k);
      }
      for (int k : fifo) drain(k);
    });
  }
  for (auto& th : pool) th.join();
  cpu_chunks = on_cpu.load();
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : std::size_t{1} << 25;
  const int runs = 7;
  const std::size_t bytes = n * sizeof(i64);
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::printf("n = %zu (%zu MiB each way), %d hardware threads\n", n, bytes >> 20, hw);

  std::vector<i64> in(n), out(n, 0), expect(n);
  for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<i64>(i + 1);
  kiln::map_params params;  // the seed's p, mu and 10 iterations
  kiln::run_options cpu_opts;
  cpu_opts.backend = "cpu";
  kiln::logistic_map(in, expect, params, cpu_opts).value_or_throw();

  // ---- host copies ------------------------------------------------------------------------------
  std::vector<int> thread_counts;
  for (int t = 1; t < hw; t *= 2) thread_counts.push_back(t);
  thread_counts.push_back(hw);
  for (int t : thread_counts) {
    report("host memcpy, " + std::to_string(t) + " threads", median_ms(runs, [&] {
             on_threads(t, n, [&](std::size_t b, std::size_t e) { std::memcpy(&out[b], &in[b], (e - b) * 8); });
           }), bytes);
    report("host non-temporal copy, " + std::to_string(t) + " threads", median_ms(runs, [&] {
             on_threads(t, n, [&](std::size_t b, std::size_t e) { kiln::detail::copy_streaming(&out[b], &in[b], e - b); });
           }), bytes);
  }

  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: GPU figures skipped\n");
    return 0;
  }
  check(cudaSetDevice(0), "cudaSetDevice");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  int pageable_access = 0;
  (void)cudaDeviceGetAttribute(&pageable_access, cudaDevAttrPageableMemoryAccess, 0);
  std::printf("GPU: %s, %d SMs, %d async engines, pageable memory access %d\n", prop.name,
              prop.multiProcessorCount, prop.asyncEngineCount, pageable_access);

  // ---- transfers ----------------------------------------------------------------------------------
  i64 *pin_a = nullptr, *pin_b = nullptr, *dev_a = nullptr, *dev_b = nullptr;
  check(cudaHostAlloc(reinterpret_cast<void**>(&pin_a), bytes, cudaHostAllocDefault), "cudaHostAlloc");
  check(cudaHostAlloc(reinterpret_cast<void**>(&pin_b), bytes, cudaHostAllocDefault), "cudaHostAlloc");
  check(cudaMalloc(reinterpret_cast<void**>(&dev_a), bytes), "cudaMalloc");
  check(cudaMalloc(reinterpret_cast<void**>(&dev_b), bytes), "cudaMalloc");
  std::memcpy(pin_a, in.data(), bytes);
  cudaStream_t s1, s2;
  check(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking), "cudaStreamCreate");
  report("pinned H2D", median_ms(runs, [&] { check(cudaMemcpy(dev_a, pin_a, bytes, cudaMemcpyHostToDevice), "H2D"); }), bytes);
  report("pinned D2H", median_ms(runs, [&] { check(cudaMemcpy(pin_b, dev_a, bytes, cudaMemcpyDeviceToHost), "D2H"); }), bytes);
  report("pinned H2D + D2H at once (bytes one way)", median_ms(runs, [&] {
           check(cudaMemcpyAsync(dev_a, pin_a, bytes, cudaMemcpyHostToDevice, s1), "H2D");
           check(cudaMemcpyAsync(pin_b, dev_b, bytes, cudaMemcpyDeviceToHost, s2), "D2H");
           check(cudaStreamSynchronize(s1), "sync");
           check(cudaStreamSynchronize(s2), "sync");
         }), bytes);
  report("pageable H2D (driver staging)", median_ms(runs, [&] {
           check(cudaMemcpy(dev_a, in.data(), bytes, cudaMemcpyHostToDevice), "H2D");
         }), bytes);
  report("pageable D2H (driver staging)", median_ms(runs, [&] {
           check(cudaMemcpy(out.data(), dev_a, bytes, cudaMemcpyDeviceToHost), "D2H");
         }), bytes);
  // A device-to-device cudaMemcpy returns before the copy ends: wait for it. The bytes are read
  // once and written once, as by the logistic map's kernel, so this is the kernel's floor.
  report("device to device copy (bytes read)", median_ms(runs, [&] {
           check(cudaMemcpy(dev_b, dev_a, bytes, cudaMemcpyDeviceToDevice), "D2D");
           check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
         }), bytes);

  // The kernel reading and writing page-locked host memory itself (no copy commands at all).
  report("zero-copy kernel, pinned in -> pinned out (bytes one way)", median_ms(runs, [&] {
           check(kiln::detail::launch_logistic(pin_a, pin_b, n, kiln::detail::prepare(kiln::map_params{}),
                                               prop.multiProcessorCount, s1), "kernel");
           check(cudaStreamSynchronize(s1), "sync");
         }), bytes);
  {
    std::vector<i64> host_b(pin_b, pin_b + n);
    std::printf("zero-copy result %s\n", host_b == expect ? "matches" : "MISMATCH");
  }

  // ---- pinning the caller's memory ---------------------------------------------------------------
  report("cudaHostRegister + Unregister of a pageable array", median_ms(3, [&] {
           check(cudaHostRegister(out.data(), bytes, cudaHostRegisterDefault), "cudaHostRegister");
           check(cudaHostUnregister(out.data()), "cudaHostUnregister");
         }), bytes);
  // The same from several threads at once, each pinning its own page-aligned piece: whether the
  // driver and the kernel let registrations run side by side.
  for (int t : {1, 4, hw}) {
    const std::size_t page = 4096;
    auto* base = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(out.data()) + page - 1) / page * page);
    const std::size_t usable = (bytes - static_cast<std::size_t>(base - reinterpret_cast<char*>(out.data()))) / page * page;
    const std::size_t piece = usable / static_cast<std::size_t>(t) / page * page;
    std::vector<double> reg, unreg;
    for (int r = 0; r < 5; ++r) {
      auto t0 = clock_type::now();
      on_threads(t, static_cast<std::size_t>(t), [&](std::size_t b, std::size_t) {
        check(cudaHostRegister(base + b * piece, piece, cudaHostRegisterDefault), "cudaHostRegister");
      });
      auto t1 = clock_type::now();
      on_threads(t, static_cast<std::size_t>(t), [&](std::size_t b, std::size_t) {
        check(cudaHostUnregister(base + b * piece), "cudaHostUnregister");
      });
      auto t2 = clock_type::now();
      reg.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      unreg.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
    std::sort(reg.begin(), reg.end());
    std::sort(unreg.begin(), unreg.end());
    const double moved = static_cast<double>(piece) * t;
    report("cudaHostRegister, " + std::to_string(t) + " threads, a piece each", reg[2], moved);
    report("cudaHostUnregister, " + std::to_string(t) + " threads, a piece each", unreg[2], moved);
  }
  if (argc > 2 && std::string(argv[2]) == "transfers") return 0;  // only the figures above

  // Pin both arrays for the length of one call, then the pinned path: 8 chunks over two streams.
  const auto kp = kiln::detail::prepare(params);
  std::fill(out.begin(), out.end(), 0);
  const double reg_ms = median_ms(3, [&] {
    check(cudaHostRegister(in.data(), bytes, cudaHostRegisterDefault), "cudaHostRegister");
    check(cudaHostRegister(out.data(), bytes, cudaHostRegisterDefault), "cudaHostRegister");
    const std::size_t part = (n + 7) / 8;
    for (std::size_t b = 0; b < n; b += part) {
      const std::size_t c = std::min(part, n - b);
      cudaStream_t s = (b / part) % 2 ? s2 : s1;
      check(cudaMemcpyAsync(dev_a + b, in.data() + b, c * 8, cudaMemcpyHostToDevice, s), "H2D");
      check(kiln::detail::launch_logistic(dev_a + b, dev_b + b, c, kp, prop.multiProcessorCount, s), "kernel");
      check(cudaMemcpyAsync(out.data() + b, dev_b + b, c * 8, cudaMemcpyDeviceToHost, s), "D2H");
    }
    check(cudaStreamSynchronize(s1), "sync");
    check(cudaStreamSynchronize(s2), "sync");
    check(cudaHostUnregister(in.data()), "cudaHostUnregister");
    check(cudaHostUnregister(out.data()), "cudaHostUnregister");
  });
  report(std::string("register both arrays, run pinned, unregister") + (out == expect ? "" : " MISMATCH"), reg_ms, bytes);

  // ---- per-thread pageable pipelines --------------------------------------------------------------
  std::vector<pipeline_shape> shapes;
  for (std::size_t chunk : {std::size_t{1} << 15, std::size_t{1} << 17, std::size_t{1} << 19})
    for (int slots : {2, 3}) shapes.push_back({hw, chunk, slots, false, true});
  for (std::size_t chunk : {std::size_t{1} << 15, std::size_t{1} << 16, std::size_t{1} << 17})
    for (int slots : {2, 3})
      for (bool graph : {false, true}) {
        pipeline_shape sh{hw, chunk, slots, false, true};
        sh.slot_streams = true;
        sh.graph = graph;
        shapes.push_back(sh);
      }
  for (int slots : {2, 3}) {
    pipeline_shape sh{hw, std::size_t{1} << 17, slots, false, true};
    sh.zero_copy = true;
    shapes.push_back(sh);
  }
  for (std::size_t chunk : {std::size_t{1} << 15, std::size_t{1} << 17})
    for (int slots : {2, 3}) shapes.push_back({hw, chunk, slots, false, true, true});
  for (const auto& sh : shapes) {
    std::vector<lane> lanes(sh.threads);
    for (auto& l : lanes) {
      check(cudaStreamCreateWithFlags(&l.stream, cudaStreamNonBlocking), "cudaStreamCreate");
      for (int k = 0; k < sh.slots; ++k) {
        cudaStream_t ss;
        check(cudaStreamCreateWithFlags(&ss, cudaStreamNonBlocking), "cudaStreamCreate");
        l.slot_streams.push_back(ss);
        void *a, *b, *c, *d;
        check(cudaHostAlloc(&a, sh.chunk * 8, sh.wc_in ? cudaHostAllocWriteCombined : cudaHostAllocDefault),
              "cudaHostAlloc");
        check(cudaHostAlloc(&b, sh.chunk * 8, cudaHostAllocDefault), "cudaHostAlloc");
        check(cudaMalloc(&c, sh.chunk * 8), "cudaMalloc");
        check(cudaMalloc(&d, sh.chunk * 8), "cudaMalloc");
        l.hin.push_back(static_cast<i64*>(a));
        l.hout.push_back(static_cast<i64*>(b));
        l.din.push_back(static_cast<i64*>(c));
        l.dout.push_back(static_cast<i64*>(d));
        cudaEvent_t e;
        check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
        l.done.push_back(e);
        if (sh.graph) {
          // Captured once: the same four commands a full chunk enqueues, replayed by one launch.
          cudaGraph_t g;
          check(cudaStreamBeginCapture(ss, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
          check(cudaMemcpyAsync(c, a, sh.chunk * 8, cudaMemcpyHostToDevice, ss), "H2D (capture)");
          check(kiln::detail::launch_logistic(static_cast<i64*>(c), static_cast<i64*>(d), sh.chunk, kp,
                                              prop.multiProcessorCount, ss), "kernel (capture)");
          check(cudaMemcpyAsync(b, d, sh.chunk * 8, cudaMemcpyDeviceToHost, ss), "D2H (capture)");
          // External: recorded by the graph on every launch (a plain record in a capture only
          // orders the captured work).
          check(cudaEventRecordWithFlags(e, ss, cudaEventRecordExternal), "cudaEventRecord (capture)");
          check(cudaStreamEndCapture(ss, &g), "cudaStreamEndCapture");
          cudaGraphExec_t x;
          check(cudaGraphInstantiate(&x, g, 0), "cudaGraphInstantiate");
          check(cudaGraphDestroy(g), "cudaGraphDestroy");
          l.graphs.push_back(x);
        }
      }
    }
    std::fill(out.begin(), out.end(), 0);
    std::size_t cpu_chunks = 0;
    const double ms = median_ms(runs, [&] {
      if (sh.assist)
        run_assisted(sh, lanes, in.data(), out.data(), n, kp, prop.multiProcessorCount, cpu_chunks);
      else
        run_pipeline(sh, lanes, in.data(), out.data(), n, kp, prop.multiProcessorCount);
    });
    const bool ok = out == expect;
    char name[160];
    if (sh.assist)
      std::snprintf(name, sizeof name, "GPU+CPU %2d threads, chunk %4zu KiB, %d slots, %zu/%zu on CPU%s", sh.threads,
                    sh.chunk * 8 >> 10, sh.slots, cpu_chunks, (n + sh.chunk - 1) / sh.chunk, ok ? "" : " MISMATCH");
    else
      std::snprintf(name, sizeof name, "%s %2d threads, chunk %4zu KiB, %d slots, in %s, out %s%s",
                    sh.zero_copy ? "zero-copy" : sh.graph ? "graphs" : sh.slot_streams ? "slot-streams" : "pipeline",
                    sh.threads, sh.chunk * 8 >> 10, sh.slots,
                    sh.wc_in ? "wc" : sh.stream_in ? "nt" : "mc", sh.stream_out ? "nt" : "mc", ok ? "" : " MISMATCH");
    report(name, ms, bytes);
    if (!sh.assist)
      std::printf("    per thread: copy in %.3f, submit %.3f, wait %.3f, copy out %.3f ms\n",
                  g_phases.copy_in / 1e6 / sh.threads, g_phases.submit / 1e6 / sh.threads,
                  g_phases.wait / 1e6 / sh.threads, g_phases.copy_out / 1e6 / sh.threads);
    for (auto& l : lanes) {
      for (int k = 0; k < sh.slots; ++k) {
        cudaFreeHost(l.hin[k]);
        cudaFreeHost(l.hout[k]);
        cudaFree(l.din[k]);
        cudaFree(l.dout[k]);
        cudaEventDestroy(l.done[k]);
        cudaStreamDestroy(l.slot_streams[k]);
        if (sh.graph) cudaGraphExecDestroy(l.graphs[k]);
      }
      cudaStreamDestroy(l.stream);
    }
  }

  // ---- the library as it is -------------------------------------------------------------------------
  kiln::run_options cuda_opts;
  cuda_opts.backend = "cuda";
  for (bool share : {true, false}) {
    cuda_opts.host_share = share;
    std::fill(out.begin(), out.end(), 0);
    const double lib_ms = median_ms(runs, [&] { kiln::logistic_map(in, out, params, cuda_opts).value_or_throw(); });
    report(std::string("kiln::logistic_map cuda, pageable") + (share ? ", host sharing" : ", GPU only") +
               (out == expect ? "" : " MISMATCH"),
           lib_ms, bytes);
  }
  return 0;
}
