// kiln::run over kernels against a 128-bit per-element reference: random kernels, every op's edges, validation, aliasing, the built-in map.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/kernel_ir.hpp"
#include "index_kernel_case.hpp"
#include "kernel_reference.hpp"
#include "kiln/kernel.hpp"
#include "kiln/kiln.hpp"

namespace {

using namespace kiln_test;
using kiln::op;

kiln::run_options on(const char* backend) {
  kiln::run_options o;
  o.backend = backend;
  return o;
}

// Whether an OpenCL device can run kernels here (PoCL on a machine without a GPU).
bool opencl_usable(std::string& why) {
  for (const auto& d : kiln::devices())
    if (d.backend == kiln::backend_kind::opencl) {
      if (d.available) return true;
      why = d.reason;
    }
  if (why.empty()) why = "no opencl backend in this build";
  return false;
}

// Inputs: edge values and their neighbourhoods, small numbers and random ones over the range.
std::vector<i64> inputs(std::size_t n, std::mt19937_64& rng, bool small) {
  std::vector<i64> v(n);
  const auto& edges = edge_values();
  for (auto& x : v) {
    const auto r = rng() % 8;
    if (small) x = r == 0 ? edges[rng() % 4] : static_cast<i64>(rng() % 2001) - 1000;
    else if (r < 2) x = edges[rng() % edges.size()];
    else if (r == 2) x = edges[rng() % edges.size()] + static_cast<i64>(rng() % 5) - 2;  // wraps at the ends
    else if (r < 5) x = static_cast<i64>(rng() % 2001) - 1000;
    else if (r == 5) x = static_cast<i64>(rng());
    else x = static_cast<i64>(rng()) >> (rng() % 64);
  }
  return v;
}

// What a kernel should give over some arrays: every element's values, or the first fault.
struct expectation {
  std::vector<std::vector<i64>> outputs;  // where nothing faults
  std::optional<std::size_t> first;       // the first faulting element
  ref_outcome fault;
};

expectation expect(const random_kernel& g, const std::vector<kiln::arg>& args, std::size_t n) {
  const reference ref(g.code, g.outputs, g.locals, g.iterations, args);
  expectation e;
  e.outputs.assign(g.outputs, std::vector<i64>(n));
  for (std::size_t i = 0; i < n; ++i) {
    ref_outcome o = ref.element(i);
    if (o.fault != ref_fault::none) {
      e.first = i;
      e.fault = o;
      return e;
    }
    for (std::size_t j = 0; j < g.outputs; ++j) e.outputs[j][i] = o.values[j];
  }
  return e;
}

std::vector<kiln::arg> bind_args(const random_kernel& g, const std::vector<std::vector<i64>>& arrays) {
  std::vector<kiln::arg> args;
  std::size_t a = 0;
  for (std::size_t k = 0; k < g.array.size(); ++k)
    args.push_back(g.array[k] ? kiln::arg::of_array(arrays[a++]) : kiln::arg::of_scalar(g.scalars[k]));
  return args;
}

// The start every fault's message has: the element, and for kernels of one array its input and
// the application of the kernel.
std::string fault_prefix(std::size_t index, const ref_outcome& o, const std::vector<std::vector<i64>>& arrays) {
  std::string s = "element " + std::to_string(index);
  if (arrays.size() == 1) s += " (" + std::to_string(arrays[0][index]) + "), iteration " + std::to_string(o.application);
  return s + ": ";
}

std::string describe(const random_kernel& g) {
  std::string s = "kernel {";
  for (auto c : g.code) s += std::to_string(c) + ",";
  s += "} args";
  for (std::size_t a = 0; a < g.array.size(); ++a) {
    s += ' ';
    s += g.array[a] ? std::string("[array]") : std::to_string(g.scalars[a]);
  }
  return s + " outputs " + std::to_string(g.outputs) + " locals " + std::to_string(g.locals) + " iterations " +
         std::to_string(g.iterations);
}

// Runs a kernel on one backend (in place: each output j < arrays aliasing array (j + rotate) mod
// arrays, so that an output may also take the place of an array another output reads, as the
// NIF's list results do) and checks it against the expectation. Returns false on a mismatch
// (reported through gtest).
bool run_and_compare(const random_kernel& g, const std::vector<std::vector<i64>>& arrays, const expectation& e,
                     const char* backend, bool in_place, std::size_t chunk = 0, std::size_t rotate = 0) {
  const std::size_t n = arrays[0].size();
  std::vector<std::vector<i64>> data = arrays;  // the run's own copies (in place overwrites them)
  std::vector<std::vector<i64>> outs(g.outputs, std::vector<i64>(n, 0x5a5a));
  std::vector<std::span<i64>> out_spans;
  for (std::size_t j = 0; j < g.outputs; ++j)
    out_spans.push_back(in_place && j < data.size() ? std::span<i64>(data[(j + rotate) % data.size()])
                                                    : std::span<i64>(outs[j]));
  const auto args = bind_args(g, data);
  kiln::run_options options = on(backend);
  options.chunk_elements = chunk;
  auto r = kiln::run(g.view(), args, out_spans, options);
  const std::string what = std::string(backend) + (in_place ? " in place, rotated by " + std::to_string(rotate) : "") +
                           ": " + describe(g);
  if (!e.first) {
    EXPECT_TRUE(r.ok()) << what << ": " << r.err().message;
    if (!r.ok()) return false;
    for (std::size_t j = 0; j < g.outputs; ++j)
      for (std::size_t i = 0; i < n; ++i)
        if (out_spans[j][i] != e.outputs[j][i]) {
          ADD_FAILURE() << what << ": output " << j << " element " << i << " is " << out_spans[j][i] << ", expected "
                        << e.outputs[j][i];
          return false;
        }
    return true;
  }
  const ref_outcome& f = e.fault;
  EXPECT_FALSE(r.ok()) << what << ": element " << *e.first << " should fault (" << fault_phrase(f.fault) << ")";
  if (r.ok()) return false;
  const auto want_code = is_arithmetic(f.fault) ? kiln::errc::arithmetic : kiln::errc::invalid_argument;
  const std::string prefix = fault_prefix(*e.first, f, arrays);
  const bool good = r.err().code == want_code && r.err().message.rfind(prefix, 0) == 0 &&
                    r.err().message.find(fault_phrase(f.fault)) != std::string::npos;
  EXPECT_TRUE(good) << what << ": got " << kiln::errc_name(r.err().code) << " \"" << r.err().message
                    << "\", expected " << kiln::errc_name(want_code) << " \"" << prefix << "..."
                    << fault_phrase(f.fault) << "...\"";
  return good;
}

struct tally {
  std::size_t kernels = 0, clean = 0, faulted = 0, elements = 0, lowered = 0;
};

// One random case: its kernel, arrays and expectation.
struct random_case {
  random_kernel g;
  std::vector<std::vector<i64>> arrays;
  expectation e;
};

random_case make_case(std::mt19937_64& rng, kernel_generator& gen, bool single, std::size_t n, tally& t) {
  random_case c;
  const bool small = rng() % 2 == 0;
  const std::size_t arrays = single ? 1 : 1 + rng() % 3;
  const std::size_t outputs = single ? 1 : 1 + rng() % 3;
  c.g = gen.make(arrays, rng() % 4, outputs, 1 + static_cast<int>(rng() % 4), small);
  if (arrays == 1 && outputs == 1 && rng() % 3 == 0) c.g.iterations = static_cast<i64>(rng() % 4);
  for (std::size_t a = 0; a < arrays; ++a) c.arrays.push_back(inputs(n, rng, small));
  const auto args = bind_args(c.g, c.arrays);
  c.e = expect(c.g, args, n);
  t.kernels++;
  (c.e.first ? t.faulted : t.clean)++;
  t.elements += c.e.first ? *c.e.first + 1 : n;
  t.lowered += reference(c.g.code, c.g.outputs, c.g.locals, c.g.iterations, args).lowered() > 0;
  return c;
}

// ---- random kernels --------------------------------------------------------------------------

// KILN_KERNEL_TEST_SEED (and KILN_KERNEL_TEST_ROUNDS) explore other random kernels than the
// fixed seed's; a failure names its round and kernel.
std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

TEST(KernelRandom, HostBackendsMatchTheReference) {
  std::mt19937_64 rng(env_or("KILN_KERNEL_TEST_SEED", 20261202));
  kernel_generator gen(rng);
  tally t;
  const int rounds = static_cast<int>(env_or("KILN_KERNEL_TEST_ROUNDS", 1200));
  for (int round = 0; round < rounds; ++round) {
    const std::size_t n = 1 + rng() % 6000;
    random_case c = make_case(rng, gen, false, n, t);
    auto v = kiln::validate(c.g.view(), bind_args(c.g, c.arrays));
    ASSERT_TRUE(v.ok()) << v.err().message << "\n" << describe(c.g);
    for (const char* b : {"scalar", "cpu"}) {
      const bool in_place = rng() % 3 == 0;
      ASSERT_TRUE(run_and_compare(c.g, c.arrays, c.e, b, in_place, 0, static_cast<std::size_t>(round)))
          << "round " << round;
    }
  }
  std::cout << "[ kernels ] " << t.kernels << " kernels (" << t.clean << " without a fault, " << t.faulted
            << " with one, " << t.lowered << " with an exact rem of a product), " << t.elements
            << " element checks per backend\n";
  // Both outcomes, and the lowering, were exercised.
  EXPECT_GT(t.clean, t.kernels / 5);
  EXPECT_GT(t.faulted, t.kernels / 5);
  EXPECT_GT(t.lowered, t.kernels / 10);
  if (rounds >= 1200) {
    EXPECT_GT(t.elements, std::size_t{1'000'000});
  }
}

// Kernels of one array and one output, iterated: the shape GPU backends stream.
TEST(KernelRandom, IteratedSingleArrayKernelsMatchTheReference) {
  std::mt19937_64 rng(7);
  kernel_generator gen(rng);
  tally t;
  for (int round = 0; round < 300; ++round) {
    random_case c = make_case(rng, gen, true, 1 + rng() % 2000, t);
    c.g.iterations = static_cast<i64>(rng() % 5);
    c.e = expect(c.g, bind_args(c.g, c.arrays), c.arrays[0].size());
    for (const char* b : {"scalar", "cpu"})
      ASSERT_TRUE(run_and_compare(c.g, c.arrays, c.e, b, rng() % 2 == 0)) << "round " << round;
  }
}

// The OpenCL backend compiles each kernel (kernel_source) and streams it: the generated C must
// compile and agree with the reference, faults included.
TEST(KernelRandom, OpenCLMatchesTheReference) {
  std::string why;
  if (!opencl_usable(why)) GTEST_SKIP() << "opencl unavailable: " << why;
  std::mt19937_64 rng(env_or("KILN_KERNEL_TEST_SEED", 99));
  kernel_generator gen(rng);
  tally t;
  const auto t0 = std::chrono::steady_clock::now();
  // Few kernels (each is a compile, about a second with PoCL when its cache is cold), many elements.
  for (int round = 0; round < 12; ++round) {
    random_case c = make_case(rng, gen, true, 1 + rng() % 20'000, t);
    // Odd rounds in chunks of 777 elements: `index` counts from each chunk's base, and the
    // first fault is the lowest over the chunks.
    ASSERT_TRUE(run_and_compare(c.g, c.arrays, c.e, "opencl", rng() % 2 == 0, round % 2 ? 777 : 0))
        << "round " << round;
  }
  std::cout << "[ opencl  ] " << t.kernels << " kernels, " << t.elements << " element checks in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
}

// ---- each operation's edges ----------------------------------------------------------------------

// One element through a kernel `arg 0 [arg 1] <op>` on both host backends, against the reference.
void check_op(op o, i64 a, std::optional<i64> b, const char* backend) {
  random_kernel g;
  g.code = {w(op::arg), 0};
  if (b) g.code.insert(g.code.end(), {w(op::arg), 1});
  g.code.push_back(w(o));
  if (o >= op::eq && o <= op::ge)  // a boolean is no output: if a < b, do: 1, else: 0
    g.code.insert(g.code.end(), {w(op::if_then), w(op::literal), 1, w(op::if_else), w(op::literal), 0, w(op::if_end)});
  g.array = b ? std::vector<bool>{true, true} : std::vector<bool>{true};
  g.scalars.assign(g.array.size(), 0);
  std::vector<std::vector<i64>> arrays{{a}};
  if (b) arrays.push_back({*b});
  const auto e = expect(g, bind_args(g, arrays), 1);
  ASSERT_TRUE(run_and_compare(g, arrays, e, backend, false)) << "a = " << a << (b ? ", b = " + std::to_string(*b) : "");
}

TEST(KernelOps, EveryBinaryOperationOnEdgePairs) {
  std::vector<i64> edges = edge_values();
  for (i64 v : {65, -65, 127, 128, -128, 10, 5, -5}) edges.push_back(v);
  for (op o : {op::add, op::sub, op::mul, op::div, op::rem, op::min, op::max, op::pow, op::band, op::bor, op::bxor,
               op::bsl, op::bsr, op::eq, op::ne, op::lt, op::le, op::gt, op::ge})
    for (i64 a : edges)
      for (i64 b : edges)
        for (const char* backend : {"scalar", "cpu"}) {
          check_op(o, a, b, backend);
          if (HasFatalFailure()) return;
        }
  for (op o : {op::neg, op::abs, op::bnot})
    for (i64 a : edges) {
      check_op(o, a, std::nullopt, "cpu");
      if (HasFatalFailure()) return;
    }
}

// Runs `code` over one array `xs` (plus scalars) on cpu; the single output or the error.
kiln::result<std::vector<i64>> run1(const std::vector<i64>& code, std::vector<i64> xs, std::vector<i64> scalars = {},
                                    std::size_t locals = 4, const char* backend = "cpu") {
  std::vector<kiln::arg> args{kiln::arg::of_array(xs)};
  for (i64 s : scalars) args.push_back(kiln::arg::of_scalar(s));
  std::vector<i64> out(xs.size());
  const std::span<i64> outs[] = {out};
  auto r = kiln::run(kiln::kernel{code, args.size(), 1, locals, 1}, args, outs, on(backend));
  if (!r) return r.err();
  return out;
}

// The output of a run that must succeed.
std::vector<i64> values(kiln::result<std::vector<i64>> r) {
  if (!r.ok()) {
    ADD_FAILURE() << r.err().message;
    return {};
  }
  return std::move(r).value();
}

// Known values, written out: Elixir's answers for the cases where C++ and Elixir part ways.
TEST(KernelOps, KnownValuesAtTheEdges) {
  struct known {
    op o;
    i64 a, b;
    std::optional<i64> value;  // nullopt: the element faults
    kiln::errc code = kiln::errc::invalid_argument;
  };
  const known cases[] = {
      {op::div, -7, 2, -3}, {op::rem, -7, 2, -1}, {op::rem, 7, -2, 1}, {op::div, 7, -2, -3},
      {op::div, int64_min, -1, std::nullopt}, {op::rem, int64_min, -1, 0}, {op::div, int64_min, 1, int64_min},
      {op::div, 1, 0, std::nullopt, kiln::errc::arithmetic}, {op::rem, 0, 0, std::nullopt, kiln::errc::arithmetic},
      {op::pow, 0, 0, 1}, {op::pow, 2, 62, i64{1} << 62}, {op::pow, 2, 63, std::nullopt}, {op::pow, -2, 63, int64_min},
      {op::pow, -1, int64_max, -1}, {op::pow, 1, int64_max, 1}, {op::pow, 0, int64_max, 0},
      {op::pow, 3, -1, std::nullopt, kiln::errc::arithmetic}, {op::pow, 0, -1, std::nullopt, kiln::errc::arithmetic},
      {op::pow, 3'037'000'499, 2, 3'037'000'499LL * 3'037'000'499LL}, {op::pow, 3'037'000'500, 2, std::nullopt},
      {op::bsl, 1, 62, i64{1} << 62}, {op::bsl, 1, 63, std::nullopt}, {op::bsl, -1, 63, int64_min},
      {op::bsl, -1, 64, std::nullopt}, {op::bsl, 0, int64_max, 0}, {op::bsl, 5, -1, 2}, {op::bsl, -5, -1, -3},
      {op::bsl, -5, int64_min, -1}, {op::bsl, 5, int64_min, 0}, {op::bsl, int64_min, 0, int64_min},
      {op::bsr, 5, 64, 0}, {op::bsr, -5, 64, -1}, {op::bsr, int64_min, 63, -1}, {op::bsr, int64_max, 63, 0},
      {op::bsr, -1, 1000, -1}, {op::bsr, 1, -62, i64{1} << 62}, {op::bsr, 1, -63, std::nullopt},
      {op::bsr, -1, -63, int64_min}, {op::bsr, 0, int64_min, 0}, {op::bsr, 1, int64_min, std::nullopt},
      {op::bsr, -7, 1, -4}, {op::band, -1, int64_min, int64_min}, {op::bor, int64_min, 1, int64_min + 1},
      {op::bxor, -1, int64_max, int64_min}, {op::add, int64_max, 1, std::nullopt}, {op::add, int64_min, -1, std::nullopt},
      {op::sub, int64_min, 1, std::nullopt}, {op::sub, -1, int64_max, int64_min}, {op::mul, int64_min, -1, std::nullopt},
      {op::mul, int64_min, 1, int64_min}, {op::mul, 3'037'000'500, 3'037'000'500, std::nullopt},
      {op::min, int64_min, int64_max, int64_min}, {op::max, int64_min, int64_max, int64_max},
  };
  for (const auto& c : cases)
    for (const char* backend : {"scalar", "cpu"}) {
      auto r = run1({w(op::arg), 0, w(op::arg), 1, w(c.o)}, {c.a}, {c.b}, 0, backend);
      const std::string what = std::string(backend) + " op " + std::to_string(w(c.o)) + "(" + std::to_string(c.a) +
                               ", " + std::to_string(c.b) + ")";
      if (c.value) {
        ASSERT_TRUE(r.ok()) << what << ": " << r.err().message;
        EXPECT_EQ((*r)[0], *c.value) << what;
      } else {
        ASSERT_FALSE(r.ok()) << what << " gave " << (*r)[0];
        EXPECT_EQ(r.err().code, c.code) << what << ": " << r.err().message;
      }
    }
  // The unary ones.
  EXPECT_FALSE(run1({w(op::arg), 0, w(op::neg)}, {int64_min}).ok());
  EXPECT_FALSE(run1({w(op::arg), 0, w(op::abs)}, {int64_min}).ok());
  EXPECT_EQ(values(run1({w(op::arg), 0, w(op::abs)}, {int64_min + 1})), std::vector<i64>{int64_max});
  EXPECT_EQ(values(run1({w(op::arg), 0, w(op::bnot)}, {int64_min, 0, -1})), (std::vector<i64>{int64_max, -1, 0}));
  // Index counts from 0 across blocks and threads.
  std::vector<i64> zeros(100'000, 0), want(zeros.size());
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = static_cast<i64>(i);
  EXPECT_EQ(values(run1({w(op::index), w(op::arg), 0, w(op::add)}, zeros)), want);
}

// rem of a product by a small divisor never faults on the product (only on its leaves), and
// equals residues computed in 128 bits; by a divisor beyond 2^32 - 1 (or an array's element) the
// product is an ordinary value again and faults where it does not fit.
TEST(KernelOps, RemOfAProductIsExactOnlyWhereLowered) {
  std::mt19937_64 rng(3);
  const auto xs = inputs(4000, rng, false);
  // rem(x * (x - 3) * p1 * (x + p1), p0): 4 factors, two of them sums.
  const std::vector<i64> code{w(op::arg), 0, w(op::arg), 0, w(op::literal), 3, w(op::sub), w(op::mul), w(op::arg), 2,
                              w(op::mul), w(op::arg), 0, w(op::arg), 2, w(op::add), w(op::mul), w(op::arg), 1,
                              w(op::rem)};
  for (i64 p : {i64{1}, i64{-1}, i64{2}, i64{4'294'967'291}, i64{4'294'967'295}, i64{-4'294'967'295}, i64{6'700'417}}) {
    for (i64 mu : {int64_min, int64_max, i64{-3}, i64{0}}) {
      auto r = run1(code, xs, {p, mu}, 0, "scalar");
      ASSERT_TRUE(r.ok()) << "p = " << p << ", mu = " << mu << ": " << r.err().message;
      const u128 up = static_cast<u128>(p < 0 ? -static_cast<i128>(p) : p);
      for (std::size_t i = 0; i < xs.size(); ++i) {
        const i128 f[] = {xs[i], static_cast<i128>(xs[i]) - 3, mu, static_cast<i128>(xs[i]) + mu};
        u128 res = 1 % up;
        bool neg = false, zero = false;
        for (i128 v : f) {
          const u128 mag = v < 0 ? static_cast<u128>(-v) : static_cast<u128>(v);
          res = res * (mag % up) % up;
          neg ^= v < 0;
          zero |= v == 0;
        }
        const i64 want = zero ? 0 : neg ? -static_cast<i64>(res) : static_cast<i64>(res);
        ASSERT_EQ((*r)[i], want) << "x = " << xs[i] << ", p = " << p << ", mu = " << mu;
      }
    }
  }
  // Beyond 2^32 - 1: the product is checked (x * x for x = 2^32 does not fit).
  auto wide = run1({w(op::arg), 0, w(op::arg), 0, w(op::mul), w(op::arg), 1, w(op::rem)}, {3, i64{1} << 32},
                   {i64{1} << 32});
  ASSERT_FALSE(wide.ok());
  EXPECT_EQ(wide.err().code, kiln::errc::invalid_argument);
  EXPECT_EQ(wide.err().message.rfind("element 1 (4294967296), iteration 1: ", 0), 0u) << wide.err().message;
  // A leaf's own operation still faults: rem(abs(x) * x, 7) at x = INT64_MIN.
  auto leaf = run1({w(op::arg), 0, w(op::abs), w(op::arg), 0, w(op::mul), w(op::literal), 7, w(op::rem)},
                   {5, int64_min});
  ASSERT_FALSE(leaf.ok());
  EXPECT_NE(leaf.err().message.find("element 1 "), std::string::npos) << leaf.err().message;
  // A sum at the top: rem(x + x, 10) is exact at INT64_MAX (2^64 - 2 mod 10 = 4), and
  // rem(INT64_MIN - x, 3) at x = 1 (-2^63 - 1: rem -> -(2^63 + 1 mod 3) = -0).
  EXPECT_EQ(values(run1({w(op::arg), 0, w(op::arg), 0, w(op::add), w(op::literal), 10, w(op::rem)}, {int64_max})),
            std::vector<i64>{4});
  EXPECT_EQ(values(run1({w(op::literal), int64_min, w(op::arg), 0, w(op::sub), w(op::literal), 3, w(op::rem)}, {1, 2})),
            (std::vector<i64>{0, -1}));
}

// Only the branch taken is evaluated: a fault in the other does not count; `and`/`or` written as
// branches short-circuit; `fail` faults only where reached, with its reason.
TEST(KernelOps, OnlyTheBranchTakenCounts) {
  const i64 t = w(op::if_then), e = w(op::if_else), end = w(op::if_end);
  // if x == 0, do: -1, else: div(1000, x)
  const std::vector<i64> guarded{w(op::arg), 0, w(op::literal), 0, w(op::eq), t, w(op::literal), -1, e,
                                 w(op::literal), 1000, w(op::arg), 0, w(op::div), end};
  std::vector<i64> xs(10'000);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<i64>(i % 7) - 3;
  for (const char* b : {"scalar", "cpu"}) {
    auto r = run1(guarded, xs, {}, 0, b);
    ASSERT_TRUE(r.ok()) << r.err().message;
    for (std::size_t i = 0; i < xs.size(); ++i) ASSERT_EQ((*r)[i], xs[i] == 0 ? -1 : 1000 / xs[i]);
  }
  // cond do x > 0 -> x; x < 0 -> -x end: no clause for x == 0 (element 2).
  const std::vector<i64> cond{w(op::arg), 0, w(op::literal), 0, w(op::gt), t, w(op::arg), 0, e, w(op::arg), 0,
                              w(op::literal), 0, w(op::lt), t, w(op::arg), 0, w(op::neg), e, w(op::fail), 0, end, end};
  EXPECT_EQ(values(run1(cond, {3, -4})), (std::vector<i64>{3, 4}));
  auto r = run1(cond, {3, -4, 0, 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::arithmetic);
  EXPECT_EQ(r.err().message, "element 2 (0), iteration 1: no cond clause evaluated to a truthy value");
  const std::vector<i64> case_fail{w(op::arg), 0, w(op::literal), 1, w(op::eq), t, w(op::literal), 10, e, w(op::fail),
                                   1, end};
  r = run1(case_fail, {1, 1, 2});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "element 2 (2), iteration 1: no case clause matching");
  // A fault in the branch taken counts: abs(INT64_MIN) where x < 0.
  r = run1({w(op::arg), 0, w(op::literal), 0, w(op::lt), t, w(op::arg), 0, w(op::abs), e, w(op::arg), 0, end},
           {5, 0, -7, int64_min, int64_max});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::invalid_argument);
  EXPECT_EQ(r.err().message.rfind("element 3 (", 0), 0u) << r.err().message;
}

// Elixir's ranges: first..last//step, empty ranges, negative steps, step 0, bounds at the ends
// of int64 (no overflow stepping past last).
TEST(KernelOps, LoopsFollowElixirRanges) {
  // acc = x; for i <- p0..p1//p2, do: acc = bxor(band(acc, 2^40 - 1) * 3, i); acc
  const i64 mask = (i64{1} << 40) - 1;
  const std::vector<i64> code{w(op::arg), 0, w(op::local_set), 0, w(op::arg), 1, w(op::arg), 2, w(op::arg), 3,
                              w(op::loop_begin), 1, w(op::local_get), 0, w(op::literal), mask, w(op::band),
                              w(op::literal), 3, w(op::mul), w(op::local_get), 1, w(op::bxor), w(op::local_set), 0,
                              w(op::loop_end), w(op::local_get), 0};
  auto expected = [&](i64 x, i64 first, i64 last, i64 step) {
    i64 acc = x;
    for (i128 i = first; step > 0 ? i <= last : i >= last; i += step) acc = ((acc & mask) * 3) ^ static_cast<i64>(i);
    return acc;
  };
  struct range {
    i64 first, last, step;
  };
  const range ranges[] = {{1, 5, 1},   {5, 1, 1},   {5, 1, -1},  {1, 5, -1},  {1, 10, 3},  {10, 1, -4},
                          {0, 0, 1},   {0, 0, -1},  {-3, 3, 2},  {3, -3, -2}, {1, 1, 100}, {2, 1, 1},
                          {int64_max - 2, int64_max, 1}, {int64_min + 2, int64_min, -1},
                          {int64_max - 10, int64_max, 4}, {int64_min, int64_min + 5, int64_max}};
  for (const auto& rg : ranges)
    for (const char* b : {"scalar", "cpu"}) {
      auto r = run1(code, {0, 1, -2}, {rg.first, rg.last, rg.step}, 2, b);
      ASSERT_TRUE(r.ok()) << rg.first << ".." << rg.last << "//" << rg.step << ": " << r.err().message;
      for (i64 x : {0, 1, -2}) {
        const std::size_t i = static_cast<std::size_t>(x == 0 ? 0 : x == 1 ? 1 : 2);
        EXPECT_EQ((*r)[i], expected(x, rg.first, rg.last, rg.step)) << rg.first << ".." << rg.last << "//" << rg.step;
      }
    }
  // Step 0: ArgumentError, for the first element.
  auto r = run1(code, {7, 8}, {1, 2, 0}, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::invalid_argument);
  EXPECT_EQ(r.err().message, "element 0 (7), iteration 1: a range's step must not be 0");
  // ... but not where the loop is in a branch not taken.
  const i64 t = w(op::if_then), e = w(op::if_else), end = w(op::if_end);
  const std::vector<i64> in_branch{w(op::arg), 0, w(op::local_set), 0, w(op::arg), 0, w(op::literal), 0, w(op::gt), t,
                                   w(op::literal), 1, w(op::literal), 2, w(op::arg), 1, w(op::loop_begin), 1,
                                   w(op::loop_end), w(op::literal), 1, e, w(op::literal), 2, end};
  EXPECT_EQ(values(run1(in_branch, {-1, -5, 0}, {0}, 2)), (std::vector<i64>{2, 2, 2}));
  r = run1(in_branch, {-1, -5, 0, 4}, {0}, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "element 3 (4), iteration 1: a range's step must not be 0");
  // Nested loops with the outer variable as an inner bound: sum of j for 1 <= j <= i <= 4 = 20.
  const std::vector<i64> nested{w(op::literal), 0, w(op::local_set), 0, w(op::literal), 1, w(op::literal), 4,
                                w(op::literal), 1, w(op::loop_begin), 1, w(op::literal), 1, w(op::local_get), 1,
                                w(op::literal), 1, w(op::loop_begin), 2, w(op::local_get), 0, w(op::local_get), 2,
                                w(op::add), w(op::local_set), 0, w(op::loop_end), w(op::loop_end), w(op::local_get), 0,
                                w(op::arg), 0, w(op::add)};
  EXPECT_EQ(values(run1(nested, {0, 100}, {}, 3)), (std::vector<i64>{20, 120}));
}

// ---- validation --------------------------------------------------------------------------------

TEST(KernelValidation, MalformedKernelsAreRefusedWithTheirReason) {
  const i64 t = w(op::if_then), e = w(op::if_else), end = w(op::if_end);
  struct bad_case {
    std::vector<i64> code;
    std::size_t locals;
    const char* why;
  };
  const std::vector<bad_case> bad{
      {{}, 0, "0 value(s) left at the end, for 1 output(s)"},
      {{w(op::arg), 0, w(op::arg), 0}, 0, "2 value(s) left at the end, for 1 output(s)"},
      {{w(op::add)}, 0, "add has too few operands (operation 0)"},
      {{w(op::arg), 0, w(op::neg), w(op::add)}, 0, "add has too few operands (operation 2)"},
      {{w(op::arg), 3}, 0, "argument 3 (operation 0), but the kernel has 2"},
      {{w(op::arg), -1}, 0, "argument -1"},
      {{w(op::arg)}, 0, "arg at word 0 lacks its operand"},
      {{w(op::arg), 0, w(op::literal)}, 0, "literal at word 2 lacks its operand"},
      {{w(op::arg), 0, 99, w(op::add)}, 0, "unknown operation 99 at word 2"},
      {{-1}, 0, "unknown operation -1 at word 0"},
      {{100}, 0, "unknown operation 100"},  // the lowered rem_prod is never accepted from a caller
      {{w(op::boolean), 2}, 0, "boolean 2 (operation 0)"},
      {{w(op::arg), 0, w(op::boolean), 1, w(op::add)}, 0, "add takes an integer but finds a boolean"},
      {{w(op::arg), 0, w(op::logical_not)}, 0, "logical_not takes a boolean but finds an integer"},
      {{w(op::arg), 0, t, w(op::arg), 0, e, w(op::arg), 0, end}, 0, "if_then takes a boolean but finds an integer"},
      {{w(op::arg), 0, w(op::arg), 0, w(op::lt)}, 0, "an output is a boolean, not an integer"},
      {{w(op::local_get), 0}, 1, "local 0 is read before it is set"},
      {{w(op::arg), 0, w(op::local_set), 1, w(op::local_get), 0}, 2, "local 0 is read before it is set"},
      {{w(op::arg), 0, w(op::local_set), 2}, 2, "local 2 (operation 1) out of range"},
      {{w(op::local_get), 5}, 2, "local 5 (operation 0) out of range"},
      {{w(op::arg), 0, w(op::local_set), 0, w(op::boolean), 1, w(op::local_set), 0, w(op::arg), 0}, 1,
       "local 0 holds values of two types"},
      {{w(op::arg), 0, e}, 0, "if_else without its if_then"},
      {{w(op::boolean), 1, t, w(op::arg), 0, end}, 0, "if_end without its if_else"},
      {{w(op::boolean), 1, t, w(op::arg), 0, w(op::arg), 0, e, w(op::arg), 0, end}, 0,
       "the branch before if_else does not leave one value"},
      {{w(op::boolean), 1, t, w(op::arg), 0, e, w(op::arg), 0, w(op::arg), 0, end}, 0,
       "the branch before if_end does not leave one value"},
      {{w(op::boolean), 1, t, w(op::arg), 0, e, w(op::boolean), 0, end}, 0,
       "the two branches closed here leave values of two types"},
      {{w(op::boolean), 1, t, w(op::arg), 0, e, w(op::arg), 0}, 0, "a branch is not closed"},
      // A branch cannot take the values outside it.
      {{w(op::arg), 0, w(op::boolean), 1, t, w(op::neg), e, w(op::arg), 0, end}, 0, "neg has too few operands"},
      {{w(op::literal), 1, w(op::literal), 2, w(op::literal), 1, w(op::loop_begin), 0, w(op::arg), 0}, 1,
       "a loop is not closed"},
      {{w(op::arg), 0, w(op::loop_end)}, 0, "loop_end without its loop_begin"},
      {{w(op::literal), 1, w(op::literal), 2, w(op::literal), 1, w(op::loop_begin), 0, w(op::arg), 0, w(op::loop_end)},
       1, "a loop's body must leave the stack as it found it"},
      // A loop's body cannot take the values outside it either.
      {{w(op::arg), 0, w(op::literal), 1, w(op::literal), 2, w(op::literal), 1, w(op::loop_begin), 0,
        w(op::local_set), 1, w(op::loop_end)}, 2, "local_set has too few operands"},
      {{w(op::literal), 1, w(op::arg), 0, w(op::literal), 1, w(op::loop_begin), 0, w(op::loop_end), w(op::arg), 0}, 1,
       "a loop's bounds depend on the element"},
      {{w(op::literal), 1, w(op::literal), 2, w(op::index), w(op::loop_begin), 0, w(op::loop_end), w(op::arg), 0}, 1,
       "a loop's bounds depend on the element"},
      // Through a local set from the element, also when the set follows in a later loop's body.
      {{w(op::arg), 0, w(op::literal), 1, w(op::add), w(op::local_set), 1, w(op::literal), 1, w(op::local_get), 1,
        w(op::literal), 1, w(op::loop_begin), 0, w(op::loop_end), w(op::arg), 0}, 2,
       "a loop's bounds depend on the element"},
      {{w(op::literal), 3, w(op::local_set), 1, w(op::literal), 1, w(op::literal), 2, w(op::literal), 1,
        w(op::loop_begin), 0, w(op::literal), 1, w(op::local_get), 1, w(op::literal), 1, w(op::loop_begin), 2,
        w(op::loop_end), w(op::arg), 0, w(op::local_set), 1, w(op::loop_end), w(op::arg), 0}, 3,
       "a loop's bounds depend on the element"},
      // A local set in a branch differs between elements, even from a literal.
      {{w(op::arg), 1, w(op::local_set), 1, w(op::arg), 0, w(op::literal), 0, w(op::gt), t, w(op::literal), 9,
        w(op::local_set), 1, w(op::literal), 0, e, w(op::literal), 0, end, w(op::local_set), 2, w(op::literal), 1,
        w(op::local_get), 1, w(op::literal), 1, w(op::loop_begin), 0, w(op::loop_end), w(op::arg), 0}, 3,
       "a loop's bounds depend on the element"},
      // ... and so is a loop variable stepped in a branch: l1 = 0; if x > 0, do: for l1 <- 1..3 ...;
      // then for _ <- 1..l1 would run 3 times for some elements and none for others.
      {{w(op::literal), 0, w(op::local_set), 1, w(op::arg), 0, w(op::literal), 0, w(op::gt), t, w(op::literal), 1,
        w(op::literal), 3, w(op::literal), 1, w(op::loop_begin), 1, w(op::loop_end), w(op::literal), 1, e,
        w(op::literal), 2, end, w(op::local_set), 2, w(op::literal), 1, w(op::local_get), 1, w(op::literal), 1,
        w(op::loop_begin), 0, w(op::loop_end), w(op::arg), 0}, 3,
       "a loop's bounds depend on the element"},
      {{w(op::literal), 1, w(op::literal), 2, w(op::literal), 1, w(op::loop_begin), 4, w(op::loop_end), w(op::arg), 0},
       2, "loop variable local 4 (operation 3) out of range"},
      {{w(op::boolean), 1, w(op::local_set), 0, w(op::literal), 1, w(op::literal), 2, w(op::literal), 1,
        w(op::loop_begin), 0, w(op::loop_end), w(op::arg), 0}, 1, "loop variable local 0 holds a boolean elsewhere"},
      {{w(op::fail), 2}, 0, "unknown fail reason 2"},
  };
  const i64 xs[] = {1, 2};
  const kiln::arg args[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(3)};
  for (const auto& c : bad) {
    auto s = kiln::validate(kiln::kernel{c.code, 2, 1, c.locals, 1}, args);
    ASSERT_FALSE(s.ok()) << c.why;
    EXPECT_EQ(s.err().code, kiln::errc::invalid_argument) << c.why;
    EXPECT_NE(s.err().message.find(c.why), std::string::npos) << s.err().message << " / expected: " << c.why;
    // kiln::run refuses it the same way, writing nothing.
    std::vector<i64> out{77, 77};
    const std::span<i64> outs[] = {out};
    auto r = kiln::run(kiln::kernel{c.code, 2, 1, c.locals, 1}, args, outs, on("cpu"));
    ASSERT_FALSE(r.ok()) << c.why;
    EXPECT_EQ(r.err().message, s.err().message);
    EXPECT_EQ(out, (std::vector<i64>{77, 77}));
  }
  // fail's value takes any type: `if c, do: fail, else: true` is a boolean, and an output may be
  // a fail.
  EXPECT_TRUE(kiln::validate(kiln::kernel{std::vector<i64>{w(op::boolean), 0, t, w(op::fail), 0, e, w(op::boolean), 1,
                                                           end, t, w(op::arg), 0, e, w(op::fail), 1, end},
                                          2, 1, 0, 1},
                             args)
                  .ok());
}

TEST(KernelValidation, LimitsAndShapes) {
  const i64 xs[] = {1, 2};
  const kiln::arg one[] = {kiln::arg::of_array(xs)};
  auto message = [&](const kiln::kernel& k, std::span<const kiln::arg> args) {
    auto s = kiln::validate(k, args);
    return s.ok() ? std::string("ok") : s.err().message;
  };
  auto has = [](const std::string& m, const char* what) { return m.find(what) != std::string::npos; };
  const std::vector<i64> x{w(op::arg), 0};
  // Depth: 64 values at once are fine, 65 are not.
  for (int n : {64, 65}) {
    std::vector<i64> deep;
    for (int i = 0; i < n; ++i) deep.insert(deep.end(), {w(op::arg), 0});
    for (int i = 1; i < n; ++i) deep.push_back(w(op::add));
    const std::string m = message(kiln::kernel{deep, 1, 1, 0, 1}, one);
    EXPECT_TRUE(n == 64 ? m == "ok" : has(m, "more than 64 values at once")) << n << ": " << m;
  }
  // Nesting: 32 nested branches and loops are fine, 33 are not.
  for (int n : {32, 33}) {
    std::vector<i64> nested;
    for (int i = 0; i < n; ++i) {
      if (i % 2) nested.insert(nested.end(), {w(op::literal), 1, w(op::literal), 1, w(op::literal), 1, w(op::loop_begin), 1});
      else nested.insert(nested.end(), {w(op::boolean), 1, w(op::if_then)});
    }
    nested.insert(nested.end(), {w(op::arg), 0, w(op::local_set), 0});
    for (int i = n - 1; i >= 0; --i) {
      if (i % 2) nested.push_back(w(op::loop_end));
      else nested.insert(nested.end(), {w(op::literal), 0, w(op::if_else), w(op::literal), 1, w(op::if_end),
                                        w(op::local_set), 2});
    }
    nested.insert(nested.end(), {w(op::arg), 0});
    const std::string m = message(kiln::kernel{nested, 1, 1, 3, 1}, one);
    EXPECT_TRUE(n == 32 ? m == "ok" : has(m, "more than 32 nested branches and loops")) << n << ": " << m;
  }
  // Outputs: 1..16.
  std::vector<i64> sixteen;
  for (int i = 0; i < 17; ++i) sixteen.insert(sixteen.end(), {w(op::arg), 0});
  EXPECT_EQ(message(kiln::kernel{std::span<const i64>(sixteen).first(32), 1, 16, 0, 1}, one), "ok");
  EXPECT_TRUE(has(message(kiln::kernel{sixteen, 1, 17, 0, 1}, one), "outputs must be in 1..16, got 17"));
  EXPECT_TRUE(has(message(kiln::kernel{x, 1, 0, 0, 1}, one), "outputs must be in 1..16, got 0"));
  // Arguments: at most 32, matching the kernel's arity, at least one array, all s64.
  std::vector<kiln::arg> many(33, kiln::arg::of_scalar(1));
  many[0] = kiln::arg::of_array(xs);
  EXPECT_TRUE(has(message(kiln::kernel{x, 33, 1, 0, 1}, many), "more than 32 arguments"));
  EXPECT_EQ(message(kiln::kernel{x, 32, 1, 0, 1}, std::span<const kiln::arg>(many).first(32)), "ok");
  EXPECT_TRUE(has(message(kiln::kernel{x, 2, 1, 0, 1}, one), "the kernel takes 2 argument(s), 1 given"));
  const kiln::arg scalar_only[] = {kiln::arg::of_scalar(1)};
  EXPECT_TRUE(has(message(kiln::kernel{x, 1, 1, 0, 1}, scalar_only), "at least one argument must be an array"));
  kiln::arg f64 = kiln::arg::of_array(xs);
  f64.type = kiln::dtype::f64;
  EXPECT_TRUE(has(message(kiln::kernel{x, 1, 1, 0, 1}, std::span<const kiln::arg>(&f64, 1)),
                  "argument 0 is of type f64; only s64 arrays and scalars are supported so far"));
  // Locals: at most 256.
  EXPECT_EQ(message(kiln::kernel{x, 1, 1, 256, 1}, one), "ok");
  EXPECT_TRUE(has(message(kiln::kernel{x, 1, 1, 257, 1}, one), "more than 256 locals"));
  // Iterations: >= 0, and other than 1 only for one array and one output.
  EXPECT_TRUE(has(message(kiln::kernel{x, 1, 1, 0, -1}, one), "iterations must be >= 0, got -1"));
  const kiln::arg two[] = {kiln::arg::of_array(xs), kiln::arg::of_array(xs)};
  EXPECT_TRUE(has(message(kiln::kernel{x, 2, 1, 0, 2}, two),
                  "iterations other than 1 need a kernel of one array argument and one output"));
  const std::vector<i64> xx{w(op::arg), 0, w(op::arg), 0};
  EXPECT_TRUE(has(message(kiln::kernel{xx, 1, 2, 0, 3}, one), "iterations other than 1 need"));
}

// ---- runs: lengths, aliasing, empty inputs, faults, locals -------------------------------------------------------

TEST(KernelRun, LengthsAndAliasing) {
  // {x + y, x - y} of two arrays.
  const std::vector<i64> code{w(op::arg), 0, w(op::arg), 1, w(op::add), w(op::arg), 0, w(op::arg), 1, w(op::sub)};
  const kiln::kernel k{code, 2, 2, 0, 1};
  std::vector<i64> x{1, 2, 3, 4}, y{10, 20, 30, 40};
  std::vector<i64> a(4), b(4);
  auto run = [&](std::vector<kiln::arg> args, std::vector<std::span<i64>> outs) {
    return kiln::run(k, args, outs, on("cpu"));
  };
  std::vector<i64> short_y{1, 2};
  auto r = run({kiln::arg::of_array(x), kiln::arg::of_array(short_y)}, {a, b});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "the arrays have different lengths (4 and 2, argument 1)");
  std::vector<i64> short_b(3);
  r = run({kiln::arg::of_array(x), kiln::arg::of_array(y)}, {a, short_b});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "output 1 has 3 elements, for arrays of 4");
  r = run({kiln::arg::of_array(x), kiln::arg::of_array(y)}, {a});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "the kernel has 2 output(s), 1 array(s) given for them");
  // An output overlapping an array partially, or another output, is refused.
  std::vector<i64> buf(8, 0);
  r = run({kiln::arg::of_array(std::span<const i64>(buf).first(4)), kiln::arg::of_array(y)},
          {std::span<i64>(buf).subspan(2, 4), b});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::invalid_argument);
  EXPECT_NE(r.err().message.find("overlap partially"), std::string::npos) << r.err().message;
  r = run({kiln::arg::of_array(x), kiln::arg::of_array(y)}, {std::span<i64>(buf).first(4), std::span<i64>(buf).subspan(1, 4)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "outputs 0 and 1 overlap");
  r = run({kiln::arg::of_array(x), kiln::arg::of_array(y)}, {a, a});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "outputs 0 and 1 overlap");
  // In place: each output the same memory as an array, even crossed (x <- x + y, y <- x - y),
  // over enough elements for several blocks and threads.
  for (const char* backend : {"scalar", "cpu"}) {
    std::vector<i64> xs(70'000), ys(70'000);
    for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<i64>(i) * 3 - 5, ys[i] = static_cast<i64>(i % 11);
    const auto x0 = xs, y0 = ys;
    auto ok = kiln::run(k, std::vector<kiln::arg>{kiln::arg::of_array(xs), kiln::arg::of_array(ys)},
                        std::vector<std::span<i64>>{ys, xs}, on(backend));
    ASSERT_TRUE(ok.ok()) << ok.err().message;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      ASSERT_EQ(ys[i], x0[i] + y0[i]) << backend << " " << i;
      ASSERT_EQ(xs[i], x0[i] - y0[i]) << backend << " " << i;
    }
  }
  // No elements: nothing runs (not even a division by zero).
  std::vector<i64> none;
  const std::vector<i64> div0{w(op::arg), 0, w(op::literal), 0, w(op::div)};
  const kiln::arg no_args[] = {kiln::arg::of_array(none)};
  const std::span<i64> no_outs[] = {none};
  EXPECT_TRUE(kiln::run(kiln::kernel{div0, 1, 1, 0, 1}, no_args, no_outs, on("cpu")).ok());
  // iterations 0 copies the array unchanged, also past a kernel that would fault.
  std::vector<i64> in{1, int64_min, int64_max}, out(3);
  const kiln::arg in_args[] = {kiln::arg::of_array(in)};
  const std::span<i64> outs[] = {out};
  ASSERT_TRUE(kiln::run(kiln::kernel{div0, 1, 1, 0, 0}, in_args, outs, on("scalar")).ok());
  EXPECT_EQ(out, in);
}

// The first fault by index, whichever thread meets it and in whichever application.
TEST(KernelRun, TheFirstFaultByIndexIsReported) {
  // div(1000, x - 1), applied twice: x = 1 faults at once; x = 1001 gives 1, then divides by 0.
  const std::vector<i64> code{w(op::literal), 1000, w(op::arg), 0, w(op::literal), 1, w(op::sub), w(op::div)};
  std::vector<i64> in(200'000, 3);
  in[150'000] = 1;
  in[70'001] = 1;
  in[9] = 1001;
  const kiln::arg args[] = {kiln::arg::of_array(in)};
  for (const char* backend : {"cpu", "scalar"}) {
    std::vector<i64> out(in.size());
    const std::span<i64> outs[] = {out};
    auto r = kiln::run(kiln::kernel{code, 1, 1, 0, 2}, args, outs, on(backend));
    ASSERT_FALSE(r.ok()) << backend;
    EXPECT_EQ(r.err().code, kiln::errc::arithmetic);
    EXPECT_EQ(r.err().message, "element 9 (1001), iteration 2: division by zero") << backend;
  }
  // Kernels of several arrays name the element alone.
  std::vector<i64> y(in.size(), 1);
  y[123'456] = 0;
  const std::vector<i64> two{w(op::arg), 0, w(op::arg), 1, w(op::div)};
  const kiln::arg args2[] = {kiln::arg::of_array(in), kiln::arg::of_array(y)};
  std::vector<i64> out(in.size());
  const std::span<i64> outs[] = {out};
  auto r = kiln::run(kiln::kernel{two, 2, 1, 0, 1}, args2, outs, on("cpu"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "element 123456: division by zero");
}

// The cpu backend's device, which the slice tests name several times.
kiln::device_info cpu_device() {
  for (const auto& d : kiln::devices())
    if (d.backend == kiln::backend_kind::cpu) return d;
  ADD_FAILURE() << "no cpu device listed";
  return {};
}

// A run cut into slices over devices (all_devices): contiguous slices in proportion to their
// weights, covering every element once.
TEST(KernelDevices, SlicesFollowTheWeightsAndCoverTheRun) {
  using kiln::detail::device_slices;
  using slices = std::vector<std::pair<std::size_t, std::size_t>>;
  const int even[] = {1, 1, 1}, skewed[] = {0, 5}, sms[] = {132, 132};
  EXPECT_EQ(device_slices(10, even), (slices{{0, 3}, {3, 3}, {6, 4}}));
  EXPECT_EQ(device_slices(10, skewed), (slices{{0, 1}, {1, 9}}));  // a weight below 1 counts as 1
  EXPECT_EQ(device_slices(2, even), (slices{{0, 0}, {0, 1}, {1, 1}}));
  EXPECT_EQ(device_slices(std::size_t{1} << 34, sms), (slices{{0, std::size_t{1} << 33}, {std::size_t{1} << 33, std::size_t{1} << 33}}));
}

// The slices run on threads of their own, all at once (each waits here until all four have
// begun); the lowest failing slice's error is the run's, and each failure is reported as it
// happens; the slices' times are the slowest one's, their chunks summed.
TEST(KernelDevices, EverySliceRunsAndTheLowestErrorIsReturned) {
  std::atomic<int> ran{0}, begun{0};
  std::atomic<bool> all_at_once{true};
  std::mutex m;
  std::vector<std::size_t> failed;
  auto slice = [&](std::size_t i) -> kiln::result<kiln::run_stats> {
    ++begun;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (begun.load() < 4 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    if (begun.load() < 4) all_at_once = false;
    ++ran;
    if (i == 1) return kiln::make_error(kiln::errc::arithmetic, "slice 1");
    if (i == 3) return kiln::make_error(kiln::errc::device_error, "slice 3");
    kiln::run_stats st;
    st.kernel_s = static_cast<double>(i);
    st.chunks = 2;
    return st;
  };
  auto r = kiln::detail::on_every_slice(4, slice, [&](std::size_t i) {
    std::lock_guard<std::mutex> lock(m);
    failed.push_back(i);
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "slice 1");
  EXPECT_EQ(ran.load(), 4);
  EXPECT_TRUE(all_at_once.load()) << "the slices did not run at once";
  std::sort(failed.begin(), failed.end());
  EXPECT_EQ(failed, (std::vector<std::size_t>{1, 3}));
  ran = 0;
  auto ok = kiln::detail::on_every_slice(3, [&](std::size_t i) -> kiln::result<kiln::run_stats> {
    ++ran;
    kiln::run_stats st;
    st.kernel_s = static_cast<double>(i);
    st.chunks = 2;
    return st;
  });
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(ok->kernel_s, 2.0);
  EXPECT_EQ(ok->chunks, 6u);
}

// A kernel of two arrays and two outputs that reads `index`, cut into three slices of one device
// (the cpu backend's, through its buffers): the results of one run on that device, in place too,
// and a fault's error the one device's (the lowest faulting element, in a later slice than 0).
TEST(KernelDevices, SlicesOfARunGiveTheOneDevicesResultsAndFaults) {
  const std::size_t n = 100'003;
  const auto c = make_index_kernel_case(n);
  const auto& x = c.x;
  const auto& y = c.y;
  const auto& want0 = c.want0;
  const auto& want1 = c.want1;
  const auto args = c.args();
  auto dk = kiln::detail::decode_kernel(c.kernel(), args);
  ASSERT_TRUE(dk.ok()) << dk.err().message;
  std::vector<kiln::device_info> three(3, cpu_device());
  three[0].compute_units = 1, three[1].compute_units = 2, three[2].compute_units = 3;
  std::vector<i64> got0(n, -1), got1(n, -1);
  bool placed = false;
  auto r = kiln::detail::run_over_devices(*dk, args, std::vector<std::span<i64>>{got0, got1}, on("cpu"),
                                          kiln::backend_kind::cpu, three, placed);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_TRUE(placed);
  EXPECT_EQ(got0, want0);
  EXPECT_EQ(got1, want1);
  // In place, each output an argument's memory, crossed.
  std::vector<i64> xs = x, ys = y;
  const std::vector<kiln::arg> in_place{kiln::arg::of_array(xs), kiln::arg::of_array(ys)};
  r = kiln::detail::run_over_devices(*dk, in_place, std::vector<std::span<i64>>{ys, xs}, on("cpu"),
                                     kiln::backend_kind::cpu, three, placed);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(ys, want0);
  EXPECT_EQ(xs, want1);
  // div(x, y) with y = 0 in the second and third slices: the lowest such element, as one device says.
  const std::vector<i64> div{w(op::arg), 0, w(op::arg), 1, w(op::div)};
  const kiln::kernel kd{div, 2, 1, 0, 1};
  std::vector<i64> nonzero(n, 3);
  nonzero[80'000] = 0;
  nonzero[40'000] = 0;
  const std::vector<kiln::arg> div_args{kiln::arg::of_array(x), kiln::arg::of_array(nonzero)};
  std::vector<i64> out(n);
  const std::vector<std::span<i64>> outs{out};
  auto one = kiln::run(kd, div_args, outs, on("cpu"));
  ASSERT_FALSE(one.ok());
  auto dd = kiln::detail::decode_kernel(kd, div_args);
  ASSERT_TRUE(dd.ok());
  r = kiln::detail::run_over_devices(*dd, div_args, outs, on("cpu"), kiln::backend_kind::cpu, three, placed);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, one.err().code);
  EXPECT_EQ(r.err().message, one.err().message);
  EXPECT_EQ(r.err().message, "element 40000: division by zero");
}

// A slice that fails stops the slices after it, whose errors could not be the run's: here every
// element of slice 0 ([0, 10000)) faults at once (div(x, x) of a zero) while the others would
// apply the kernel 10^12 times.
TEST(KernelDevices, AFailingSliceStopsTheSlicesAfterIt) {
  const std::vector<i64> code{w(op::arg), 0, w(op::arg), 0, w(op::div)};
  const kiln::kernel k{code, 1, 1, 0, 1'000'000'000'000};
  std::vector<i64> x(30'000, 7);
  std::fill(x.begin(), x.begin() + 10'000, 0);
  const std::vector<kiln::arg> args{kiln::arg::of_array(x)};
  auto dk = kiln::detail::decode_kernel(k, args);
  ASSERT_TRUE(dk.ok()) << dk.err().message;
  const std::vector<kiln::device_info> three(3, cpu_device());
  std::vector<i64> out(x.size());
  bool placed = false;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = kiln::detail::run_over_devices(*dk, args, std::vector<std::span<i64>>{out}, on("cpu"),
                                          kiln::backend_kind::cpu, three, placed);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "element 0 (0), iteration 1: division by zero");
  EXPECT_LT(took, 20.0) << "the later slices ran on";
  // No devices: an error, not a run that writes nothing.
  r = kiln::detail::run_over_devices(*dk, args, std::vector<std::span<i64>>{out}, on("cpu"), kiln::backend_kind::cpu,
                                     std::vector<kiln::device_info>{}, placed);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::internal);
}

// The lowering keeps a product's factors on the stack until its rem: a kernel within the depth
// limit may need more values at once once lowered (here 40 + 16 sums of two + the divisor), and
// the interpreter's stack holds them all. Against the reference, on blocks of many elements.
TEST(KernelRun, LoweredProductsDeeperThanTheLimitStillRun) {
  random_kernel g;
  for (int i = 0; i < 40; ++i) g.code.insert(g.code.end(), {w(op::arg), 0});
  for (int f = 0; f < 16; ++f) {
    g.code.insert(g.code.end(), {w(op::arg), 0, w(op::literal), f + 1, w(op::add)});
    if (f > 0) g.code.push_back(w(op::mul));
  }
  g.code.insert(g.code.end(), {w(op::literal), 4'294'967'291, w(op::rem)});
  for (int i = 0; i < 40; ++i) g.code.push_back(w(op::add));
  g.array = {true};
  g.scalars = {0};
  ASSERT_TRUE(kiln::validate(g.view(), std::vector<kiln::arg>{kiln::arg::of_array({})}).ok());
  std::mt19937_64 rng(4);
  std::vector<i64> xs(5000);
  for (auto& x : xs) x = static_cast<i64>(rng() % 2001) - 1000;
  const std::vector<std::vector<i64>> arrays{xs};
  const auto e = expect(g, bind_args(g, arrays), xs.size());
  ASSERT_FALSE(e.first.has_value());
  EXPECT_EQ(reference(g.code, 1, 0, 1, bind_args(g, arrays)).lowered(), 1u);
  for (const char* b : {"scalar", "cpu"}) EXPECT_TRUE(run_and_compare(g, arrays, e, b, false)) << b;
}

// An element that faulted has no value left to compute: a loop whose bounds come from an
// operation that faulted (here p0 * p1, beyond int64, whose wrapped value would make the range
// hold 2^32 + 1 values) must not run on. Elixir stops at the fault; the run reports it at once.
TEST(KernelRun, AFaultedElementRunsNoLongLoop) {
  // for _ <- 1..(p0 * p1 + p2), do: acc = acc + 1
  const std::vector<i64> code{w(op::literal), 0, w(op::local_set), 0, w(op::literal), 1, w(op::arg), 1, w(op::arg), 2,
                              w(op::mul), w(op::arg), 3, w(op::add), w(op::literal), 1, w(op::loop_begin), 1,
                              w(op::local_get), 0, w(op::literal), 1, w(op::add), w(op::local_set), 0, w(op::loop_end),
                              w(op::local_get), 0, w(op::arg), 0, w(op::add)};
  std::string why;
  std::vector<const char*> backends{"scalar", "cpu"};
  if (opencl_usable(why)) backends.push_back("opencl");  // the generated C's loops too
  const auto t0 = std::chrono::steady_clock::now();
  for (const char* b : backends) {
    auto r = run1(code, {1, 2, 3}, {i64{1} << 62, 4, i64{1} << 32}, 2, b);
    ASSERT_FALSE(r.ok()) << b;
    EXPECT_EQ(r.err().message.rfind("element 0 (1), iteration 1: an intermediate value does not fit in int64", 0), 0u)
        << r.err().message;
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

// A local set inside a branch changes it only for the elements that take the branch; the others
// keep their value (the interpreter runs a branch over a whole block, masked). Blocks hold
// elements of both kinds here.
TEST(KernelRun, ALocalSetInABranchChangesOnlyTheElementsThatTakeIt) {
  const i64 t = w(op::if_then), e = w(op::if_else), end = w(op::if_end);
  // l0 = x; _ = if x > 0, do: (l0 = 7; 1), else: 2; l0
  const std::vector<i64> set{w(op::arg), 0, w(op::local_set), 0, w(op::arg), 0, w(op::literal), 0, w(op::gt), t,
                             w(op::literal), 7, w(op::local_set), 0, w(op::literal), 1, e, w(op::literal), 2, end,
                             w(op::local_set), 1, w(op::local_get), 0};
  // l0 = x; _ = if x > 0, do: (for l0 <- 1..3, do: nothing; 1), else: 2; l0 (the loop variable
  // is a local like any other)
  const std::vector<i64> loop{w(op::arg), 0, w(op::local_set), 0, w(op::arg), 0, w(op::literal), 0, w(op::gt), t,
                              w(op::literal), 1, w(op::literal), 3, w(op::literal), 1, w(op::loop_begin), 0,
                              w(op::loop_end), w(op::literal), 1, e, w(op::literal), 2, end, w(op::local_set), 1,
                              w(op::local_get), 0};
  std::vector<i64> xs(1000);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = i % 3 ? static_cast<i64>(i) : -static_cast<i64>(i) - 1;
  for (const char* b : {"scalar", "cpu"}) {
    const auto got_set = values(run1(set, xs, {}, 2, b)), got_loop = values(run1(loop, xs, {}, 2, b));
    ASSERT_EQ(got_set.size(), xs.size());
    ASSERT_EQ(got_loop.size(), xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) {
      EXPECT_EQ(got_set[i], xs[i] > 0 ? 7 : xs[i]) << b << " element " << i;
      EXPECT_EQ(got_loop[i], xs[i] > 0 ? 3 : xs[i]) << b << " element " << i;
    }
  }
}

// A loop's bounds are the same for every element, but inside a branch only the elements that
// take it compute them: an if-expression with a uniform condition gives its else value in the
// elements outside, so the interpreter must read the bounds from an element inside the branch.
TEST(KernelRun, ALoopInABranchTakesItsBoundsFromTheElementsThatTakeIt) {
  const i64 t = w(op::if_then), e = w(op::if_else), end = w(op::if_end);
  // acc = 0; if x > 0, do: (for i <- (if p0 > 0, do: 2, else: 10)..3, do: acc = acc + i; acc), else: -1
  const std::vector<i64> code{w(op::literal), 0, w(op::local_set), 0, w(op::arg), 0, w(op::literal), 0, w(op::gt), t,
                              w(op::arg), 1, w(op::literal), 0, w(op::gt), t, w(op::literal), 2, e, w(op::literal), 10,
                              end, w(op::literal), 3, w(op::literal), 1, w(op::loop_begin), 1, w(op::local_get), 0,
                              w(op::local_get), 1, w(op::add), w(op::local_set), 0, w(op::loop_end), w(op::local_get), 0,
                              e, w(op::literal), -1, end};
  for (const char* b : {"scalar", "cpu"}) {
    EXPECT_EQ(values(run1(code, {-1, 5, 0, 7}, {1}, 2, b)), (std::vector<i64>{-1, 5, -1, 5})) << b;
    EXPECT_EQ(values(run1(code, {-1, 5, 0, 7}, {0}, 2, b)), (std::vector<i64>{-1, 0, -1, 0})) << b;
  }
}

// ---- the built-in map ------------------------------------------------------------------------------

// The seed's map written as Enum.reduce(1..k, x, fn _, x -> rem(mu * x * (x + 1), p) end) over
// the arguments (x, p, mu, k), with the step Elixir 1.14 takes for first..last (-1 when first >
// last).
std::vector<i64> reduce_form() {
  const i64 t = w(op::if_then), e = w(op::if_else), end = w(op::if_end);
  return {w(op::arg), 0, w(op::local_set), 0, w(op::literal), 1, w(op::arg), 3, w(op::literal), 1, w(op::arg), 3,
          w(op::le), t, w(op::literal), 1, e, w(op::literal), -1, end, w(op::loop_begin), 1,
          w(op::arg), 2, w(op::local_get), 0, w(op::mul), w(op::local_get), 0, w(op::literal), 1, w(op::add), w(op::mul),
          w(op::arg), 1, w(op::rem), w(op::local_set), 0, w(op::loop_end), w(op::local_get), 0};
}

std::vector<i64> with_plus_zero(std::vector<i64> code) {
  code.insert(code.end(), {w(op::literal), 0, w(op::add)});
  return code;
}

TEST(KernelBuiltinMap, RecognisedInBothForms) {
  const i64 xs[] = {1, 2, 3};
  const kiln::arg args[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(61), kiln::arg::of_scalar(22)};
  auto plain = kiln::detail::decode_kernel(kiln::logistic_kernel(10), args);
  ASSERT_TRUE(plain.ok()) << plain.err().message;
  ASSERT_TRUE(plain->builtin.has_value());
  EXPECT_EQ(plain->builtin->params.p, 61);
  EXPECT_EQ(plain->builtin->params.mu, 22);
  EXPECT_EQ(plain->builtin->params.iterations, 10);
  // The factors in another order, x + 1 as 1 + x, mu a literal, p negative (rem(a, -p) == rem(a, p)).
  const std::vector<i64> reordered{w(op::literal), 1, w(op::arg), 0, w(op::add), w(op::arg), 0, w(op::mul),
                                   w(op::literal), -5, w(op::mul), w(op::literal), -61, w(op::rem)};
  const kiln::arg just_x[] = {kiln::arg::of_array(xs)};
  auto other = kiln::detail::decode_kernel(kiln::kernel{reordered, 1, 1, 0, 4}, just_x);
  ASSERT_TRUE(other.ok()) << other.err().message;
  ASSERT_TRUE(other->builtin.has_value());
  EXPECT_EQ(other->builtin->params.p, 61);
  EXPECT_EQ(other->builtin->params.mu, -5);
  EXPECT_EQ(other->builtin->params.iterations, 4);
  // The reduce form, for 1..k with k >= 1 (k iterations) and 1..0 (two, as Elixir 1.14), times
  // kernel::iterations.
  const auto code = reduce_form();
  for (i64 k : {1, 2, 10, 1000, 0}) {
    for (i64 iterations : {1, 3}) {
      const kiln::arg args4[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(61), kiln::arg::of_scalar(22),
                                 kiln::arg::of_scalar(k)};
      auto loop = kiln::detail::decode_kernel(kiln::kernel{code, 4, 1, 2, iterations}, args4);
      ASSERT_TRUE(loop.ok()) << loop.err().message;
      ASSERT_TRUE(loop->builtin.has_value()) << "k = " << k;
      EXPECT_EQ(loop->builtin->params.iterations, (k == 0 ? 2 : k) * iterations) << "k = " << k;
      EXPECT_EQ(loop->builtin->params.p, 61);
      EXPECT_EQ(loop->builtin->params.mu, 22);
    }
  }
  // Not the map: a divisor beyond 2^32 - 1, a divisor from an array, x + 2, two arrays, `+ 0`.
  const kiln::arg wide[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(i64{1} << 32), kiln::arg::of_scalar(22)};
  EXPECT_FALSE(kiln::detail::decode_kernel(kiln::logistic_kernel(1), wide)->builtin.has_value());
  const kiln::arg array_p[] = {kiln::arg::of_array(xs), kiln::arg::of_array(xs), kiln::arg::of_scalar(22)};
  EXPECT_FALSE(kiln::detail::decode_kernel(kiln::logistic_kernel(1), array_p)->builtin.has_value());
  auto plus_two = reordered;
  plus_two[1] = 2;
  EXPECT_FALSE(kiln::detail::decode_kernel(kiln::kernel{plus_two, 1, 1, 0, 1}, just_x)->builtin.has_value());
  EXPECT_FALSE(
      kiln::detail::decode_kernel(kiln::kernel{with_plus_zero(reordered), 1, 1, 0, 1}, just_x)->builtin.has_value());
}

// The map, recognised or interpreted (`+ 0` at the end forces the interpreter), equals
// logistic_map_reference on every int64 edge value, for edge mu and p, in both forms.
TEST(KernelBuiltinMap, EqualsTheReferenceOnEdgeValues) {
  std::string why;
  std::vector<const char*> backends{"scalar", "cpu"};
  if (opencl_usable(why)) backends.push_back("opencl");  // its built-in kernel, and a compiled one
  else std::cout << "[ skipped ] opencl: " << why << "\n";
  std::vector<i64> xs = edge_values();
  std::mt19937_64 rng(5);
  for (int i = 0; i < 3000; ++i) xs.push_back(static_cast<i64>(rng()) >> (rng() % 64));
  for (i64 p : {i64{1}, i64{2}, i64{61}, i64{6'700'417}, i64{4'294'967'291}, kiln::max_p}) {
    for (i64 mu : {int64_min, i64{-22}, i64{0}, i64{22}, int64_max}) {
      for (i64 k : {0, 1, 7}) {
        const i64 iterations = k == 0 ? 2 : k;  // 1..0 holds two values
        const kiln::map_params params{p, mu, iterations};
        std::vector<i64> want(xs.size());
        for (std::size_t i = 0; i < xs.size(); ++i) want[i] = kiln::logistic_map_reference(xs[i], params);
        const kiln::arg args[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(p), kiln::arg::of_scalar(mu),
                                  kiln::arg::of_scalar(k)};
        const auto code = reduce_form();
        const auto interpreted = with_plus_zero(code);
        for (const char* b : backends) {
          for (const auto* c : {&code, &interpreted}) {
            std::vector<i64> got(xs.size());
            const std::span<i64> outs[] = {got};
            auto r = kiln::run(kiln::kernel{*c, 4, 1, 2, 1}, args, outs, on(b));
            ASSERT_TRUE(r.ok()) << b << ": " << r.err().message;
            ASSERT_EQ(got, want) << b << (c == &code ? " recognised" : " interpreted") << " p " << p << " mu " << mu
                                 << " k " << k;
          }
          // The plain form, iterated by kernel::iterations.
          std::vector<i64> got(xs.size());
          const std::span<i64> outs[] = {got};
          auto r = kiln::run(kiln::logistic_kernel(iterations), std::span<const kiln::arg>(args).first(3), outs, on(b));
          ASSERT_TRUE(r.ok()) << r.err().message;
          ASSERT_EQ(got, want) << b << " plain";
        }
      }
    }
  }
}

// The map's generic twin (the same kernel with `+ 0`) agrees with the reference evaluator too,
// also for a negative p, which logistic_map does not take.
TEST(KernelBuiltinMap, InterpretedFormAgreesWithTheEvaluator) {
  std::mt19937_64 rng(8);
  random_kernel g;
  g.code = with_plus_zero(reduce_form());
  g.array = {true, false, false, false};
  g.locals = 2;
  for (i64 p : {i64{-61}, i64{-4'294'967'295}, i64{1} << 32}) {
    g.scalars = {0, p, static_cast<i64>(rng()), 3};
    const std::vector<std::vector<i64>> arrays{inputs(3000, rng, false)};
    const auto e = expect(g, bind_args(g, arrays), arrays[0].size());
    for (const char* b : {"scalar", "cpu"}) ASSERT_TRUE(run_and_compare(g, arrays, e, b, true)) << p;
  }
}

// ---- generated GPU source ----------------------------------------------------------------------------

// kernel_source names every local and the entry, for both dialects, for random kernels (the
// OpenCL test above compiles and runs them; CUDA's compile is in tests/backends/cuda_test.cpp).
TEST(KernelSource, BothDialectsForRandomKernels) {
  std::mt19937_64 rng(12);
  kernel_generator gen(rng);
  for (int round = 0; round < 200; ++round) {
    random_kernel g = gen.make(1, rng() % 3, 1, 1 + static_cast<int>(rng() % 4), false);
    const std::vector<i64> xs{1};
    auto dk = kiln::detail::decode_kernel(g.view(), bind_args(g, {xs}));
    ASSERT_TRUE(dk.ok()) << dk.err().message;
    for (auto d : {kiln::detail::kernel_dialect::opencl, kiln::detail::kernel_dialect::cuda}) {
      const std::string s = kiln::detail::kernel_source(*dk, d);
      EXPECT_NE(s.find("kiln_program("), std::string::npos);
      for (std::size_t l = 0; l < dk->locals; ++l) EXPECT_NE(s.find(" L" + std::to_string(l) + " = 0;"), std::string::npos);
      // Balanced braces and parentheses: every branch and loop closed.
      EXPECT_EQ(std::count(s.begin(), s.end(), '{'), std::count(s.begin(), s.end(), '}')) << s;
      EXPECT_EQ(std::count(s.begin(), s.end(), '('), std::count(s.begin(), s.end(), ')')) << s;
    }
  }
}

}  // namespace
