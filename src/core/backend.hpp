// The interface every backend implements, and the factory functions the registry calls.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"
#include "core/modmath.h"
#include "core/kernel_ir.hpp"
#include "core/settings.hpp"

namespace kiln::detail {

// Parameters after validation, with everything a kernel needs precomputed once per call.
struct kernel_params {
  std::int64_t p;
  std::int64_t mu;
  std::int64_t iterations;
  double p_d;      // p as a double (exact: p < 2^32)
  double pinv;     // 1.0 / p, rounded
  double mu_res;   // mu mod p, in [0, p)
  double two32;    // 2^32 mod p
  int negative;    // mu < 0: non-zero results are shifted down by p
  // modmath.h's Montgomery step, where it is exact (odd p, 0 < mu mod p, 6 * (mu mod p) * p < 2^32): GPU kernels
  // step some elements with it beside the double paths. The rest is only set where mont is 1.
  int mont;
  std::uint32_t mont_p;     // p
  std::uint32_t mont_pneg;  // -1/p mod 2^32
  std::uint32_t mont_r2;    // 2^64 mod p
  std::uint32_t mont_mu;    // mu mod p
  std::uint32_t mont_mu_r1; // (mu mod p) * (2^32 mod p), below 2^32 where mont is 1
  // modmath.h's square form, where it holds (odd p, mu invertible mod p, floor(p/2) (floor(p/2) + 1) < 2^51): the
  // kernels step in it beyond a few iterations (use_square). Centred constants; mont_pneg and mont_r2 are set too.
  int square;
  double square_h;      // mu / 2 mod p
  double square_e;      // h - h^2 mod p
  double square_muinv;  // 1 / mu mod p
  double square_c;      // -h / mu mod p
  std::uint32_t mont_square_e2;  // e * 2^64 mod p, in [0, p)
};

kernel_params prepare(const map_params& params);

// The fewest iterations at which the kernels take the square form and the GPU kernels their
// integer lanes (below, a GPU run is bound by memory).
inline constexpr std::int64_t int_lanes_min_iterations = 17;

// Whether the kernels step in the square form (kernel_params::square): 4 operations a step
// against 5 or 8, and 8 more per element to go into the form and out of it, so only from
// int_lanes_min_iterations. KILN_SQUARE_FORM=0 (core/settings.hpp) turns it off.
inline bool use_square(const kernel_params& kp) {
  return kp.square != 0 && kp.iterations >= int_lanes_min_iterations && current_settings().square_form;
}

// Whether a GPU map kernel steps some of its lanes in integers (how many: each kernel's shape, e.g.
// logistic_kernel.cuh's logistic_three_pair_int_lanes): only beyond 16 iterations, where the
// arithmetic bounds the run; below, the run is bound by memory and the integer lanes' extra
// instructions slow it (kiln_kernel_limits on the H200, docs/BENCHMARKS.md). In the square form
// they take its Montgomery step, which the form offers wherever it holds; else kiln_mont_step
// where kernel_params::mont says it is exact.
inline bool use_int_lanes(const kernel_params& kp) {
  return use_square(kp) || (kp.mont != 0 && kp.iterations >= int_lanes_min_iterations);
}

// A buffer that lives on one device of one backend.
class resident_buffer {
 public:
  virtual ~resident_buffer() = default;
  virtual std::size_t size() const = 0;
  virtual status download(std::span<std::int64_t> out) const = 0;
};

// Memory a backend keeps for one device between jobs (staging, slot buffers, pooled bodies of
// freed resident buffers), released once the device has been idle for device_pool_idle()
// (core/idle_release.hpp); resident buffers still alive are not counted. For tests and the design
// notes' bound (docs/DESIGN.md).
struct held_memory {
  std::size_t device_bytes = 0;  // device memory
  std::size_t pinned_bytes = 0;  // page-locked host memory (staging)
};

class backend {
 public:
  virtual ~backend() = default;
  virtual backend_kind kind() const = 0;
  // Probed once, then cached by the backend; never empty (an unavailable backend lists one
  // entry saying why).
  virtual const std::vector<device_info>& devices() = 0;
  // `in` and `out` have equal sizes (they may be the same memory); iterations >= 1 here. Of the
  // options, the backend reads chunk_elements (0: its own choice), phase_times and host_share.
  // `device` is an available device's index, or all_devices for a backend that spreads a run
  // over several (only where it has more than one usable device; today the cuda backend).
  virtual result<run_stats> run(int device, std::span<const std::int64_t> in, std::span<std::int64_t> out,
                                const kernel_params& kp, const run_options& options) = 0;
  virtual result<std::unique_ptr<resident_buffer>> upload(int device, std::span<const std::int64_t> data) = 0;
  // `n` elements on the device, contents unspecified.
  virtual result<std::unique_ptr<resident_buffer>> allocate(int device, std::size_t n) = 0;
  // Runs a decoded kernel over this backend's resident buffers of one device (`arrays`: the array
  // arguments' buffers in order; `outputs`: one per output, possibly among `arrays`), all of one
  // non-zero length; iterations >= 1. Host backends look at `stop` as their runs over host arrays
  // do; GPU backends run their launch to its end (core splits many iterations into rounds).
  // `base`: the run's index of the buffers' element 0, which a kernel's `index` and its faults
  // count from (0, but for one device's slice of a run over several: core/kernel_run.cpp).
  virtual result<run_stats> run_resident(int device, const decoded_kernel& k, std::span<resident_buffer* const> arrays,
                                         std::span<resident_buffer* const> outputs, const std::stop_token& stop,
                                         std::size_t base) = 0;
  // Whether this backend compiles kernels for its devices (the GPU backends; CUDA only where
  // NVRTC loads), else why not. Host backends' kernels are interpreted in core.
  virtual status kernel_support() {
    return make_error(errc::invalid_argument, std::string("backend ") + backend_name(kind()) + " does not compile kernels");
  }
  // Runs a decoded kernel of one array argument and one output (core/kernel_ir.hpp) over `in` on
  // a backend that compiles kernels for its devices; iterations >= 1 and `in` non-empty here;
  // `device` as for run(). Faults are reported as device_fault() reports them. The default
  // refuses, as kernel_support() says.
  virtual result<run_stats> run_kernel(int /*device*/, const decoded_kernel& /*k*/, std::span<const std::int64_t> /*in*/,
                                       std::span<std::int64_t> /*out*/, const run_options& /*options*/) {
    return kernel_support().ok() ? make_error(errc::internal, "run_kernel is not implemented") : kernel_support().err();
  }
  // Page-locked host memory that this backend's transfers use without staging; nullptr where the
  // backend has none (the default) or cannot allocate it now.
  virtual void* allocate_pinned(std::size_t /*bytes*/) { return nullptr; }
  virtual void free_pinned(void* /*p*/) {}
  // Whether this backend has started its devices (probed them, with at least one usable), so
  // that allocate_pinned costs only the pin and starts nothing: the host pool pins in the
  // background only then (core/host_memory.cpp). False for host backends (the default).
  virtual bool started() { return false; }
  // What this backend keeps for `device` between jobs now (see held_memory); none for host
  // backends (the default) and for devices that are unusable or out of range.
  virtual held_memory held_bytes(int /*device*/) { return {}; }
};

// Where a run goes: the device index it passes to its backend (the resolved device's, or
// all_devices when the caller asked for every device and the cuda backend has several usable
// ones; invalid_argument for another backend with several), and the backend and device(s)
// named in `stats` (every usable device's name, joined, for all_devices).
result<int> run_target(const run_options& options, const device_info& dev, run_stats& stats);

// The usable devices of a backend, in index order: the devices a run for all_devices spreads over.
std::vector<device_info> usable_devices(backend_kind backend);

// invalid_argument unless `in` and `out` have one size and are the same memory or apart: what
// every run over two host arrays requires.
status check_in_out(std::span<const std::int64_t> in, std::span<const std::int64_t> out);

// Iterations a host backend applies to a range between two looks at run_options::stop: a range
// of the cpu backend's grain takes a few milliseconds for this many, so a stop is seen within
// about 10 ms however many iterations were asked for, and counts up to this one never split.
inline constexpr std::int64_t host_stop_round = 2048;

// Seconds from t0 until now, for run_stats.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The registry's instance of a backend (created on first use).
backend& backend_of(backend_kind kind);

// Each backend's factory; a backend compiled out returns a stub whose device says why.
std::unique_ptr<backend> make_scalar_backend();
std::unique_ptr<backend> make_cpu_backend();
std::unique_ptr<backend> make_opencl_backend();
std::unique_ptr<backend> make_cuda_backend();

// Host-memory resident buffers shared by the scalar and cpu backends: a copy of `data`, or `n`
// elements with unspecified contents.
result<std::unique_ptr<resident_buffer>> make_host_buffer(std::span<const std::int64_t> data);
result<std::unique_ptr<resident_buffer>> make_host_buffer(std::size_t n);
// Their run over resident buffers: the map's own code where it is the map, else the interpreter
// (on every core where `parallel`).
result<run_stats> run_host_resident(backend& owner, int device, const decoded_kernel& k,
                                    std::span<resident_buffer* const> arrays, std::span<resident_buffer* const> outputs,
                                    bool parallel, const std::stop_token& stop, std::size_t base);

}  // namespace kiln::detail

namespace kiln {
// What a device_buffer holds: the device it lives on and the backend's buffer there.
class device_buffer::impl {
 public:
  device_info device;
  std::unique_ptr<detail::resident_buffer> buffer;
};

namespace detail {
struct buffer_access {
  static const device_buffer::impl& of(const device_buffer& b) { return *b.impl_; }
  static device_buffer make(std::unique_ptr<device_buffer::impl> p) { return device_buffer(std::move(p)); }
};
}  // namespace detail
}  // namespace kiln

namespace kiln::detail {

// A device entry saying the backend cannot be used, and why.
device_info unavailable_device(backend_kind kind, std::string reason);

// A backend with one unavailable device: for compiled-out backends and failed probes.
std::unique_ptr<backend> make_unavailable_backend(backend_kind kind, std::string reason);

}  // namespace kiln::detail
