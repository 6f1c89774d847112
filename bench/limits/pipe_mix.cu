// kiln_pipe_mix: whether a GPU's FP64, integer and FP32 pipes overlap, and the square form's split of lanes between doubles and integers.
//
// Part 1 times, by CUDA events, kernels whose threads run 8 independent chains of one kind of
// instruction (FP64 fused multiply-add, 32-bit integer multiply-add, 32x32->64 wide multiply-add,
// FP32 fused multiply-add, integer add/xor) alone and two kinds together in one loop: where two
// pipes are separate, the pair takes about as long as the slower alone; where they share issue
// or a pipe, about the sum. Part 2 times the built-in map's pairs kernel in the square form at
// n = 2^25 in place, with V pairs a thread and M of its 2V lanes in integers, for many (V, M),
// every output checked against the doubles-only kernel's. A measuring tool for
// docs/BENCHMARKS.md (the split the backend's kernel uses), not part of the library.
// Usage: kiln_pipe_mix [n] (default 2^25).
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

// A named namespace: nvcc's generated stubs cannot tell kernels of two anonymous namespaces apart.
namespace kiln_pipe_mix {

using namespace kiln_limits;

// Which chains a thread runs: bit 0 FP64 fma, 1 IMAD, 2 IMAD.WIDE, 3 FP32 fma, 4 integer add/xor.
enum : int { k_dfma = 1, k_imad = 2, k_wide = 4, k_ffma = 8, k_alu = 16 };

template <int Kinds>
__global__ void chains(double* out, long long rounds, double a, double b, unsigned ia, unsigned ib) {
  double d[8];
  unsigned u[8];
  unsigned long long w[8];
  float f[8];
  unsigned x[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    d[j] = threadIdx.x + j;
    u[j] = threadIdx.x * 7u + j;
    w[j] = threadIdx.x * 13u + j;
    f[j] = static_cast<float>(threadIdx.x + j);
    x[j] = threadIdx.x * 3u + j;
  }
  const float fa = static_cast<float>(a), fb = static_cast<float>(b);
  const unsigned long long wb = ib;
  for (long long r = 0; r < rounds; ++r) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (Kinds & k_dfma) d[j] = fma(d[j], a, b);
      if (Kinds & k_imad) u[j] = u[j] * ia + ib;
      if (Kinds & k_wide) w[j] = static_cast<unsigned long long>(static_cast<unsigned>(w[j] >> 16)) * ia + wb;
      if (Kinds & k_ffma) f[j] = fmaf(f[j], fa, fb);
      if (Kinds & k_alu) x[j] = (x[j] ^ ia) + ib;
    }
  }
  double s = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) s += d[j] + u[j] + static_cast<double>(w[j]) + f[j] + x[j];
  out[static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x] = s;
}

template <int Kinds>
double time_chains(int runs, cudaStream_t stream, unsigned blocks, double* sink, long long rounds) {
  return event_ms(runs, stream,
                  [&] { chains<Kinds><<<blocks, 256, 0, stream>>>(sink, rounds, 0.999, 1e-3, 2654435761u, 12345u); });
}

// The square form's pairs kernel with V pairs and M integer lanes a thread, in place.
template <int V, int M>
void launch_shape(i64* e, std::size_t n, const kiln::detail::cuda_map_params& prm, int sm,
                  bool one_wave, cudaStream_t stream) {
  using namespace kiln::detail;
  unsigned blocks = logistic_pairs_grid_blocks(n, sm, V);
  if (one_wave) {
    int per_sm = 0;
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, logistic_kernel_pairs<V, M>, logistic_block_threads, 0),
          "occupancy");
    blocks = std::min(blocks, static_cast<unsigned>(per_sm * sm));
  }
  logistic_kernel_pairs<V, M><<<blocks, logistic_block_threads, 0, stream>>>(e, e, n, prm);
}

}  // namespace kiln_pipe_mix

int main(int argc, char** argv) {
  using namespace kiln_pipe_mix;
  using namespace kiln::detail;
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (std::size_t{1} << 25);
  int sm = 0;
  check(cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, 0), "cudaDeviceGetAttribute");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("device %s, %d SMs\n", prop.name, sm);
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "cudaStreamCreate");
  const int runs = 7;

  // Part 1: the pipes alone and in pairs.
  const unsigned blocks = static_cast<unsigned>(sm) * 8;
  double* sink = nullptr;
  check(cudaMalloc(&sink, static_cast<std::size_t>(blocks) * 256 * sizeof(double)), "cudaMalloc");
  const long long rounds = 4096;
  const double per = static_cast<double>(blocks) * 256 * 8 * rounds;  // instructions of one kind
  struct row {
    const char* name;
    double ms;
  };
  const double t_dfma = time_chains<k_dfma>(runs, stream, blocks, sink, rounds);
  const double t_imad = time_chains<k_imad>(runs, stream, blocks, sink, rounds);
  const double t_wide = time_chains<k_wide>(runs, stream, blocks, sink, rounds);
  const double t_ffma = time_chains<k_ffma>(runs, stream, blocks, sink, rounds);
  const double t_alu = time_chains<k_alu>(runs, stream, blocks, sink, rounds);
  for (const row& r : {row{"FP64 fma", t_dfma}, row{"32-bit integer multiply-add", t_imad},
                       row{"32x32->64 multiply-add (a shift before)", t_wide}, row{"FP32 fma", t_ffma},
                       row{"integer xor + add", t_alu}})
    std::printf("%-44s alone      %8.3f ms  %6.2f T chain steps/s\n", r.name, r.ms, per / (r.ms * 1e-3) / 1e12);
  auto pair = [&](const char* name, double together, double a, double b) {
    std::printf("%-44s together   %8.3f ms  %5.2fx the slower alone, %5.2fx the sum\n", name, together,
                together / std::max(a, b), together / (a + b));
  };
  pair("FP64 fma + integer multiply-add", time_chains<k_dfma | k_imad>(runs, stream, blocks, sink, rounds), t_dfma, t_imad);
  pair("FP64 fma + wide multiply-add", time_chains<k_dfma | k_wide>(runs, stream, blocks, sink, rounds), t_dfma, t_wide);
  pair("FP64 fma + FP32 fma", time_chains<k_dfma | k_ffma>(runs, stream, blocks, sink, rounds), t_dfma, t_ffma);
  pair("FP64 fma + integer xor + add", time_chains<k_dfma | k_alu>(runs, stream, blocks, sink, rounds), t_dfma, t_alu);
  pair("integer multiply-add + FP32 fma", time_chains<k_imad | k_ffma>(runs, stream, blocks, sink, rounds), t_imad, t_ffma);
  cudaFree(sink);

  // Part 2: the square form's split at k = 100 and 1000.
  std::vector<i64> host(n), want(n), got(n);
  for (std::size_t i = 0; i < n; ++i) host[i] = static_cast<i64>(i + 1);
  i64 *d = nullptr, *e = nullptr;
  check(cudaMalloc(&d, n * sizeof(i64)), "cudaMalloc");
  check(cudaMalloc(&e, n * sizeof(i64)), "cudaMalloc");
  check(cudaMemcpy(d, host.data(), n * sizeof(i64), cudaMemcpyHostToDevice), "upload");
  struct shape {
    int v, m;
    bool wave;
    void (*launch)(i64*, std::size_t, const cuda_map_params&, int, bool, cudaStream_t);
  };
  const std::vector<shape> shapes = {
      {1, 0, false, launch_shape<1, 0>}, {1, 1, false, launch_shape<1, 1>}, {1, 2, false, launch_shape<1, 2>},
      {2, 2, false, launch_shape<2, 2>}, {2, 3, false, launch_shape<2, 3>}, {2, 4, false, launch_shape<2, 4>},
      {3, 2, true, launch_shape<3, 2>},  {3, 3, true, launch_shape<3, 3>},  {3, 4, true, launch_shape<3, 4>},
      {3, 5, true, launch_shape<3, 5>},  {3, 6, true, launch_shape<3, 6>},  {4, 4, false, launch_shape<4, 4>},
      {4, 5, false, launch_shape<4, 5>}, {4, 6, false, launch_shape<4, 6>}, {2, 3, true, launch_shape<2, 3>},
      {4, 5, true, launch_shape<4, 5>}};
  kernel_params kp = prepare(kiln::map_params{6'700'417, 22, 1});
  for (long long k : {100LL, 1000LL}) {
    kp.iterations = k;
    cuda_map_params prm = to_cuda_params(kp);
    prm.square = kp.square;
    prm.mont = kp.square;
    bool first = true;
    for (const auto& s : shapes) {
      cuda_map_params q = prm;
      if (s.m == 0) q.mont = 0;
      check(cudaMemcpy(e, d, n * sizeof(i64), cudaMemcpyDeviceToDevice), "reset");
      s.launch(e, n, q, sm, s.wave, stream);
      check(cudaStreamSynchronize(stream), "map");
      check(cudaMemcpy(first ? want.data() : got.data(), e, n * sizeof(i64), cudaMemcpyDeviceToHost), "download");
      if (!first && got != want) {
        std::fprintf(stderr, "k = %lld, V = %d, M = %d: results differ from the doubles-only kernel\n", k, s.v, s.m);
        return 1;
      }
      first = false;
      const double ms = event_ms(runs, stream, [&] { s.launch(e, n, q, sm, s.wave, stream); });
      std::printf("square k = %-5lld V = %d pairs, %d of %d lanes integers%-10s %8.3f ms\n", k, s.v, s.m, 2 * s.v,
                  s.wave ? ", one wave" : "", ms);
      std::fflush(stdout);
    }
  }
  cudaFree(d);
  cudaFree(e);
  cudaStreamDestroy(stream);
  return 0;
}
