// `kiln devices` and `kiln run`: the CLI boundary where error values become messages and exit codes.
#include "cli/commands.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"

namespace kiln::cli {
namespace {

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

int run(const run_args& a) {
  map_params params{a.p, a.mu, a.iterations};
  if (auto s = validate(params); !s) return fail(s.err());
  run_options opts;
  opts.backend = a.backend;
  opts.device = a.device;
  opts.chunk_elements = a.chunk;
  opts.host_share = !a.gpu_only;
  if (a.n > 0 && a.first > std::numeric_limits<std::int64_t>::max() - (a.n - 1))
    return fail(error{errc::invalid_argument, "--first " + std::to_string(a.first) + " with --n " +
                                                  std::to_string(a.n) + " runs past the largest int64"});
  auto dev = resolve(opts);
  if (!dev) return fail(dev.err());

  // Ordinary (pageable) vectors by default; --pinned uses Kiln's host blocks instead.
  const auto n = static_cast<std::size_t>(a.n);
  std::vector<std::int64_t> in_vec, out_vec;
  host_memory in_mem, out_mem;
  if (a.pinned) {
    auto im = host_memory::allocate(n), om = host_memory::allocate(n);
    if (!im) return fail(im.err());
    if (!om) return fail(om.err());
    in_mem = std::move(im).value();
    out_mem = std::move(om).value();
  } else {
    in_vec.resize(n);
    out_vec.resize(n);
  }
  std::span<std::int64_t> in = a.pinned ? in_mem.span() : std::span<std::int64_t>(in_vec);
  std::span<std::int64_t> out = a.pinned ? out_mem.span() : std::span<std::int64_t>(out_vec);
  for (std::size_t i = 0; i < n; ++i) in[i] = a.first + static_cast<std::int64_t>(i);

  std::vector<double> wall, h2d, kernel, d2h, host_elements;
  std::size_t chunks = 0;
  std::string device = dev->name;  // the run's own: with --device all, every device it used
  for (int i = 0; i < a.warmup + a.repeat; ++i) {
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
  // The split comes from one more run with phase timing (resident runs always time their kernel).
  if (a.phases && !a.resident) {
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
    std::printf("time      %.6f s median of %d (min %.6f, max %.6f)\n", median(wall), a.repeat,
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
