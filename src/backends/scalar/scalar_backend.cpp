// The `scalar` backend: one thread, plain integer arithmetic; the reference every backend must match.
#include <algorithm>

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
                      std::size_t, const std::stop_token& stop) override {
    // Rounds of iterations per element, so that a stop is seen between two of them however many
    // iterations were asked for (the map applied a then b times is the map applied a + b).
    constexpr std::int64_t round = host_stop_round * 64;
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (i % 4096 == 0 && stop.stop_requested()) return 1;
      std::int64_t x = in[i];
      for (std::int64_t left = kp.iterations; left > 0; left -= round) {
        x = logistic_map_reference(x, {kp.p, kp.mu, std::min(left, round)});
        if (left > round && stop.stop_requested()) return 1;
      }
      out[i] = x;
    }
    return 1;
  }
};

}  // namespace

std::unique_ptr<backend> make_scalar_backend() { return std::make_unique<scalar_backend>(); }

}  // namespace kiln::detail
