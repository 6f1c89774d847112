// Stands in for the OpenCL backend when Kiln is built without OpenCL; it says so at run time.
#include "core/backend.hpp"

namespace kiln::detail {

std::unique_ptr<backend> make_opencl_backend() {
  return make_unavailable_backend(
      backend_kind::opencl,
      "Kiln was built without OpenCL (apt-get install ocl-icd-opencl-dev opencl-clhpp-headers, then rebuild)");
}

}  // namespace kiln::detail
