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

// Enough blocks to cover n once, capped at 32 per SM (4 waves of 8 resident blocks): beyond that
// the grid-stride loop does the rest with no more launch cost.
inline unsigned logistic_grid_blocks(std::size_t n, int sm_count) {
  const std::size_t per_block = logistic_block_threads;
  const std::size_t cover = (n + per_block - 1) / per_block;
  const std::size_t cap = static_cast<std::size_t>(std::max(sm_count, 1)) * 32;
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min(cover, cap)));
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

// The same over int64 buffers; in == out selects the in-place kernel.
inline cudaError_t launch_logistic(const std::int64_t* in, std::int64_t* out, std::size_t n, const kernel_params& kp,
                                   int sm_count, cudaStream_t stream) {
  if (in != out) return launch_logistic(in, false, out, false, n, kp, sm_count, stream);
  if (n == 0) return cudaSuccess;
  logistic_kernel_inplace<<<logistic_grid_blocks(n, sm_count), logistic_block_threads, 0, stream>>>(
      out, n, to_cuda_params(kp));
  return cudaGetLastError();
}

}  // namespace
}  // namespace kiln::detail
