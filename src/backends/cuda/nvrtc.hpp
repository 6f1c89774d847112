// NVRTC, loaded when first needed: CUDA C source to machine code for one GPU, without nvcc at run time.
#pragma once

#include <functional>
#include <string>

#include "kiln/result.hpp"

namespace kiln::detail {

// Whether NVRTC could be loaded (once per process); the error says which library and why not.
// Loaded at run time, not linked, so that a binary built here still starts (and runs everything
// but compiled programs on CUDA) where the CUDA toolkit's libnvrtc is absent.
status nvrtc_available();

// Compiles `source` for compute capability `arch` (major * 10 + minor, e.g. 90) into a cubin:
// machine code the driver loads as is. device_error with NVRTC's log on a compile error.
result<std::string> compile_cubin(const std::string& source, int arch);

// The cubin of `source` for `arch`, handed to `load` (the driver's load of the image): from the
// disk cache (core/kernel_cache.hpp) where an earlier process compiled it, else compiled and
// then stored. A cached image that `load` refuses is dropped and compiled afresh, so a stale
// entry costs one compile, never a failure. The key: the source, NVRTC's options (the target
// sm_XX among them), NVRTC's version and the CUDA driver's.
status load_cubin(const std::string& source, int arch, const std::function<status(const std::string& cubin)>& load);

}  // namespace kiln::detail
