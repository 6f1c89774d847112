// OpenCL programs built through the disk cache of compiled kernels: binaries kept per source and device.
#pragma once

#undef CL_HPP_ENABLE_EXCEPTIONS  // every cl_int is checked, as in opencl_backend.cpp
#include <CL/opencl.hpp>

#include <functional>
#include <string>

#include "kiln/result.hpp"

namespace kiln::detail {

// Builds a program (clBuildProgram, with the options it was given, on the caller's terms).
using program_build = std::function<status(cl::Program& program, const cl::Device& device)>;

// `source` built for `device` in `context` (a context of that one device or more). Where the disk
// cache (core/kernel_cache.hpp) holds this program's binary for this device, the program is made
// from the binary and built with `build`, which skips the compiler's front end; otherwise, or if
// the binary is refused, it is made from the source, built with `build`, and its binary stored.
// `options` must be what `build` passes to clBuildProgram: it is part of the key, with the
// source, the device's name, vendor and version, the driver's version and the platform's name
// and version. Errors are those of the build from source.
result<cl::Program> build_cached(const cl::Context& context, const cl::Device& device, const std::string& source,
                                 const char* options, const program_build& build);

}  // namespace kiln::detail
