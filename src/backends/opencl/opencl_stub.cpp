// Stands in for the OpenCL backend when Kiln is built without it; it says at run time why it was left out.
#include "core/backend.hpp"

// CMake passes the reason: turned off (-DKILN_WITH_OPENCL=OFF), or which part of OpenCL was not found.
#ifndef KILN_OPENCL_STUB_REASON
#define KILN_OPENCL_STUB_REASON \
  "OpenCL was not found at build time: apt-get install ocl-icd-opencl-dev opencl-clhpp-headers, then rebuild"
#endif

namespace kiln::detail {

std::unique_ptr<backend> make_opencl_backend() {
  return make_unavailable_backend(backend_kind::opencl, "Kiln was built without OpenCL (" KILN_OPENCL_STUB_REASON ")");
}

}  // namespace kiln::detail
