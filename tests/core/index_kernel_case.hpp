// A kernel of two arrays and two outputs that reads `index`, with seeded arrays and the cpu backend's results: for runs cut into slices.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "kiln/kernel.hpp"
#include "kiln/kiln.hpp"

namespace kiln_test {

// {x + y * index, x - index} over n elements (x in (-10^6, 10^6), y in (-10^3, 10^3), so nothing
// overflows), with what the cpu backend makes of them in one run. A run cut into slices gives the
// same only where each slice's kernel counts `index` from its place in the run.
struct index_kernel_case {
  std::vector<std::int64_t> code, x, y, want0, want1;
  kiln::kernel kernel() const { return kiln::kernel{code, 2, 2, 0, 1}; }
  std::vector<kiln::arg> args() const { return {kiln::arg::of_array(x), kiln::arg::of_array(y)}; }
};

inline index_kernel_case make_index_kernel_case(std::size_t n) {
  using kiln::op;
  auto w = [](op o) { return static_cast<std::int64_t>(o); };
  index_kernel_case c;
  c.code = {w(op::arg), 0, w(op::arg), 1, w(op::index), w(op::mul), w(op::add), w(op::arg), 0, w(op::index), w(op::sub)};
  std::mt19937_64 rx(5), ry(6);
  c.x.resize(n);
  c.y.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    c.x[i] = static_cast<std::int64_t>(rx()) % 1'000'000;
    c.y[i] = static_cast<std::int64_t>(ry()) % 1'000;
  }
  c.want0.assign(n, 0);
  c.want1.assign(n, 0);
  kiln::run_options cpu;
  cpu.backend = "cpu";
  const auto args = c.args();
  EXPECT_TRUE(kiln::run(c.kernel(), args, std::vector<std::span<std::int64_t>>{c.want0, c.want1}, cpu).ok());
  return c;
}

}  // namespace kiln_test
