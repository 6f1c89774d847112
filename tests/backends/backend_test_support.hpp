// Helpers the backend test suites share: reference results, seeded inputs, options and device lists.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"

namespace kiln_test {

using i64 = std::int64_t;
constexpr i64 kMin = std::numeric_limits<i64>::min();
constexpr i64 kMax = std::numeric_limits<i64>::max();

// Inputs at the edges for modulus p: around 0, p, 2^32, 2^51 (where the SIMD residue changes
// path), 2^53 (where doubles stop being exact) and the ends of int64.
inline std::vector<i64> edge_inputs(i64 p) {
  return {0, 1, -1, 2, -2, kMin, kMax, kMin + 1, kMax - 1, p - 1, p, p + 1, -p, -p + 1, -p - 1,
          i64{1} << 32, -(i64{1} << 32), (i64{1} << 32) + 1, (i64{1} << 32) - 1,
          i64{1} << 53, (i64{1} << 53) + 1, -(i64{1} << 53) - 1, i64{1} << 62, 6700416, 123456789,
          (i64{1} << 51) - 1, i64{1} << 51, -(i64{1} << 51) + 1, -(i64{1} << 51)};
}

// The map element by element through the one-thread reference.
inline std::vector<i64> reference(const std::vector<i64>& in, const kiln::map_params& prm) {
  std::vector<i64> out(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = kiln::logistic_map_reference(in[i], prm);
  return out;
}

// n int64 drawn uniformly from the whole range, the same for the same seed.
inline std::vector<i64> random_inputs(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<i64> v(n);
  for (auto& x : v) x = static_cast<i64>(rng());
  return v;
}

// Host sharing is off unless asked for, so that a device's suite checks what the device computed.
inline kiln::run_options options_for(const char* backend, std::size_t chunk = 0, int device = 0,
                                     bool phase_times = false, bool host_share = false) {
  kiln::run_options o;
  o.backend = backend;
  o.device = device;
  o.chunk_elements = chunk;
  o.phase_times = phase_times;
  o.host_share = host_share;
  return o;
}

// The map's output from the multicore `cpu` backend: the conformance suite checks it against the
// reference, and it is fast enough for millions of elements.
inline std::vector<i64> cpu_expected(const std::vector<i64>& in, const kiln::map_params& prm) {
  std::vector<i64> out(in.size());
  kiln::run_options o;
  o.backend = "cpu";
  auto r = kiln::logistic_map(in, out, prm, o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
  return out;
}

inline std::vector<kiln::device_info> devices_of(kiln::backend_kind kind) {
  std::vector<kiln::device_info> out;
  for (auto& d : kiln::devices())
    if (d.backend == kind) out.push_back(d);
  return out;
}

// The index of the first element where two arrays differ, for a short failure message.
inline std::string first_difference(const std::vector<i64>& got, const std::vector<i64>& want) {
  if (got.size() != want.size()) return "sizes differ: " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  auto it = std::mismatch(got.begin(), got.end(), want.begin());
  if (it.first == got.end()) return "equal";
  auto i = static_cast<std::size_t>(it.first - got.begin());
  return "first difference at " + std::to_string(i) + ": got " + std::to_string(got[i]) + ", want " +
         std::to_string(want[i]);
}

}  // namespace kiln_test
