// The measuring program behind programs-pocl-before-after.txt: the seed's map as a kiln::program, timed with run_program on one backend.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include "kiln/kiln.hpp"
int main(int argc, char** argv) {
  using i64 = std::int64_t;
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : (1u << 22);
  const char* backend = argc > 2 ? argv[2] : "opencl";
  auto w = [](kiln::program_op o) { return static_cast<i64>(o); };
  using op = kiln::program_op;
  const std::vector<i64> code{w(op::param), 1, w(op::x), w(op::mul), w(op::x), w(op::literal), 1, w(op::add),
                              w(op::mul), w(op::param), 0, w(op::rem)};
  const std::vector<i64> params{6700417, 22};
  std::vector<i64> in(n), out(n), want(n);
  for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<i64>(i) + 1;
  if (!kiln::logistic_map(in, want, {6700417, 22, 10}).ok()) return 1;
  kiln::run_options o; o.backend = backend;
  std::vector<double> t;
  for (int r = 0; r < 6; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto res = kiln::run_program({code, params, 10}, in, out, o);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!res.ok()) { std::printf("error %s\n", res.err().message.c_str()); return 1; }
    if (out != want) { std::printf("MISMATCH\n"); return 1; }
    if (r) t.push_back(s);
  }
  std::sort(t.begin(), t.end());
  std::printf("%s n=%zu median %.2f ms (min %.2f, max %.2f)\n", backend, n, t[t.size()/2]*1e3, t.front()*1e3, t.back()*1e3);
}
