// The common shape of the backends that compute in host memory (scalar, cpu): one device, host buffers.
#pragma once

#include <chrono>
#include <utility>

#include "core/backend.hpp"

namespace kiln::detail {

class host_backend : public backend {
 public:
  explicit host_backend(device_info device) : devices_{std::move(device)} { devices_.front().available = true; }

  backend_kind kind() const override { return devices_.front().backend; }
  const std::vector<device_info>& devices() override { return devices_; }

  result<run_stats> run(int, std::span<const std::int64_t> in, std::span<std::int64_t> out, const kernel_params& kp,
                        const run_options& options) final {
    const auto t0 = std::chrono::steady_clock::now();
    run_stats s;
    s.chunks = compute(in, out, kp, options.chunk_elements, options.stop);
    if (options.stop.stop_requested()) return cancelled_error();
    s.kernel_s = s.total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
  }

  // Host data needs no device: a resident buffer is a vector the same backend runs on in place.
  result<std::unique_ptr<resident_buffer>> upload(int, std::span<const std::int64_t> data) final {
    return make_host_buffer(data);
  }
  result<std::unique_ptr<resident_buffer>> allocate(int, std::size_t n) final { return make_host_buffer(n); }
  result<run_stats> run_resident(int device, const decoded_kernel& k, std::span<resident_buffer* const> arrays,
                                 std::span<resident_buffer* const> outputs, const std::stop_token& stop,
                                 std::size_t base) final {
    return run_host_resident(*this, device, k, arrays, outputs, kind() == backend_kind::cpu, stop, base);
  }

 protected:
  // Maps `in` to `out` (same size, possibly the same memory); returns how many chunks it used.
  // Looks at `stop` at least every host_stop_round iterations of a range and stops early once
  // it is requested (the caller then reports the run cancelled).
  virtual std::size_t compute(std::span<const std::int64_t> in, std::span<std::int64_t> out, const kernel_params& kp,
                              std::size_t chunk_elements, const std::stop_token& stop) = 0;

 private:
  std::vector<device_info> devices_;
};

}  // namespace kiln::detail
