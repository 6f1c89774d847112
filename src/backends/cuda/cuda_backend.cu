// The `cuda` backend: its devices probed once, each run handed to the pipeline, kernels or buffers; and its factory.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_buffers.cuh"
#include "backends/cuda/cuda_kernels.cuh"
#include "backends/cuda/cuda_pipeline.cuh"
#include "backends/cuda/cuda_probe.cuh"
#include "backends/cuda/cuda_resources.cuh"
#include "backends/cuda/nvrtc.hpp"
#include "core/backend.hpp"

namespace kiln::detail {
namespace {

using i64 = std::int64_t;

class cuda_backend final : public backend {
 public:
  backend_kind kind() const override { return backend_kind::cuda; }

  const std::vector<device_info>& devices() override {
    probe();
    return devices_;
  }

  result<run_stats> run(int device, std::span<const i64> in, std::span<i64> out, const kernel_params& kp,
                        const run_options& options) override {
    auto devs = states_for(device);
    if (!devs) return devs.err();
    device_scope scope;
    KILN_TRY(scope.enter(devs->front()->index()));
    cuda_transfer_job job;
    job.set_map(in, out, kp, options);
    job.set_pinned(in, out);
    return cuda_device_state::transfer(*devs, job);
  }

  status kernel_support() override { return nvrtc_available(); }

  // A kernel runs as the map does (cuda_run_kernel).
  result<run_stats> run_kernel(int device, const decoded_kernel& dk, std::span<const i64> in, std::span<i64> out,
                               const run_options& options) override {
    KILN_TRY(nvrtc_available());
    auto devs = states_for(device);
    if (!devs) return devs.err();
    return cuda_run_kernel(kernels_, *devs, states_.size(), dk, in, out, options);
  }

  // Portable page-locked memory (every device sees it as pinned), only where CUDA can run.
  void* allocate_pinned(std::size_t bytes) override {
    probe();
    bool usable = false;
    for (const auto& st : states_) usable = usable || st != nullptr;
    void* p = nullptr;
    if (!usable || cudaHostAlloc(&p, bytes, cudaHostAllocPortable) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    return p;
  }

  void free_pinned(void* p) override { (void)cudaFreeHost(p); }

  bool started() override { return started_.load(); }

  held_memory held_bytes(int device) override {
    probe();
    if (device < 0 || static_cast<std::size_t>(device) >= states_.size() || !states_[static_cast<std::size_t>(device)])
      return {};
    return states_[static_cast<std::size_t>(device)]->held();
  }

  result<std::unique_ptr<resident_buffer>> allocate(int device, std::size_t n) override {
    auto ds = state_of(device);
    if (!ds) return ds.err();
    device_scope scope;
    KILN_TRY(scope.enter(device));
    auto buf = std::make_unique<cuda_buffer>(**ds, n);
    KILN_TRY(buf->init());
    return std::unique_ptr<resident_buffer>(std::move(buf));
  }

  // A kernel over resident buffers (cuda_run_resident), with the device current.
  result<run_stats> run_resident(int device, const decoded_kernel& dk, std::span<resident_buffer* const> arrays,
                                 std::span<resident_buffer* const> outputs, const std::stop_token&,
                                 std::size_t base) override {
    auto ds = state_of(device);
    if (!ds) return ds.err();
    device_scope scope;
    KILN_TRY(scope.enter(device));
    return cuda_run_resident(kernels_, **ds, dk, arrays, outputs, base);
  }

  result<std::unique_ptr<resident_buffer>> upload(int device, std::span<const i64> data) override {
    auto ds = state_of(device);
    if (!ds) return ds.err();
    device_scope scope;
    KILN_TRY(scope.enter(device));
    auto buf = std::make_unique<cuda_buffer>(**ds, data.size());
    KILN_TRY(buf->init());
    if (!data.empty()) {
      cuda_transfer_job job;
      job.host_in = data.data();
      job.in_pinned = cuda_is_pinned(data.data(), data.size_bytes());
      job.resident = buf->data();
      job.n = data.size();
      auto r = (*ds)->transfer(job);
      if (!r) return r.err();
    }
    return std::unique_ptr<resident_buffer>(std::move(buf));
  }

 private:
  void probe() {
    std::call_once(probed_, [this] {
      devices_ = probe_cuda_devices(states_);
      started_.store(std::any_of(states_.begin(), states_.end(), [](const auto& st) { return st != nullptr; }));
    });
  }

  // The states a run uses: one device's, or every usable one's for all_devices.
  result<std::vector<cuda_device_state*>> states_for(int device) {
    std::vector<cuda_device_state*> devs;
    if (device == all_devices) {
      probe();
      for (const auto& st : states_)
        if (st) devs.push_back(st.get());
      if (devs.empty()) return make_error(errc::backend_unavailable, "no CUDA device is usable: " + devices_.front().reason);
    } else {
      auto ds = state_of(device);
      if (!ds) return ds.err();
      devs.push_back(*ds);
    }
    return devs;
  }

  result<cuda_device_state*> state_of(int device) {
    probe();
    if (device < 0 || static_cast<std::size_t>(device) >= states_.size())
      return make_error(errc::invalid_argument, "CUDA device index " + std::to_string(device) + " is out of range (" +
                                                    std::to_string(states_.size()) + " device(s))");
    if (!states_[static_cast<std::size_t>(device)])
      return make_error(errc::backend_unavailable, devices_[static_cast<std::size_t>(device)].reason);
    return states_[static_cast<std::size_t>(device)].get();
  }

  std::once_flag probed_;
  std::atomic<bool> started_{false};  // probed, with a usable device
  std::vector<device_info> devices_;
  std::vector<std::unique_ptr<cuda_device_state>> states_;  // per entry of devices_; null where unavailable
  cuda_kernel_cache kernels_;                               // compiled kernels, kept for the process
};

}  // namespace

std::unique_ptr<backend> make_cuda_backend() { return std::make_unique<cuda_backend>(); }

}  // namespace kiln::detail
