// What the CUDA limits tools share: exiting on a CUDA error, and kernels timed by events.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "limits_common.hpp"

namespace kiln_limits {

// A measuring tool has nothing to recover: the first CUDA error ends it with its message.
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// The median of `runs` event-timed launches on `stream` (after one untimed), in milliseconds.
template <class F>
double event_ms(int runs, cudaStream_t stream, F&& launch) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  const double ms = median_of(runs, [&] {
    check(cudaEventRecord(a, stream), "cudaEventRecord");
    launch();
    check(cudaGetLastError(), "launch");
    check(cudaEventRecord(b, stream), "cudaEventRecord");
    check(cudaEventSynchronize(b), "cudaEventSynchronize");
    float t = 0;
    check(cudaEventElapsedTime(&t, a, b), "cudaEventElapsedTime");
    return static_cast<double>(t);
  });
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms;
}

}  // namespace kiln_limits
