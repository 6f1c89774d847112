// The CUDA backend's kernels: the map's launch, compiled kernels per compute capability, kernel runs and runs over buffers.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_pipeline.cuh"
#include "backends/cuda/cuda_resources.cuh"
#include "core/backend.hpp"
#include "core/kernel_ir.hpp"

namespace kiln::detail {

// Enqueues the built-in map over one chunk (logistic_kernel.cuh's launch_logistic): int32 or
// int64 elements on either side. cuda_kernels.cu is the one file that includes the map's kernels,
// so that they are compiled once.
cudaError_t cuda_launch_map(const void* in, bool in32, void* out, bool out32, std::size_t n, const kernel_params& kp,
                            int sm_count, cudaStream_t stream);

// Compiled kernels by source and compute capability, compiled with NVRTC and loaded once, then
// kept for the life of the process (a library is context-independent: one serves every device of
// its capability).
class cuda_kernel_cache {
 public:
  // The kernel `name` of `source` for compute capability `arch` (major * 10 + minor).
  result<cudaKernel_t> kernel_for(const std::string& source, int arch, const char* name = "kiln_program");

 private:
  using library_handle = cuda_handle<cudaLibrary_t, cudaLibraryUnload>;

  std::mutex m_;
  std::map<std::pair<std::string, int>, cudaKernel_t> kernels_;  // by source and compute capability
  std::vector<library_handle> libraries_;                       // the kernels' libraries
};

// A kernel runs as the map does (the same lanes, staging and devices), compiled with NVRTC for
// each device's compute capability on first use. `devs` are the run's devices (as for
// cuda_device_state::transfer), `device_count` how many the backend lists.
result<run_stats> cuda_run_kernel(cuda_kernel_cache& kernels, std::span<cuda_device_state* const> devs,
                                  std::size_t device_count, const decoded_kernel& dk, std::span<const std::int64_t> in,
                                  std::span<std::int64_t> out, const run_options& options);

// A kernel over resident buffers: the map's own kernel where it is the map, else the kernel
// compiled for buffers (kiln_resident), one launch over all elements. A fault is reported by the
// element's index; its inputs, which a faulting element never overwrites, are read back to say why.
// The caller has made the device current.
result<run_stats> cuda_run_resident(cuda_kernel_cache& kernels, cuda_device_state& ds, const decoded_kernel& dk,
                                    std::span<resident_buffer* const> arrays,
                                    std::span<resident_buffer* const> outputs, std::size_t base = 0);

}  // namespace kiln::detail
