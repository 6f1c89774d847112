// The CUDA backend's device discovery: the driver's device list, each device's properties, why one cannot be used.
#include "backends/cuda/cuda_probe.cuh"

#include <cuda_runtime.h>

#include <string>
#include <utility>

#include "core/backend.hpp"

namespace kiln::detail {
namespace {

// The oldest compute capability this build has code for (from nvcc's -arch list), as major*10+minor.
constexpr int oldest_supported_arch() {
#if defined(__CUDA_ARCH_LIST__)
  constexpr int archs[] = {__CUDA_ARCH_LIST__};
  int lowest = archs[0];
  for (int a : archs) lowest = a < lowest ? a : lowest;
  return lowest / 10;
#else
  return 75;
#endif
}

std::string cuda_version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// Starts the device's primary context now, with the probe, rather than at its first job: the
// start takes about 105 ms on the H200 machine (docs/BENCHMARKS.md), which a first run would
// otherwise pay on top of its own work, and a device whose context cannot start is unusable,
// which the probe can then say. The calling thread's current device is left as it was.
status start_context(int device) {
  int previous = 0;
  KILN_TRY(cuda_check(cudaGetDevice(&previous), "cudaGetDevice"));
  const cudaError_t set = cudaSetDevice(device);
  const cudaError_t started = set == cudaSuccess ? cudaFree(nullptr) : set;
  (void)cudaSetDevice(previous);
  if (started != cudaSuccess) (void)cudaGetLastError();
  return set != cudaSuccess ? cuda_check(set, "cudaSetDevice")
                            : cuda_check(started, "starting the device's context (cudaFree)");
}

}  // namespace

std::vector<device_info> probe_cuda_devices(std::vector<std::unique_ptr<cuda_device_state>>& states) {
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    (void)cudaGetLastError();
    std::string what = e == cudaErrorNoDevice            ? "no CUDA-capable device was found"
                       : e == cudaErrorInsufficientDriver ? "no CUDA driver was found, or it is older than this CUDA runtime"
                                                          : "the CUDA driver could not be initialized";
    states.push_back(nullptr);
    return {unavailable_device(backend_kind::cuda, what + " (cudaGetDeviceCount: " + cudaGetErrorString(e) + ")")};
  }
  if (count <= 0) {
    states.push_back(nullptr);
    return {unavailable_device(backend_kind::cuda, "no CUDA-capable device was found (cudaGetDeviceCount returned 0)")};
  }

  int runtime = 0, driver = 0;
  (void)cudaRuntimeGetVersion(&runtime);
  (void)cudaDriverGetVersion(&driver);
  const std::string platform = "CUDA " + cuda_version_string(runtime) + " / driver " + cuda_version_string(driver);

  std::vector<device_info> list;
  for (int i = 0; i < count; ++i) {
    device_info d;
    d.backend = backend_kind::cuda;
    d.index = i;
    d.platform = platform;
    d.gpu = true;
    d.name = "CUDA device " + std::to_string(i);
    cudaDeviceProp prop{};
    int mode = cudaComputeModeDefault;
    if (cudaError_t e = cudaGetDeviceProperties(&prop, i); e != cudaSuccess) {
      d.reason = cuda_error(e, "cudaGetDeviceProperties").message;
    } else if (cudaError_t e2 = cudaDeviceGetAttribute(&mode, cudaDevAttrComputeMode, i); e2 != cudaSuccess) {
      d.reason = cuda_error(e2, "cudaDeviceGetAttribute").message;
    } else {
      d.name = prop.name;
      d.compute_units = prop.multiProcessorCount;
      d.memory_bytes = prop.totalGlobalMem;
      const int arch = prop.major * 10 + prop.minor;
      if (arch < oldest_supported_arch())
        d.reason = "compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                   " is older than this build supports (" + std::to_string(oldest_supported_arch() / 10) + "." +
                   std::to_string(oldest_supported_arch() % 10) + ")";
      else if (mode == cudaComputeModeProhibited)
        d.reason = "the device is in compute-prohibited mode";
      else if (auto started = start_context(i); !started)
        d.reason = started.err().message;
      else
        d.available = true;
    }
    states.push_back(d.available ? std::make_unique<cuda_device_state>(i, d.compute_units, prop.major * 10 + prop.minor,
                                                                       d.memory_bytes)
                                 : nullptr);
    list.push_back(std::move(d));
  }
  return list;
}

}  // namespace kiln::detail
