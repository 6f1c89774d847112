// kiln_kernel_limits: what the built-in map's kernel alone is bound by on one GPU, and its shapes timed against those bounds.
//
// Prints one line per figure, each the median of several runs timed by CUDA events on one stream:
// the device's copy of the buffer (cudaMemcpy and an in-place read-modify-write kernel with
// 16-byte accesses: the memory floor of a resident run), the FP64 pipe's rate (independent fused
// multiply-adds), the integer pipe's (independent 32-bit multiply-adds), and the built-in map in
// place at several iteration counts in each of its kernel shapes (one element per thread in
// doubles, pairs with V loads in flight with and without modmath.h's Montgomery lanes, on the
// fused path and in the square form, and the shape the backend picks), every shape's output
// checked against the one-element kernel's. The floor printed beside each map figure is the
// largest of the memory floor and each pipe's work at its measured rate: five FP64 operations per
// fused step (four in the square form), four integer multiply-adds per Montgomery step (three in
// the square form), half the elements on each pipe where the lanes mix (a lower bound for the
// backend's square-form shape, which steps a third in integers). A measuring tool for
// docs/BENCHMARKS.md, not part of the library.
// Usage: kiln_kernel_limits [n] (default 2^25).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/cuda/logistic_kernel.cuh"
#include "core/backend.hpp"
#include "cuda_limits_common.cuh"

// A named namespace: nvcc's generated stubs cannot tell kernels of two anonymous namespaces apart
// (logistic_kernel.cuh's is nested in kiln::detail).
namespace kiln_kernel_limits {

using namespace kiln_limits;

// The memory floor of an in-place map: every pair read once and written once.
__global__ void add_one_pairs(longlong2* data, std::size_t pairs) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < pairs; i += stride) {
    longlong2 v = data[i];
    data[i] = make_longlong2(v.x + 1, v.y + 1);
  }
}

// The FP64 pipe's rate: 8 independent chains of `rounds` fused multiply-adds per thread.
__global__ void fma_chains(double* out, long long rounds, double a, double b) {
  double c[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) c[j] = threadIdx.x + j;
  for (long long r = 0; r < rounds; ++r)
#pragma unroll
    for (int j = 0; j < 8; ++j) c[j] = fma(c[j], a, b);
  double s = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) s += c[j];
  out[static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x] = s;
}

// The integer pipe's rate: 8 independent chains of `rounds` 32-bit multiply-adds per thread.
__global__ void imad_chains(unsigned* out, long long rounds, unsigned a, unsigned b) {
  unsigned c[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) c[j] = threadIdx.x + j;
  for (long long r = 0; r < rounds; ++r)
#pragma unroll
    for (int j = 0; j < 8; ++j) c[j] = c[j] * a + b;
  unsigned s = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) s ^= c[j];
  out[static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x] = s;
}

}  // namespace kiln_kernel_limits

int main(int argc, char** argv) {
  using namespace kiln_kernel_limits;
  using namespace kiln::detail;
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (std::size_t{1} << 25);
  const double bytes = static_cast<double>(n) * sizeof(i64);
  int sm = 0;
  check(cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, 0), "cudaDeviceGetAttribute");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("device %s, %d SMs, n = %zu (%.0f MiB)\n", prop.name, sm, n, bytes / (1 << 20));
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "cudaStreamCreate");

  std::vector<i64> host(n);
  for (std::size_t i = 0; i < n; ++i) host[i] = static_cast<i64>(i + 1);
  i64 *d = nullptr, *e = nullptr, *f = nullptr;
  check(cudaMalloc(&d, n * sizeof(i64)), "cudaMalloc");
  check(cudaMalloc(&e, n * sizeof(i64)), "cudaMalloc");
  check(cudaMalloc(&f, n * sizeof(i64)), "cudaMalloc");
  check(cudaMemcpy(d, host.data(), n * sizeof(i64), cudaMemcpyHostToDevice), "upload");

  const int runs = 9;
  const double copy = event_ms(runs, stream, [&] { cudaMemcpyAsync(e, d, n * sizeof(i64), cudaMemcpyDeviceToDevice, stream); });
  report("device copy (cudaMemcpy), read + write", copy, 2 * bytes);
  const std::size_t pairs = n / 2;
  const unsigned rmw_blocks = static_cast<unsigned>(std::min<std::size_t>((pairs + 255) / 256, static_cast<std::size_t>(sm) * 32));
  const double rmw = event_ms(runs, stream, [&] { add_one_pairs<<<rmw_blocks, 256, 0, stream>>>(reinterpret_cast<longlong2*>(e), pairs); });
  report("in-place x + 1, 16-byte accesses, read + write", rmw, 2 * bytes);
  const double floor_mem = std::min(copy, rmw);

  double* sink = nullptr;
  const unsigned fma_blocks = static_cast<unsigned>(sm) * 8;
  check(cudaMalloc(&sink, static_cast<std::size_t>(fma_blocks) * 256 * sizeof(double)), "cudaMalloc");
  const long long rounds = 4096;
  const double fma_t = event_ms(runs, stream, [&] { fma_chains<<<fma_blocks, 256, 0, stream>>>(sink, rounds, 0.999, 1e-3); });
  const double fma_ops = static_cast<double>(fma_blocks) * 256 * 8 * rounds;
  const double rate = fma_ops / (fma_t * 1e-3);
  std::printf("%-58s %9.3f ms  %7.2f T FP64 instructions/s\n", "FP64 fused multiply-adds, 8 chains a thread", fma_t, rate / 1e12);
  unsigned* isink = nullptr;
  check(cudaMalloc(&isink, static_cast<std::size_t>(fma_blocks) * 256 * sizeof(unsigned)), "cudaMalloc");
  const double imad_t = event_ms(runs, stream, [&] { imad_chains<<<fma_blocks, 256, 0, stream>>>(isink, rounds, 2654435761u, 12345u); });
  const double int_rate = fma_ops / (imad_t * 1e-3);
  std::printf("%-58s %9.3f ms  %7.2f T integer instructions/s\n", "32-bit integer multiply-adds, 8 chains a thread", imad_t,
              int_rate / 1e12);

  std::printf("pairs kernel's wave (blocks of %d on all %d SMs at once): 1 pair a thread %u, 2 pairs %u, 3 pairs %u\n",
              logistic_block_threads, sm, logistic_pairs_wave_blocks<1>(sm), logistic_pairs_wave_blocks<2>(sm),
              logistic_pairs_wave_blocks<3>(sm));
  const kernel_params kp = prepare(kiln::map_params{6'700'417, 22, 1});
  struct shape {
    std::string name;
    int v;              // 0: one element per thread
    bool mont;            // Montgomery lanes beside the doubles (kernel_params::mont)
    bool wave = false;    // the pairs kernels: one wave of resident blocks (logistic_pairs_wave_blocks)
    bool square = false;  // modmath.h's square form (kernel_params::square) instead of the fused path
  };
  const std::vector<shape> shapes = {{"one element a thread, doubles", 0, false},
                                     {"pairs, 1 load a thread, doubles", 1, false},
                                     {"pairs, 2 loads a thread, doubles", 2, false},
                                     {"pairs, 1 load a thread, mixed", 1, true},
                                     {"pairs, 2 loads a thread, mixed", 2, true},
                                     {"pairs, 3 loads a thread, doubles", 3, false},
                                     {"pairs, 3 loads a thread, mixed", 3, true},
                                     {"pairs, 4 loads a thread, mixed", 4, true},
                                     {"pairs, 1 load a thread, mixed, one wave", 1, true, true},
                                     {"pairs, 2 loads a thread, mixed, one wave", 2, true, true},
                                     {"pairs, 3 loads a thread, mixed, one wave", 3, true, true},
                                     {"square, pairs, 1 load a thread, doubles", 1, false, false, true},
                                     {"square, pairs, 2 loads a thread, doubles", 2, false, false, true},
                                     {"square, pairs, 3 loads a thread, doubles", 3, false, false, true},
                                     {"square, pairs, 1 load a thread, mixed", 1, true, false, true},
                                     {"square, pairs, 2 loads a thread, mixed", 2, true, false, true},
                                     {"square, pairs, 3 loads a thread, mixed", 3, true, false, true},
                                     {"square, pairs, 4 loads a thread, mixed", 4, true, false, true},
                                     {"square, pairs, 1 load a thread, mixed, one wave", 1, true, true, true},
                                     {"square, pairs, 2 loads a thread, mixed, one wave", 2, true, true, true},
                                     {"square, pairs, 3 loads a thread, mixed, one wave", 3, true, true, true},
                                     {"as the backend launches it", -1, true},
                                     {"two elements a thread, buffer to buffer", -2, true}};
  std::vector<i64> want(n), got(n);
  for (long long k : {1LL, 10LL, 100LL, 1000LL}) {
    kernel_params kk = kp;
    kk.iterations = k;
    const double steps = static_cast<double>(n) * static_cast<double>(k);
    for (const auto& s : shapes) {
      // The named shapes set the Montgomery lanes themselves (the backend's rule turns them off
      // at few iterations, see use_int_lanes).
      cuda_map_params prm = to_cuda_params(kk);
      if (s.v > 0) {
        prm.square = s.square ? kk.square : 0;
        prm.mont = s.mont ? (s.square ? kk.square : kk.mont) : 0;
      }
      const bool mixed = s.v > 0 ? prm.mont != 0 : s.v < 0 && prm.mont != 0;  // half the lanes each
      const bool square = prm.square != 0;
      const double floor_fp = (square ? 4.0 : 5.0) * steps * (mixed ? 0.5 : 1.0) / rate * 1e3;
      const double floor_int = mixed ? (square ? 3.0 : 4.0) * steps * 0.5 / int_rate * 1e3 : 0.0;
      const double floor = std::max({floor_mem, floor_fp, floor_int});
      const char* bound = floor == floor_mem ? "memory" : floor == floor_fp ? "FP64" : "integer";
      // The shape's grid: enough blocks to cover the pairs once (capped as the backend caps it), or
      // one wave of resident blocks.
      auto grid = [&](int v, unsigned wave) {
        const unsigned cover = logistic_pairs_grid_blocks(n, sm, v);
        return s.wave && wave > 0 ? std::min(cover, wave) : cover;
      };
      auto launch = [&] {
        if (s.v == -2)  // staged chunks' kernel: e stays the input, f takes the output
          check(launch_logistic(e, false, f, false, n, kk, sm, stream), "launch_logistic");
        else if (s.v < 0)
          check(launch_logistic(e, e, n, kk, sm, stream), "launch_logistic");
        else if (s.v == 0)
          logistic_kernel_inplace<<<logistic_grid_blocks(n, sm), logistic_block_threads, 0, stream>>>(e, n, prm);
        else if (s.v == 1)
          logistic_kernel_pairs<1><<<grid(1, logistic_pairs_wave_blocks<1>(sm)), logistic_block_threads, 0, stream>>>(e, e, n, prm);
        else if (s.v == 2)
          logistic_kernel_pairs<2><<<grid(2, logistic_pairs_wave_blocks<2>(sm)), logistic_block_threads, 0, stream>>>(e, e, n, prm);
        else if (s.v == 3)
          logistic_kernel_pairs<3><<<grid(3, logistic_pairs_wave_blocks<3>(sm)), logistic_block_threads, 0, stream>>>(e, e, n, prm);
        else
          logistic_kernel_pairs<4><<<logistic_pairs_grid_blocks(n, sm, 4), logistic_block_threads, 0, stream>>>(e, e, n, prm);
      };
      // One checked run from the input, then the timed runs (in place, each over the last's output).
      check(cudaMemcpy(e, d, n * sizeof(i64), cudaMemcpyDeviceToDevice), "reset");
      launch();
      check(cudaStreamSynchronize(stream), "map");
      check(cudaMemcpy(s.v == 0 ? want.data() : got.data(), s.v == -2 ? f : e, n * sizeof(i64), cudaMemcpyDeviceToHost),
            "download");
      if (s.v != 0 && got != want) {
        std::fprintf(stderr, "k = %lld, %s: results differ from the one-element kernel\n", k, s.name.c_str());
        return 1;
      }
      const double ms = event_ms(runs, stream, launch);
      std::printf("map k = %-5lld %-40s %9.3f ms  %5.2fx the floor (%.3f ms: %s)\n", k, s.name.c_str(), ms, ms / floor,
                  floor, bound);
      std::fflush(stdout);
    }
  }
  cudaFree(sink);
  cudaFree(isink);
  cudaFree(d);
  cudaFree(e);
  cudaFree(f);
  cudaStreamDestroy(stream);
  return 0;
}
