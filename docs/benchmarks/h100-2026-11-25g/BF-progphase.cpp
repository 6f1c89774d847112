// The seed's map as a kiln::program on CUDA, 2^25 elements from ordinary memory: end to end and the kernels' time (phase_times).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "kiln/kiln.hpp"
int main(int argc, char** argv) {
  using i64 = std::int64_t;
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : (std::size_t{1} << 25);
  auto w = [](kiln::program_op o) { return static_cast<i64>(o); };
  using op = kiln::program_op;
  const std::vector<i64> code{w(op::param), 1, w(op::x), w(op::mul), w(op::x), w(op::literal), 1, w(op::add),
                              w(op::mul), w(op::param), 0, w(op::rem)};
  const std::vector<i64> params{6700417, 22};
  std::vector<i64> in(n), out(n), want(n);
  for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<i64>(i) + 1;
  if (!kiln::logistic_map(in, want, {6700417, 22, 10}).ok()) return 1;
  for (bool phases : {false, true}) {
    kiln::run_options o;
    o.backend = "cuda";
    o.phase_times = phases;
    std::vector<double> t, k;
    for (int r = 0; r < 10; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      auto res = kiln::run_program({code, params, 10}, in, out, o);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!res.ok()) { std::printf("error %s\n", res.err().message.c_str()); return 1; }
      if (out != want) { std::printf("MISMATCH\n"); return 1; }
      if (r) { t.push_back(s); k.push_back(res->kernel_s); }
    }
    std::sort(t.begin(), t.end());
    std::sort(k.begin(), k.end());
    std::printf("program cuda n=%zu%s: median %.2f ms (min %.2f, max %.2f), kernels summed over chunks %.2f ms\n", n,
                phases ? " (phase_times)" : "", t[t.size() / 2] * 1e3, t.front() * 1e3, t.back() * 1e3, k[k.size() / 2] * 1e3);
  }
  kiln::run_options o;
  o.backend = "cuda";
  o.phase_times = true;
  o.host_share = false;
  auto res = kiln::logistic_map(in, out, {6700417, 22, 10}, o);
  if (res.ok()) std::printf("built-in map cuda (phase_times, device only): %.2f ms, kernels summed %.2f ms\n", res->total_s * 1e3, res->kernel_s * 1e3);
}
