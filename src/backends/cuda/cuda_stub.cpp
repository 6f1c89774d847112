// Stands in for the CUDA backend when Kiln is built without it; it says at run time why it was left out.
#include "core/backend.hpp"

// CMake passes the reason: turned off (-DKILN_WITH_CUDA=OFF) or no nvcc found.
#ifndef KILN_CUDA_STUB_REASON
#define KILN_CUDA_STUB_REASON "no nvcc was found at build time"
#endif

namespace kiln::detail {

std::unique_ptr<backend> make_cuda_backend() {
  return make_unavailable_backend(backend_kind::cuda, "Kiln was built without CUDA (" KILN_CUDA_STUB_REASON ")");
}

}  // namespace kiln::detail
