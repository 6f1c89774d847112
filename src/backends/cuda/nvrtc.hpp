// NVRTC, loaded when first needed: CUDA C source to machine code for one GPU, without nvcc at run time.
#pragma once

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

}  // namespace kiln::detail
