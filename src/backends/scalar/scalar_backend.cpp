// The `scalar` backend: one thread, plain integer arithmetic; the reference every backend must match.
#include <chrono>
#include <thread>

#include "core/backend.hpp"

namespace kiln::detail {
namespace {

class scalar_backend final : public backend {
 public:
  scalar_backend() {
    device_info d;
    d.backend = backend_kind::scalar;
    d.name = "host CPU, one thread";
    d.platform = "host";
    d.compute_units = 1;
    d.available = true;
    devices_.push_back(std::move(d));
  }

  backend_kind kind() const override { return backend_kind::scalar; }
  const std::vector<device_info>& devices() override { return devices_; }

  result<run_stats> run(int, std::span<const std::int64_t> in, std::span<std::int64_t> out,
                        const kernel_params& kp, std::size_t) override {
    auto t0 = std::chrono::steady_clock::now();
    const map_params params{kp.p, kp.mu, kp.iterations};
    for (std::size_t i = 0; i < in.size(); ++i) out[i] = logistic_map_reference(in[i], params);
    run_stats s;
    s.kernel_s = s.total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.chunks = 1;
    return s;
  }

  result<std::unique_ptr<resident_buffer>> upload(int device, std::span<const std::int64_t> data) override {
    return make_host_buffer(*this, device, data);
  }

 private:
  std::vector<device_info> devices_;
};

}  // namespace

std::unique_ptr<backend> make_scalar_backend() { return std::make_unique<scalar_backend>(); }

}  // namespace kiln::detail
