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

// What the kernel reads per element: the precomputed values of kernel_params, passed by value
// so every thread finds them in the constant parameter bank.
struct cuda_map_params {
  double p;
  double pinv;
  double mu_res;
  double two32;
  long long iterations;
  int negative;
  int mont;
  kiln_u32 mont_p, mont_pneg, mont_r2, mont_mu, mont_mu_r1;
  int square;
  kiln_u32 mont_square_e2;
  double square_h, square_e, square_muinv, square_c;
};

// The kernels' parameters: the square form and the Montgomery lanes where use_square and
// use_int_lanes say they pay.
inline cuda_map_params to_cuda_params(const kernel_params& kp) {
  const int square = use_square(kp) ? 1 : 0;
  const int mont = use_int_lanes(kp) ? 1 : 0;
  return cuda_map_params{kp.p_d,      kp.pinv,          kp.mu_res,          kp.two32,       static_cast<long long>(kp.iterations),
                         kp.negative, mont,             kp.mont_p,          kp.mont_pneg,   kp.mont_r2,
                         kp.mont_mu,  kp.mont_mu_r1,    square,             kp.mont_square_e2,
                         kp.square_h, kp.square_e,      kp.square_muinv,    kp.square_c};
}

// 256 threads: a multiple of the warp size that lets 8 blocks share an SM on every target.
inline constexpr int logistic_block_threads = 256;

// Steps L independent centred residues `iterations` times and leaves each in [0, p). One
// element's steps form a chain of dependent operations; interleaving several elements' chains
// keeps a pipe busy while loads are in flight, where one element per thread leaves it waiting on
// latency. Where modmath.h's Montgomery step is exact (prm.mont), the last M lanes take it in
// 32-bit integers beside the first L - M in doubles (the fused path), so the integer pipe works
// beside the FP64 pipe; with the fused path out of reach every lane takes it (four multiply-adds
// against the small path's eight operations). In the square form (prm.square) the doubles take
// its 4-operation step and the integer lanes, where prm.mont, its Montgomery step. Every lane's
// result is the exact residue either way.
template <int L, int M = L / 2>
__device__ __forceinline__ void logistic_steps(double (&s)[L], const cuda_map_params& prm) {
  static_assert(M >= 0 && M <= L, "M of the L lanes take the integer step");
  const double mu = kiln_centre(prm.mu_res, prm.p);
  const double p = prm.p, pinv = prm.pinv;
  const long long iterations = prm.iterations;
  const int path = kiln_path(p, mu);
  if (prm.square) {
    // The square form: the first L - M lanes in doubles, the last M in its Montgomery step where
    // prm.mont, else every lane in doubles.
    const double e = prm.square_e;
    const kiln_u32 pi = prm.mont_p, pneg = prm.mont_pneg, e2 = prm.mont_square_e2;
    const int first_int = prm.mont ? L - M : L;
    kiln_u32 x[L];
#pragma unroll
    for (int j = 0; j < L; ++j) {
      s[j] = kiln_square_in(s[j], mu, prm.square_h, p, pinv);
      x[j] = j >= first_int ? kiln_mont_from(s[j], p, prm.mont_r2, pneg, pi) : 0u;
    }
    if (prm.mont) {
      for (long long i = 0; i < iterations; ++i) {
#pragma unroll
        for (int j = 0; j < L - M; ++j) s[j] = kiln_square_step(s[j], e, p, pinv);
#pragma unroll
        for (int j = L - M; j < L; ++j) x[j] = kiln_mont_square_step(x[j], e2, pneg, pi);
      }
    } else {
      for (long long i = 0; i < iterations; ++i)
#pragma unroll
        for (int j = 0; j < L; ++j) s[j] = kiln_square_step(s[j], e, p, pinv);
    }
#pragma unroll
    for (int j = 0; j < L; ++j) {
      const double v = j >= first_int ? kiln_centre(kiln_mont_to(x[j], pneg, pi), p) : s[j];
      s[j] = kiln_normalize(kiln_square_out(v, prm.square_muinv, prm.square_c, p, pinv), p);
    }
    return;
  }
  if (prm.mont) {
    const kiln_u32 pi = prm.mont_p, pneg = prm.mont_pneg, mu32 = prm.mont_mu, mu_r1 = prm.mont_mu_r1;
    const int first_int = path == KILN_PATH_FUSED ? L - M : 0;
    kiln_u32 x[L];
#pragma unroll
    for (int j = 0; j < L; ++j) x[j] = j >= first_int ? kiln_mont_from(s[j], p, prm.mont_r2, pneg, pi) : 0u;
    if (first_int > 0) {
      for (long long i = 0; i < iterations; ++i) {
#pragma unroll
        for (int j = 0; j < L - M; ++j) s[j] = kiln_step_fused(s[j], mu, p, pinv);
#pragma unroll
        for (int j = L - M; j < L; ++j) x[j] = kiln_mont_step(x[j], mu32, mu_r1, pneg, pi);
      }
    } else {
      for (long long i = 0; i < iterations; ++i)
#pragma unroll
        for (int j = 0; j < L; ++j) x[j] = kiln_mont_step(x[j], mu32, mu_r1, pneg, pi);
    }
#pragma unroll
    for (int j = 0; j < L; ++j) s[j] = j >= first_int ? kiln_mont_to(x[j], pneg, pi) : kiln_normalize(s[j], p);
    return;
  }
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
#pragma unroll
  for (int j = 0; j < L; ++j) s[j] = kiln_normalize(s[j], p);
}

// Chunks that crossed the bus (distinct buffers), two elements a thread one grid stride apart, so
// a warp's loads stay contiguous, stepped together by logistic_steps. In and Out are int64_t or,
// for chunks that crossed the bus narrowed (core/lanes.hpp, narrow_transfers), int32_t.
template <class In, class Out>
__global__ void __launch_bounds__(logistic_block_threads)
    logistic_kernel(const In* __restrict__ in, Out* __restrict__ out, std::size_t n, cuda_map_params prm) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += 2 * stride) {
    const std::size_t i2 = i + stride;
    double s[2] = {kiln_residue(static_cast<std::int64_t>(in[i]), prm.p, prm.pinv, prm.two32),
                   i2 < n ? kiln_residue(static_cast<std::int64_t>(in[i2]), prm.p, prm.pinv, prm.two32) : 0.0};
    logistic_steps<2>(s, prm);
    out[i] = static_cast<Out>(kiln_signed_result(s[0], prm.p, prm.negative));
    if (i2 < n) out[i2] = static_cast<Out>(kiln_signed_result(s[1], prm.p, prm.negative));
  }
}

// One element a thread over one buffer, in place (without __restrict__: input and output are the
// same memory), through kiln_logistic itself: the unaligned case's kernel, and kiln_kernel_limits'
// reference for the other shapes' results.
__global__ void __launch_bounds__(logistic_block_threads)
    logistic_kernel_inplace(std::int64_t* data, std::size_t n, cuda_map_params prm) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    data[i] = kiln_logistic(data[i], prm.iterations, prm.p, prm.pinv, prm.mu_res, prm.two32, prm.negative);
}

// The map over int64 buffers that are 16-byte aligned (in may equal out), in pairs: each thread
// loads V pairs with 16-byte loads (V strides of the grid apart, so a warp's loads stay
// contiguous), steps the 2V residues together and stores the pairs. An odd last element is the
// first thread's. M of the 2V lanes take the integer step where prm.mont (logistic_steps).
// Results are kiln_logistic's exactly (every path is exact).
template <int V, int M = V>
__global__ void __launch_bounds__(logistic_block_threads)
    logistic_kernel_pairs(const std::int64_t* in, std::int64_t* out, std::size_t n, cuda_map_params prm) {
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
    // Lane order x of every pair, then y of every pair: with the Montgomery step on the last M
    // lanes, M = V puts one element of each pair on each pipe.
    double s[2 * V];
#pragma unroll
    for (int u = 0; u < V; ++u) {
      s[u] = kiln_residue(v[u].x, prm.p, prm.pinv, prm.two32);
      s[V + u] = kiln_residue(v[u].y, prm.p, prm.pinv, prm.two32);
    }
    logistic_steps<2 * V, M>(s, prm);
#pragma unroll
    for (int u = 0; u < V; ++u) {
      const std::size_t k = base + u * stride;
      if (k < pairs)
        out2[k] = make_longlong2(kiln_signed_result(s[u], prm.p, prm.negative),
                                 kiln_signed_result(s[V + u], prm.p, prm.negative));
    }
  }
}

// Pairs per thread and loop step of the buffers' kernel, by iteration count (kiln_kernel_limits
// and kiln_lane_mix time every shape; docs/BENCHMARKS.md has the figures): few iterations leave
// the run bound by memory, where two pairs' loads in flight per thread in doubles come closest
// to a copy's pace; many leave it bound by the arithmetic, where three pairs with integer lanes
// beside the doubles (use_int_lanes) was the fastest mix measured, and one pair where the lanes
// are all doubles.
inline int logistic_pairs_per_thread(const kernel_params& kp) {
  if (kp.iterations < int_lanes_min_iterations) return 2;
  return use_int_lanes(kp) ? 3 : 1;
}

// Of the three-pair kernel's six lanes, how many take the integer step: two in the square form,
// whose Montgomery step's two wide multiplies share the FP64 pipe's time (kiln_pipe_mix: 8.36 and
// 8.40 ms at 1000 iterations with two, 8.43 and 8.87 with three, 8.68 and 8.70 in doubles alone,
// on two H200 leases, DQ and DR), three beside the fused path (CW).
inline int logistic_three_pair_int_lanes(const kernel_params& kp) { return use_square(kp) ? 2 : 3; }

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

// Blocks of logistic_kernel_pairs<V, M> that the device holds at once on all its SMs (one wave),
// or 0 where the occupancy query fails; queried once per process (a process's GPUs share one
// architecture in practice, and a wrong guess costs time, never results).
template <int V, int M = V>
inline unsigned logistic_pairs_wave_blocks(int sm_count) {
  static const int per_sm = [] {
    int b = 0;
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, logistic_kernel_pairs<V, M>, logistic_block_threads, 0) ==
                   cudaSuccess
               ? b
               : 0;
  }();
  return static_cast<unsigned>(std::max(per_sm, 0)) * static_cast<unsigned>(std::max(sm_count, 1));
}

// Enqueues logistic_kernel_pairs<V, M> over n elements. The three-pair kernel (runs bound by the
// arithmetic: logistic_pairs_per_thread takes it only at the integer lanes' iteration counts)
// takes one wave of its own resident blocks: with more blocks than the device holds (6 a SM on
// sm_90), blocks run in waves whose last is part full while each block takes as long, and a
// thread's share of the grid-stride loop differs from another's by a whole sweep of 3 pairs;
// within one wave the sweeps are many and differ by at most one (2% faster at 100 and 1000
// iterations on the H200). The one- and two-pair kernels hold 8 blocks a SM and were slower in
// one wave (docs/BENCHMARKS.md, DH), as are runs bound by memory, whose blocks in flight hide the
// loads' latency: they keep the covering grid.
template <int V, int M = V>
inline void launch_pairs(const std::int64_t* in, std::int64_t* out, std::size_t n, const cuda_map_params& prm,
                         int sm_count, cudaStream_t stream) {
  unsigned blocks = logistic_pairs_grid_blocks(n, sm_count, V);
  if constexpr (V == 3) {
    const unsigned wave = logistic_pairs_wave_blocks<V, M>(sm_count);
    if (wave > 0) blocks = std::min(blocks, wave);
  }
  logistic_kernel_pairs<V, M><<<blocks, logistic_block_threads, 0, stream>>>(in, out, n, prm);
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
  const unsigned blocks = logistic_grid_blocks((n + 1) / 2, sm_count);  // two elements a thread
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
    const int v = logistic_pairs_per_thread(kp);
    if (v == 3 && logistic_three_pair_int_lanes(kp) == 2)
      launch_pairs<3, 2>(in, out, n, prm, sm_count, stream);
    else if (v == 3)
      launch_pairs<3>(in, out, n, prm, sm_count, stream);
    else if (v == 2)
      launch_pairs<2>(in, out, n, prm, sm_count, stream);
    else
      launch_pairs<1>(in, out, n, prm, sm_count, stream);
    return cudaGetLastError();
  }
  if (in != out) return launch_logistic(in, false, out, false, n, kp, sm_count, stream);
  logistic_kernel_inplace<<<logistic_grid_blocks(n, sm_count), logistic_block_threads, 0, stream>>>(
      out, n, to_cuda_params(kp));
  return cudaGetLastError();
}

}  // namespace
}  // namespace kiln::detail
