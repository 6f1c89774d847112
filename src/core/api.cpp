// The public API: parameter validation, the backend registry, dispatch and resident buffers.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>

#include "core/backend.hpp"
#include "kiln/kiln.hpp"

namespace kiln {

const char* errc_name(errc code) noexcept {
  switch (code) {
    case errc::invalid_argument: return "invalid_argument";
    case errc::unknown_backend: return "unknown_backend";
    case errc::backend_unavailable: return "backend_unavailable";
    case errc::out_of_memory: return "out_of_memory";
    case errc::device_error: return "device_error";
    case errc::arithmetic: return "arithmetic";
    case errc::cancelled: return "cancelled";
    case errc::internal: return "internal";
  }
  return "internal";
}

const char* backend_name(backend_kind kind) noexcept {
  switch (kind) {
    case backend_kind::scalar: return "scalar";
    case backend_kind::cpu: return "cpu";
    case backend_kind::opencl: return "opencl";
    case backend_kind::cuda: return "cuda";
  }
  return "unknown";
}

status validate(const map_params& params) {
  if (params.p < 1 || params.p > max_p)
    return make_error(errc::invalid_argument,
                      "p must be in 1..4294967295 (2^32 - 1), got " + std::to_string(params.p));
  if (params.iterations < 0)
    return make_error(errc::invalid_argument,
                      "iterations must be >= 0, got " + std::to_string(params.iterations));
  return {};
}

std::int64_t logistic_map_reference(std::int64_t x, const map_params& params) {
  if (params.iterations == 0) return x;
  // Plain integer arithmetic on residues (see core/modmath.h for why residues suffice):
  // every product is below p^2 < 2^64, so nothing overflows.
  const std::uint64_t p = static_cast<std::uint64_t>(params.p);
  auto residue = [&](std::int64_t v) {
    std::int64_t r = v % params.p;
    return static_cast<std::uint64_t>(r < 0 ? r + params.p : r);
  };
  std::uint64_t s = residue(x);
  const std::uint64_t m = residue(params.mu);
  for (std::int64_t i = 0; i < params.iterations; ++i) s = m * (s * (s + 1) % p) % p;
  auto r = static_cast<std::int64_t>(s);
  return params.mu < 0 && r != 0 ? r - params.p : r;
}

namespace detail {

namespace {

// 1 / a mod m for a in [0, m), where gcd(a, m) = 1 (extended Euclid); none otherwise.
std::optional<std::uint64_t> inverse_mod(std::uint64_t a, std::uint64_t m) {
  std::int64_t r0 = static_cast<std::int64_t>(m), r1 = static_cast<std::int64_t>(a), t0 = 0, t1 = 1;
  while (r1 != 0) {
    const std::int64_t q = r0 / r1;
    r0 = std::exchange(r1, r0 - q * r1);
    t0 = std::exchange(t1, t0 - q * t1);
  }
  if (r0 != 1) return std::nullopt;
  return static_cast<std::uint64_t>(t0 < 0 ? t0 + static_cast<std::int64_t>(m) : t0);
}

}  // namespace

kernel_params prepare(const map_params& params) {
  kernel_params kp{};
  kp.p = params.p;
  kp.mu = params.mu;
  kp.iterations = params.iterations;
  kp.p_d = static_cast<double>(params.p);
  kp.pinv = 1.0 / kp.p_d;
  const std::int64_t m = params.mu % params.p;
  const auto mu_res = static_cast<std::uint64_t>(m < 0 ? m + params.p : m);
  const auto pu = static_cast<std::uint64_t>(params.p);
  kp.mu_res = static_cast<double>(mu_res);
  kp.two32 = static_cast<double>((std::uint64_t{1} << 32) % pu);
  kp.negative = params.mu < 0 ? 1 : 0;
  // 6 * mu_res * p < 2^32, as mu_res * p (below 2^64) against floor((2^32 - 1) / 6); mu_res = 0
  // (every result 0) is left to the doubles, as its p may be past 2^31, where the bounds fail.
  const std::uint64_t r1 = (std::uint64_t{1} << 32) % pu;
  auto set_montgomery = [&] {
    // Newton's iteration for 1/p mod 2^32: p is its own inverse mod 8, and each step doubles the
    // correct low bits (3, 6, 12, 24, 48).
    std::uint32_t inv = static_cast<std::uint32_t>(pu);
    for (int i = 0; i < 4; ++i) inv *= 2u - static_cast<std::uint32_t>(pu) * inv;
    kp.mont_p = static_cast<std::uint32_t>(pu);
    kp.mont_pneg = 0u - inv;
    kp.mont_r2 = static_cast<std::uint32_t>(r1 * r1 % pu);
  };
  if ((pu & 1) != 0 && mu_res != 0 && mu_res * pu <= ((std::uint64_t{1} << 32) - 1) / 6) {
    set_montgomery();
    kp.mont = 1;
    kp.mont_mu = static_cast<std::uint32_t>(mu_res);
    kp.mont_mu_r1 = static_cast<std::uint32_t>(mu_res * r1);
  }
  // The square form (modmath.h): p odd (p >= 3: p = 1 maps everything to 0 on any path), mu
  // invertible mod p, and H (H + 1) < 2^51 for H = floor(p/2), so p < 2^27 and every product
  // below is under 2^54.
  const std::uint64_t half = pu / 2;
  if ((pu & 1) != 0 && pu >= 3 && half * (half + 1) < (std::uint64_t{1} << 51)) {
    if (const auto muinv = inverse_mod(mu_res, pu)) {
      const std::uint64_t h = mu_res * ((pu + 1) / 2) % pu;
      const std::uint64_t e = (h + pu - h * h % pu) % pu;
      const std::uint64_t c = (pu - *muinv * h % pu) % pu;
      auto centred = [&](std::uint64_t r) { return r > half ? static_cast<double>(r) - kp.p_d : static_cast<double>(r); };
      set_montgomery();
      kp.square = 1;
      kp.square_h = centred(h);
      kp.square_e = centred(e);
      kp.square_muinv = centred(*muinv);
      kp.square_c = centred(c);
      kp.mont_square_e2 = static_cast<std::uint32_t>(e * kp.mont_r2 % pu);
    }
  }
  return kp;
}

device_info unavailable_device(backend_kind kind, std::string reason) {
  device_info d;
  d.backend = kind;
  d.name = backend_name(kind);
  d.available = false;
  d.reason = std::move(reason);
  return d;
}

namespace {

constexpr std::array<backend_kind, 4> all_kinds = {backend_kind::scalar, backend_kind::cpu, backend_kind::opencl,
                                                   backend_kind::cuda};

// Owns one instance of each backend for the life of the process; probing is lazy and once.
class registry {
 public:
  static registry& get() {
    static registry r;
    return r;
  }

  backend& of(backend_kind kind) {
    std::call_once(once_[index(kind)], [&] {
      switch (kind) {
        case backend_kind::scalar: backends_[0] = make_scalar_backend(); break;
        case backend_kind::cpu: backends_[1] = make_cpu_backend(); break;
        case backend_kind::opencl: backends_[2] = make_opencl_backend(); break;
        case backend_kind::cuda: backends_[3] = make_cuda_backend(); break;
      }
    });
    return *backends_[index(kind)];
  }

  // Every backend probes once, thread-safely, and keeps its list; callers get a copy.
  std::vector<device_info> devices_of(backend_kind kind) { return of(kind).devices(); }

 private:
  static std::size_t index(backend_kind k) { return static_cast<std::size_t>(k); }
  std::array<std::unique_ptr<backend>, 4> backends_;
  std::array<std::once_flag, 4> once_;
};

result<backend_kind> parse_backend(const std::string& name) {
  for (auto k : all_kinds)
    if (name == backend_name(k)) return k;
  return make_error(errc::unknown_backend,
                    "unknown backend \"" + name + "\" (expected auto, scalar, cpu, opencl or cuda)");
}

}  // namespace

backend& backend_of(backend_kind kind) { return registry::get().of(kind); }

}  // namespace detail

std::vector<device_info> devices() {
  std::vector<device_info> all;
  for (auto k : detail::all_kinds) {
    auto ds = detail::registry::get().devices_of(k);
    all.insert(all.end(), ds.begin(), ds.end());
  }
  return all;
}

result<device_info> resolve(const run_options& options) {
  auto& reg = detail::registry::get();
  if (options.backend == "auto") {
    // A GPU when there is one (CUDA before OpenCL), else the multicore CPU backend; a device
    // index picks among the devices of those backends that have it (never silently another).
    for (auto k : {backend_kind::cuda, backend_kind::opencl})
      for (const auto& d : reg.devices_of(k))
        if (d.available && d.gpu && (options.device == all_devices || d.index == options.device)) return d;
    if (options.device == 0 || options.device == all_devices) return reg.devices_of(backend_kind::cpu).front();
    return make_error(errc::invalid_argument,
                      "backend auto has no device " + std::to_string(options.device) +
                          ": no GPU with that index is usable here, and the cpu backend has device 0 only");
  }
  auto kind = detail::parse_backend(options.backend);
  if (!kind) return kind.err();
  auto ds = reg.devices_of(*kind);
  if (ds.size() == 1 && !ds.front().available)
    return make_error(errc::backend_unavailable,
                      std::string("backend ") + backend_name(*kind) + " is unavailable: " + ds.front().reason);
  if (options.device == all_devices) {
    for (const auto& d : ds)
      if (d.available) return d;
    return make_error(errc::backend_unavailable, std::string("backend ") + backend_name(*kind) +
                                                     " has no usable device: " + ds.front().reason);
  }
  if (options.device < 0 || static_cast<std::size_t>(options.device) >= ds.size())
    return make_error(errc::invalid_argument, std::string("backend ") + backend_name(*kind) + " has " +
                                                  std::to_string(ds.size()) + " device(s); device index " +
                                                  std::to_string(options.device) + " is out of range");
  const auto& d = ds[static_cast<std::size_t>(options.device)];
  if (!d.available)
    return make_error(errc::backend_unavailable, std::string("device ") + std::to_string(options.device) + " of " +
                                                     backend_name(*kind) + " is unavailable: " + d.reason);
  return d;
}

namespace detail {

status check_in_out(std::span<const std::int64_t> in, std::span<const std::int64_t> out) {
  if (in.size() != out.size())
    return make_error(errc::invalid_argument, "input and output sizes differ (" + std::to_string(in.size()) +
                                                  " vs " + std::to_string(out.size()) + ")");
  const auto* ib = reinterpret_cast<const char*>(in.data());
  const auto* ob = reinterpret_cast<const char*>(out.data());
  const std::size_t bytes = in.size_bytes();
  if (ib != ob && ib < ob + bytes && ob < ib + bytes)
    return make_error(errc::invalid_argument, "input and output overlap partially");
  return {};
}

std::vector<device_info> usable_devices(backend_kind backend) {
  std::vector<device_info> usable;
  for (auto& d : registry::get().devices_of(backend))
    if (d.available) usable.push_back(std::move(d));
  return usable;
}

result<int> run_target(const run_options& options, const device_info& dev, run_stats& stats) {
  stats.backend = backend_name(dev.backend);
  stats.device = dev.name;
  if (options.device != all_devices) return dev.index;
  const auto usable = usable_devices(dev.backend);
  if (usable.size() <= 1) return dev.index;
  if (dev.backend != backend_kind::cuda)
    return make_error(errc::invalid_argument,
                      std::string("backend ") + backend_name(dev.backend) + " has " + std::to_string(usable.size()) +
                          " usable devices, and only the cuda backend spreads one run over several; "
                          "choose a device index");
  for (std::size_t i = 1; i < usable.size(); ++i) stats.device += " + " + usable[i].name;
  return all_devices;
}

}  // namespace detail

kernel logistic_kernel(std::int64_t iterations) {
  auto w = [](op o) { return static_cast<std::int64_t>(o); };
  // rem(mu * x * (x + 1), p) of the arguments (x, p, mu).
  static const std::int64_t code[] = {w(op::arg), 2, w(op::arg), 0, w(op::mul),  w(op::arg), 0,
                                      w(op::literal), 1, w(op::add), w(op::mul), w(op::arg), 1, w(op::rem)};
  return kernel{code, 3, 1, 0, iterations};
}

result<run_stats> logistic_map(std::span<const std::int64_t> in, std::span<std::int64_t> out,
                               const map_params& params, const run_options& options) {
  KILN_TRY(validate(params));
  KILN_TRY(detail::check_in_out(in, out));
  const arg args[] = {arg::of_array(in), arg::of_scalar(params.p), arg::of_scalar(params.mu)};
  const std::span<std::int64_t> outs[] = {out};
  return run(logistic_kernel(params.iterations), args, outs, options);
}

// ---- device_buffer -------------------------------------------------------------------------

device_buffer::device_buffer(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
device_buffer::~device_buffer() = default;
device_buffer::device_buffer(device_buffer&&) noexcept = default;
device_buffer& device_buffer::operator=(device_buffer&&) noexcept = default;

namespace detail {
// A device_buffer on the device `options` chooses, holding what `make(backend, index)` returns.
template <class Make>
result<device_buffer> make_buffer(const run_options& options, Make make) {
  if (options.device == all_devices)
    return make_error(errc::invalid_argument, "a device buffer lives on one device: choose a device index");
  auto dev = resolve(options);
  if (!dev) return dev.err();
  auto buf = make(registry::get().of(dev->backend), dev->index);
  if (!buf) return buf.err();
  auto p = std::make_unique<device_buffer::impl>();
  p->device = std::move(dev).value();
  p->buffer = std::move(buf).value();
  return buffer_access::make(std::move(p));
}
}  // namespace detail

result<device_buffer> device_buffer::upload(std::span<const std::int64_t> data, const run_options& options) {
  return detail::make_buffer(options, [&](detail::backend& b, int index) { return b.upload(index, data); });
}

result<device_buffer> device_buffer::allocate(std::size_t elements, const run_options& options) {
  return detail::make_buffer(options, [&](detail::backend& b, int index) { return b.allocate(index, elements); });
}

std::size_t device_buffer::size() const noexcept { return impl_->buffer->size(); }
const device_info& device_buffer::device() const noexcept { return impl_->device; }

result<run_stats> device_buffer::run(const map_params& params) {
  KILN_TRY(validate(params));
  const arg args[] = {arg::of_buffer(*this), arg::of_scalar(params.p), arg::of_scalar(params.mu)};
  device_buffer* const outs[] = {this};
  return kiln::run(logistic_kernel(params.iterations), args, outs);
}

status device_buffer::download(std::span<std::int64_t> out) const {
  if (out.size() != size())
    return make_error(errc::invalid_argument, "download needs " + std::to_string(size()) + " elements, got " +
                                                  std::to_string(out.size()));
  return impl_->buffer->download(out);
}

}  // namespace kiln
