// The `opencl` backend: every OpenCL device probed once, each run handed to the pipeline, kernels or buffers; its factory.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/opencl/opencl_buffers.hpp"
#include "backends/opencl/opencl_handles.hpp"
#include "backends/opencl/opencl_kernels.hpp"
#include "backends/opencl/opencl_pipeline.hpp"
#include "backends/opencl/opencl_probe.hpp"
#include "core/backend.hpp"

namespace kiln::detail {
namespace {

class opencl_backend final : public backend {
 public:
  backend_kind kind() const override { return backend_kind::opencl; }

  const std::vector<device_info>& devices() override {
    probe();
    return infos_;
  }

  result<run_stats> run(int device, std::span<const std::int64_t> in, std::span<std::int64_t> out,
                        const kernel_params& kp, const run_options& options) override {
    return opencl_catching_bad_alloc([&]() -> result<run_stats> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      opencl_transfer_job job;
      job.set_map(in, out, kp, options);
      return transfer(**ds, job);
    });
  }

  status kernel_support() override { return {}; }

  result<run_stats> run_kernel(int device, const decoded_kernel& dk, std::span<const std::int64_t> in,
                               std::span<std::int64_t> out, const run_options& options) override {
    return opencl_catching_bad_alloc([&]() -> result<run_stats> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      return run_kernel_on(**ds, dk, in, out, options);
    });
  }

  result<std::unique_ptr<resident_buffer>> upload(int device, std::span<const std::int64_t> data) override {
    return opencl_catching_bad_alloc([&]() -> result<std::unique_ptr<resident_buffer>> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      return opencl_buffer::create(*ds, data);
    });
  }

  result<std::unique_ptr<resident_buffer>> allocate(int device, std::size_t n) override {
    return opencl_catching_bad_alloc([&]() -> result<std::unique_ptr<resident_buffer>> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      return opencl_buffer::allocate(*ds, n);
    });
  }

  result<run_stats> run_resident(int device, const decoded_kernel& dk, std::span<resident_buffer* const> arrays,
                                 std::span<resident_buffer* const> outputs, const std::stop_token&,
                                 std::size_t base) override {
    return opencl_catching_bad_alloc([&]() -> result<run_stats> {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      return run_resident_on(**ds, dk, arrays, outputs, base);
    });
  }

  held_memory held_bytes(int device) override {
    if (device < 0 || static_cast<std::size_t>(device) >= devices().size() || !states_[static_cast<std::size_t>(device)])
      return {};
    return lanes_held(*states_[static_cast<std::size_t>(device)]);
  }

 private:
  void probe() {
    std::call_once(once_, [this] {
      std::vector<opencl_probed_device> found = probe_opencl_devices();
      // GPUs first (what "auto" looks for), otherwise in platform and device order.
      std::stable_partition(found.begin(), found.end(), [](const opencl_probed_device& p) { return p.info.gpu; });
      for (std::size_t i = 0; i < found.size(); ++i) {
        found[i].info.index = static_cast<int>(i);
        infos_.push_back(std::move(found[i].info));
        states_.push_back(std::move(found[i].state));
      }
    });
  }

  result<std::shared_ptr<opencl_device_state>> state_of(int device) {
    probe();
    if (device < 0 || static_cast<std::size_t>(device) >= states_.size())
      return make_error(errc::invalid_argument, "backend opencl has " + std::to_string(states_.size()) +
                                                    " device(s); device index " + std::to_string(device) +
                                                    " is out of range");
    const auto i = static_cast<std::size_t>(device);
    if (!states_[i])
      return make_error(errc::backend_unavailable,
                        "device " + std::to_string(device) + " of opencl is unavailable: " + infos_[i].reason);
    return states_[i];
  }

  std::once_flag once_;
  std::vector<device_info> infos_;
  std::vector<std::shared_ptr<opencl_device_state>> states_;  // parallel to infos_
};

}  // namespace

std::unique_ptr<backend> make_opencl_backend() { return std::make_unique<opencl_backend>(); }

}  // namespace kiln::detail
