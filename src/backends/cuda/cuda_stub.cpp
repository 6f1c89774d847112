// Stands in for the CUDA backend when Kiln is built without the CUDA toolkit; it says so at run time.
#include "core/backend.hpp"

namespace kiln::detail {

std::unique_ptr<backend> make_cuda_backend() {
  return make_unavailable_backend(backend_kind::cuda, "Kiln was built without CUDA (no nvcc was found at build time)");
}

}  // namespace kiln::detail
