// `kiln devices` and `kiln run`: the CLI boundary where error values become messages and exit codes.
#include "cli/commands.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdio>
#include <iostream>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/kiln.hpp"

namespace kiln::cli {
namespace {

// `kiln run` after parsing: every number exact and inside its option's domain.
struct run_args {
  std::string backend = "auto";
  int device = 0;
  bool device_given = false;
  std::int64_t n = 1 << 20;
  std::int64_t first = 1;  // the inputs are first .. first + n - 1
  std::int64_t iterations = 10;
  std::int64_t p = 6'700'417;
  std::int64_t mu = 22;
  std::int64_t chunk = 0;
  bool chunk_given = false;
  std::int64_t repeat = 3;
  std::int64_t warmup = 1;
  bool resident = false;
  bool pinned = false;
  bool phases = false;
  bool gpu_only = false;
  bool json = false;
};

constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();

error bad_argument(std::string message) { return error{errc::invalid_argument, std::move(message)}; }

// An optional sign and decimal digits, nothing else (no spaces, prefixes, exponents or separators).
bool is_decimal(std::string_view s) {
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) s.remove_prefix(1);
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// The exact value of `text`, or an error naming the option and its domain lo..hi: from_chars
// reports values beyond int64 instead of clamping them.
result<std::int64_t> parse_integer(const std::string& option, const std::string& text, std::int64_t lo,
                                   std::int64_t hi, const std::string& note = "") {
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi) + note;
  if (!is_decimal(text))
    return bad_argument(option + " \"" + text + "\" is not a number: " + option + " takes a decimal integer in " + range);
  std::string_view digits = text;
  if (digits.front() == '+') digits.remove_prefix(1);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc{} || end != digits.data() + digits.size() || v < lo || v > hi)
    return bad_argument(option + " must be in " + range + ", got " + text);
  return v;
}

// Parses one option into `field` when it was given; the first bad one is the error.
status parse_into(std::int64_t& field, const std::optional<std::string>& text, const std::string& option,
                  std::int64_t lo, std::int64_t hi, const std::string& note = "") {
  if (!text) return {};
  auto v = parse_integer(option, *text, lo, hi, note);
  if (!v) return v.err();
  field = *v;
  return {};
}

result<run_args> parse_run(const run_request& rq) {
  run_args a;
  a.backend = rq.backend;
  KILN_TRY(parse_into(a.n, rq.n, "--n", 0, max_elements, " (2^34)"));
  KILN_TRY(parse_into(a.first, rq.first, "--first", int64_min, int64_max, " (int64)"));
  KILN_TRY(parse_into(a.iterations, rq.iterations, "--iterations", 0, int64_max));
  KILN_TRY(parse_into(a.p, rq.p, "--p", 1, max_p, " (2^32 - 1)"));
  KILN_TRY(parse_into(a.mu, rq.mu, "--mu", int64_min, int64_max, " (int64)"));
  KILN_TRY(parse_into(a.chunk, rq.chunk, "--chunk", 0, max_elements, " (2^34)"));
  a.chunk_given = rq.chunk.has_value();
  KILN_TRY(parse_into(a.repeat, rq.repeat, "--repeat", 1, INT_MAX));
  KILN_TRY(parse_into(a.warmup, rq.warmup, "--warmup", 0, INT_MAX));
  if (rq.device) {
    a.device_given = true;
    const std::string& d = *rq.device;
    if (d == "all") {
      a.device = all_devices;
    } else {
      // The range within the backend's devices is checked once the backend is known (check_device).
      auto v = parse_integer("--device", d, 0, INT_MAX);
      if (!v)
        return bad_argument(is_decimal(d) ? "--device must be a device index (0, 1, ...) or all, got " + d
                                          : "--device \"" + d + "\" is not a number: --device takes a device index (0, 1, ...) or all");
      a.device = static_cast<int>(*v);
    }
  }
  // The inputs first .. first + n - 1 must all be int64 (n >= 0 here, so only the top can overflow).
  if (a.n > 0 && a.first > int64_max - (a.n - 1))
    return bad_argument("--first " + std::to_string(a.first) + " with --n " + std::to_string(a.n) +
                        " runs past the largest int64: with that --n, --first must be in " +
                        std::to_string(int64_min) + ".." + std::to_string(int64_max - (a.n - 1)));
  a.resident = rq.resident;
  a.pinned = rq.pinned;
  a.phases = rq.phases;
  a.gpu_only = rq.gpu_only;
  a.json = rq.json;
  return a;
}

// The backend a run will use: the named one, or the one auto resolves to.
result<backend_kind> chosen_backend(const std::string& name) {
  if (name == "auto") {
    auto dev = resolve(run_options{});
    if (!dev) return dev.err();
    return dev->backend;
  }
  for (auto k : {backend_kind::scalar, backend_kind::cpu, backend_kind::opencl, backend_kind::cuda})
    if (name == backend_name(k)) return k;
  return error{errc::unknown_backend, "unknown backend \"" + name + "\" (expected auto, scalar, cpu, opencl or cuda)"};
}

// A --device index beyond the backend's devices, said in the option's terms. A backend with no
// usable device is left to resolve(), whose message says why it is unavailable.
status check_device(const run_args& a, backend_kind kind) {
  if (!a.device_given || a.device == all_devices) return {};
  int listed = 0;
  bool usable = false;
  for (const auto& d : kiln::devices())
    if (d.backend == kind) ++listed, usable = usable || d.available;
  if (!usable || a.device < listed) return {};
  return bad_argument("--device must be in 0.." + std::to_string(listed - 1) + " or all for the " +
                      backend_name(kind) + " backend (" + std::to_string(listed) + " device" +
                      (listed == 1 ? "" : "s") + "), got " + std::to_string(a.device));
}

// The options given that the backend, or a resident run, would not honour: each refused by name
// rather than silently ignored. What each backend reads of run_options (core/backend.hpp): the
// host backends ignore phase_times and host_share, scalar also chunk_elements; a resident run
// (device_buffer) takes only the backend and device, runs on the device alone, and is timed
// without the copies to and from host memory.
std::vector<std::string> inapplicable(const run_args& a, backend_kind kind) {
  const bool gpu = kind == backend_kind::opencl || kind == backend_kind::cuda;
  const std::string which = std::string(backend_name(kind)) + (a.backend == "auto" ? " (what --backend auto chose)" : "");
  std::vector<std::string> out;
  if (a.gpu_only && !gpu) out.push_back("--gpu-only applies to GPU backends (opencl, cuda), not " + which);
  if (a.phases && !gpu) out.push_back("--phases applies to GPU backends (opencl, cuda), not " + which);
  if (a.chunk_given && kind == backend_kind::scalar)
    out.push_back("--chunk applies to the cpu, opencl and cuda backends, not scalar (one thread maps the whole array)");
  if (!a.resident) return out;
  if (a.gpu_only && gpu) out.push_back("--gpu-only does not apply with --resident: a resident run is the device's alone");
  if (a.phases && gpu)
    out.push_back("--phases does not apply with --resident: a resident run times only its kernel, and always reports it");
  if (a.chunk_given && kind != backend_kind::scalar)
    out.push_back("--chunk does not apply with --resident: a resident run maps its buffer in the backend's own pieces");
  if (a.pinned)
    out.push_back("--pinned does not apply with --resident: only the run on the device is timed, not copies from host memory");
  return out;
}

int fail(const kiln::error& e) {
  std::cerr << "kiln: " << e.message << " [" << errc_name(e.code) << "]\n";
  return e.code == errc::invalid_argument || e.code == errc::unknown_backend ? 2 : 1;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::string to_decimal(__int128 v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  unsigned __int128 u = neg ? -static_cast<unsigned __int128>(v) : static_cast<unsigned __int128>(v);
  std::string s;
  while (u) s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(u % 10))), u /= 10;
  return neg ? "-" + s : s;
}

// One timed run: end to end from host memory, or (resident) only the map on an uploaded buffer.
result<run_stats> timed_run(std::span<const std::int64_t> in, std::span<std::int64_t> out,
                            const map_params& params, const run_options& opts, bool resident) {
  if (!resident) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = logistic_map(in, out, params, opts);
    if (r) r->total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }
  auto buf = device_buffer::upload(in, opts);
  if (!buf) return buf.err();
  auto t0 = std::chrono::steady_clock::now();
  auto r = buf->run(params);
  if (r) r->total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r) return r;
  KILN_TRY(buf->download(out));
  return r;
}

}  // namespace

int devices(bool json) {
  auto ds = kiln::devices();
  if (json) {
    auto arr = nlohmann::json::array();
    for (const auto& d : ds)
      arr.push_back({{"backend", backend_name(d.backend)}, {"index", d.index}, {"name", d.name},
                     {"platform", d.platform}, {"gpu", d.gpu}, {"compute_units", d.compute_units},
                     {"memory_bytes", d.memory_bytes}, {"available", d.available}, {"reason", d.reason}});
    std::cout << arr.dump(2) << "\n";
    return 0;
  }
  for (const auto& d : ds) {
    std::printf("%-7s %d  %-9s %s\n", backend_name(d.backend), d.index, d.available ? "available" : "NO", d.name.c_str());
    if (!d.platform.empty())
      std::printf("           platform: %s, %d compute units, %.1f GiB%s\n", d.platform.c_str(), d.compute_units,
                  static_cast<double>(d.memory_bytes) / (1 << 30), d.gpu ? ", GPU" : "");
    if (!d.available) std::printf("           why not: %s\n", d.reason.c_str());
  }
  return 0;
}

int run(const run_request& request) {
  // Everything is checked before anything is allocated or run.
  auto parsed = parse_run(request);
  if (!parsed) return fail(parsed.err());
  const run_args& a = *parsed;
  map_params params{a.p, a.mu, a.iterations};
  if (auto s = validate(params); !s) return fail(s.err());
  run_options opts;
  opts.backend = a.backend;
  opts.device = a.device;
  opts.chunk_elements = static_cast<std::size_t>(a.chunk);
  opts.host_share = !a.gpu_only;

  auto kind = chosen_backend(a.backend);
  if (!kind) return fail(kind.err());
  // auto resolves without looking at the device, so a --device given with it picks among the
  // devices of the backend auto chose; without one, auto keeps its own choice of device.
  if (a.device_given) opts.backend = backend_name(*kind);
  if (auto s = check_device(a, *kind); !s) return fail(s.err());
  auto dev = resolve(opts);
  if (!dev) return fail(dev.err());
  if (auto refusals = inapplicable(a, dev->backend); !refusals.empty()) {
    for (const auto& r : refusals) std::cerr << "kiln: " << r << " [" << errc_name(errc::invalid_argument) << "]\n";
    return 2;
  }

  // Ordinary (pageable) vectors by default; --pinned uses Kiln's host blocks instead, pinned now
  // (allocate() would pin them in the background, for a later call, and time staged runs).
  const auto n = static_cast<std::size_t>(a.n);
  std::vector<std::int64_t> in_vec, out_vec;
  host_memory in_mem, out_mem;
  if (a.pinned) {
    auto im = host_memory::allocate_pinned(n), om = host_memory::allocate_pinned(n);
    if (!im) return fail(im.err());
    if (!om) return fail(om.err());
    in_mem = std::move(im).value();
    out_mem = std::move(om).value();
  } else {
    try {
      in_vec.resize(n);
      out_vec.resize(n);
    } catch (const std::bad_alloc&) {
      return fail(error{errc::out_of_memory, "cannot allocate two arrays of " + std::to_string(n) + " int64 elements"});
    }
  }
  std::span<std::int64_t> in = a.pinned ? in_mem.span() : std::span<std::int64_t>(in_vec);
  std::span<std::int64_t> out = a.pinned ? out_mem.span() : std::span<std::int64_t>(out_vec);
  for (std::size_t i = 0; i < n; ++i) in[i] = a.first + static_cast<std::int64_t>(i);

  std::vector<double> wall, h2d, kernel, d2h, host_elements;
  std::size_t chunks = 0;
  std::string device = dev->name;  // the run's own: with --device all, every device it used
  for (std::int64_t i = 0; i < a.warmup + a.repeat; ++i) {
    auto r = timed_run(in, out, params, opts, a.resident);
    if (!r) return fail(r.err());
    device = r->device;
    if (i < a.warmup) continue;
    wall.push_back(r->total_s);
    h2d.push_back(r->host_to_device_s);
    kernel.push_back(r->kernel_s);
    d2h.push_back(r->device_to_host_s);
    host_elements.push_back(static_cast<double>(r->host_elements));
    chunks = r->chunks;
  }
  // The split comes from one more run with phase timing (never resident: see inapplicable()).
  if (a.phases) {
    run_options timed = opts;
    timed.phase_times = true;
    auto r = timed_run(in, out, params, timed, false);
    if (!r) return fail(r.err());
    h2d.assign(1, r->host_to_device_s);
    kernel.assign(1, r->kernel_s);
    d2h.assign(1, r->device_to_host_s);
  }
  __int128 sum = 0;
  for (auto v : out) sum += v;

  if (a.json) {
    nlohmann::json j = {{"backend", backend_name(dev->backend)}, {"device", device}, {"n", a.n}, {"first", a.first},
                        {"iterations", a.iterations}, {"p", a.p}, {"mu", a.mu}, {"repeat", a.repeat},
                        {"resident", a.resident}, {"pinned", a.pinned}, {"phases", a.phases},
                        {"seconds", median(wall)},
                        {"seconds_min", *std::min_element(wall.begin(), wall.end())},
                        {"seconds_max", *std::max_element(wall.begin(), wall.end())}, {"runs", wall},
                        {"host_to_device_s", median(h2d)}, {"kernel_s", median(kernel)},
                        {"device_to_host_s", median(d2h)}, {"host_share", !a.gpu_only}, {"chunks", chunks},
                        {"host_elements", median(host_elements)}};
    // The checksum is printed as a bare JSON integer even beyond 64 bits.
    std::string text = j.dump();
    text.insert(text.size() - 1, ",\"checksum\":" + to_decimal(sum));
    std::cout << text << "\n";
  } else {
    std::printf("backend   %s (%s)\n", backend_name(dev->backend), device.c_str());
    std::printf("n         %lld from %lld, iterations %lld, p %lld, mu %lld%s\n", static_cast<long long>(a.n),
                static_cast<long long>(a.first), static_cast<long long>(a.iterations), static_cast<long long>(a.p),
                static_cast<long long>(a.mu), a.resident ? ", resident (device time only)" : a.pinned ? ", pinned host memory" : "");
    std::printf("time      %.6f s median of %lld (min %.6f, max %.6f)\n", median(wall), static_cast<long long>(a.repeat),
                *std::min_element(wall.begin(), wall.end()), *std::max_element(wall.begin(), wall.end()));
    if (median(h2d) > 0 || median(d2h) > 0)
      std::printf("split     host->device %.6f s, kernel %.6f s, device->host %.6f s\n", median(h2d), median(kernel),
                  median(d2h));
    if (median(host_elements) > 0)
      std::printf("host      computed %.0f of the %lld elements (%.1f%%, median; --gpu-only: none)\n",
                  median(host_elements), static_cast<long long>(a.n), 100.0 * median(host_elements) / static_cast<double>(a.n));
    std::printf("checksum  %s\n", to_decimal(sum).c_str());
  }
  return 0;
}

}  // namespace kiln::cli
