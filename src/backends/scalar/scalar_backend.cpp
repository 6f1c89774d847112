// The `scalar` backend: one thread, plain integer arithmetic; the reference every backend must match.
#include "backends/host/host_backend.hpp"

namespace kiln::detail {
namespace {

device_info scalar_device() {
  device_info d;
  d.backend = backend_kind::scalar;
  d.name = "host CPU, one thread";
  d.platform = "host";
  d.compute_units = 1;
  return d;
}

class scalar_backend final : public host_backend {
 public:
  scalar_backend() : host_backend(scalar_device()) {}

 protected:
  std::size_t compute(std::span<const std::int64_t> in, std::span<std::int64_t> out, const kernel_params& kp,
                      std::size_t) override {
    const map_params params{kp.p, kp.mu, kp.iterations};
    for (std::size_t i = 0; i < in.size(); ++i) out[i] = logistic_map_reference(in[i], params);
    return 1;
  }
};

}  // namespace

std::unique_ptr<backend> make_scalar_backend() { return std::make_unique<scalar_backend>(); }

}  // namespace kiln::detail
