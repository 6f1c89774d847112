// The OpenCL ICD loader (libOpenCL.so.1), opened with dlopen when first needed instead of linked.
#pragma once

#include "kiln/result.hpp"

namespace kiln::detail {

// The library opened: KILN_OPENCL_LIBRARY when set (a path or a name, read once), else the ICD
// loader's soname.
constexpr const char* opencl_library_default = "libOpenCL.so.1";

// Whether the OpenCL library could be opened (once per process) and has every OpenCL 1.2 entry
// point; backend_unavailable otherwise, naming the library, the Debian package that provides the
// loader and the loader's reason. Kiln defines the cl* functions itself (opencl_library.cpp), each
// forwarding to the library, so that nothing links libOpenCL: a binary built with OpenCL starts,
// and runs every other backend, where no ICD loader is installed. Any cl* call opens the library;
// while it is missing, every cl* function fails (CL_INVALID_OPERATION, or a null handle with that
// error code) without calling anything.
status opencl_library_available();

}  // namespace kiln::detail
