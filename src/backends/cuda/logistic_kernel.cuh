// The CUDA kernels of the logistic map and their launch helpers, kept apart so they can be tuned alone.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "core/backend.hpp"
#include "core/modmath.h"

namespace kiln::detail {
// Internal linkage: every .cu file that includes this (the backend, the limits tool) gets its own
// copy of the kernels instead of clashing definitions at link time.
namespace {

// What the kernel reads per element: the precomputed doubles of kernel_params, passed by value
// so every thread finds them in the constant parameter bank.
struct cuda_map_params {
  double p;
  double pinv;
  double mu_res;
  double two32;
  long long iterations;
  int negative;
};

inline cuda_map_params to_cuda_params(const kernel_params& kp) {
  return cuda_map_params{kp.p_d, kp.pinv, kp.mu_res, kp.two32, static_cast<long long>(kp.iterations), kp.negative};
}

// 256 threads: a multiple of the warp size that lets 8 blocks share an SM on every target.
inline constexpr int logistic_block_threads = 256;

// Grid-stride loop, so one launch shape serves any n; the arithmetic is modmath.h's, shared with
// every other backend so the results are bit-identical. In and Out are int64_t or, for chunks
// that cross the bus narrowed (core/lanes.hpp, narrow_transfers), int32_t.
template <class In, class Out>
__global__ void __launch_bounds__(logistic_block_threads)
    logistic_kernel(const In* __restrict__ in, Out* __restrict__ out, std::size_t n, cuda_map_params prm) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = static_cast<Out>(kiln_logistic(static_cast<std::int64_t>(in[i]), prm.iterations, prm.p, prm.pinv,
                                            prm.mu_res, prm.two32, prm.negative));
}

// The same loop over one buffer: without __restrict__, because input and output are the same memory.
__global__ void __launch_bounds__(logistic_block_threads)
    logistic_kernel_inplace(std::int64_t* data, std::size_t n, cuda_map_params prm) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    data[i] = kiln_logistic(data[i], prm.iterations, prm.p, prm.pinv, prm.mu_res, prm.two32, prm.negative);
}

// Steps L independent residues together. One element's steps form a chain of dependent double
// operations; interleaving several elements' chains lets one thread keep the FP64 pipe busy while
// its loads are in flight, where one element per thread leaves the pipe waiting on latency.
template <int L>
__device__ __forceinline__ void logistic_steps(double (&s)[L], long long iterations, double mu, double p,
                                               double pinv, int path) {
  if (path == KILN_PATH_FUSED) {
    for (long long i = 0; i < iterations; ++i)
#pragma unroll
      for (int j = 0; j < L; ++j) s[j] = kiln_step_fused(s[j], mu, p, pinv);
  } else if (path == KILN_PATH_SMALL) {
    for (long long i = 0; i < iterations; ++i)
#pragma unroll
      for (int j = 0; j < L; ++j) s[j] = kiln_step_small(s[j], mu, p, pinv);
  } else {
    for (long long i = 0; i < iterations; ++i)
#pragma unroll
      for (int j = 0; j < L; ++j) s[j] = kiln_step_split(s[j], mu, p, pinv);
  }
}

// The map over int64 buffers that are 16-byte aligned (in may equal out), in pairs: each thread
// loads V pairs with 16-byte loads (V strides of the grid apart, so a warp's loads stay
// contiguous), steps the 2V residues together and stores the pairs. An odd last element is the
// first thread's. The arithmetic is kiln_logistic's, step for step, so results are bit-identical.
template <int V>
__global__ void __launch_bounds__(logistic_block_threads)
    logistic_kernel_pairs(const std::int64_t* in, std::int64_t* out, std::size_t n, cuda_map_params prm) {
  const double mu = kiln_centre(prm.mu_res, prm.p);
  const int path = kiln_path(prm.p, mu);
  const std::size_t pairs = n / 2;
  const auto* in2 = reinterpret_cast<const longlong2*>(in);
  auto* out2 = reinterpret_cast<longlong2*>(out);
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  const std::size_t first = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (first == 0 && (n & 1) != 0)
    out[n - 1] = kiln_logistic(in[n - 1], prm.iterations, prm.p, prm.pinv, prm.mu_res, prm.two32, prm.negative);
  for (std::size_t base = first; base < pairs; base += stride * V) {
    longlong2 v[V];
#pragma unroll
    for (int u = 0; u < V; ++u) {
      const std::size_t k = base + u * stride;
      v[u] = k < pairs ? in2[k] : make_longlong2(0, 0);
    }
    double s[2 * V];
#pragma unroll
    for (int u = 0; u < V; ++u) {
      s[2 * u] = kiln_residue(v[u].x, prm.p, prm.pinv, prm.two32);
      s[2 * u + 1] = kiln_residue(v[u].y, prm.p, prm.pinv, prm.two32);
    }
    logistic_steps<2 * V>(s, prm.iterations, mu, prm.p, prm.pinv, path);
#pragma unroll
    for (int u = 0; u < V; ++u) {
      const std::size_t k = base + u * stride;
      if (k < pairs)
        out2[k] = make_longlong2(kiln_signed_result(kiln_normalize(s[2 * u], prm.p), prm.p, prm.negative),
                                 kiln_signed_result(kiln_normalize(s[2 * u + 1], prm.p), prm.p, prm.negative));
    }
  }
}

// Pairs per thread and loop step of the buffers' kernel, by iteration count: few iterations leave
// the run bound by memory, where two pairs' loads in flight per thread come closer to a copy's
// pace; many leave it bound by the FP64 pipe, where one pair keeps it as busy with fewer registers
// in use (kiln_kernel_limits times every shape; docs/BENCHMARKS.md has the figures).
inline constexpr long long logistic_memory_bound_iterations = 16;
inline int logistic_pairs_per_thread(long long iterations) {
  return iterations <= logistic_memory_bound_iterations ? 2 : 1;
}

// Enough blocks to cover n once, capped at 32 per SM (4 waves of 8 resident blocks): beyond that
// the grid-stride loop does the rest with no more launch cost.
inline unsigned logistic_grid_blocks(std::size_t n, int sm_count) {
  const std::size_t per_block = logistic_block_threads;
  const std::size_t cover = (n + per_block - 1) / per_block;
  const std::size_t cap = static_cast<std::size_t>(std::max(sm_count, 1)) * 32;
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min(cover, cap)));
}

// The pairs kernel's grid: enough threads for V pairs each, with the same cap.
inline unsigned logistic_pairs_grid_blocks(std::size_t n, int sm_count, int pairs_per_thread) {
  const std::size_t per_thread = 2 * static_cast<std::size_t>(pairs_per_thread);
  return logistic_grid_blocks((n + per_thread - 1) / per_thread, sm_count);
}

// Enqueues the map over n elements on `stream`, between distinct buffers whose elements are 32
// bits wide where in32 / out32 say so (narrow chunks), else 64. Returns the launch error (a bad
// configuration or missing kernel image), not errors of the running kernel.
inline cudaError_t launch_logistic(const void* in, bool in32, void* out, bool out32, std::size_t n,
                                   const kernel_params& kp, int sm_count, cudaStream_t stream) {
  using i32 = std::int32_t;
  using i64 = std::int64_t;
  if (n == 0) return cudaSuccess;
  const cuda_map_params prm = to_cuda_params(kp);
  const unsigned blocks = logistic_grid_blocks(n, sm_count);
  const int b = logistic_block_threads;
  if (in32 && out32)
    logistic_kernel<<<blocks, b, 0, stream>>>(static_cast<const i32*>(in), static_cast<i32*>(out), n, prm);
  else if (in32)
    logistic_kernel<<<blocks, b, 0, stream>>>(static_cast<const i32*>(in), static_cast<i64*>(out), n, prm);
  else if (out32)
    logistic_kernel<<<blocks, b, 0, stream>>>(static_cast<const i64*>(in), static_cast<i32*>(out), n, prm);
  else
    logistic_kernel<<<blocks, b, 0, stream>>>(static_cast<const i64*>(in), static_cast<i64*>(out), n, prm);
  return cudaGetLastError();
}

// The same over int64 buffers (in == out maps in place): the pairs kernel where both are 16-byte
// aligned (every buffer's start is), else the one-element loops.
inline cudaError_t launch_logistic(const std::int64_t* in, std::int64_t* out, std::size_t n, const kernel_params& kp,
                                   int sm_count, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const bool aligned = reinterpret_cast<std::uintptr_t>(in) % 16 == 0 && reinterpret_cast<std::uintptr_t>(out) % 16 == 0;
  if (aligned) {
    const cuda_map_params prm = to_cuda_params(kp);
    if (logistic_pairs_per_thread(kp.iterations) == 2)
      logistic_kernel_pairs<2><<<logistic_pairs_grid_blocks(n, sm_count, 2), logistic_block_threads, 0, stream>>>(
          in, out, n, prm);
    else
      logistic_kernel_pairs<1><<<logistic_pairs_grid_blocks(n, sm_count, 1), logistic_block_threads, 0, stream>>>(
          in, out, n, prm);
    return cudaGetLastError();
  }
  if (in != out) return launch_logistic(in, false, out, false, n, kp, sm_count, stream);
  logistic_kernel_inplace<<<logistic_grid_blocks(n, sm_count), logistic_block_threads, 0, stream>>>(
      out, n, to_cuda_params(kp));
  return cudaGetLastError();
}

}  // namespace
}  // namespace kiln::detail
