// kiln::run_program against a per-element evaluator in 128-bit integers: random programs, edge values, faults.
#include <gtest/gtest.h>

#include <cstdint>
#include <iostream>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kiln/kiln.hpp"

namespace {

using i64 = std::int64_t;
using i128 = __int128;
using op = kiln::program_op;

constexpr i64 lo = std::numeric_limits<i64>::min(), hi = std::numeric_limits<i64>::max();

i64 w(op o) { return static_cast<i64>(o); }

// The expected outcome for one element: its value, or the first fault (1: beyond int64,
// 2: division by zero) and the iteration it happened in.
struct outcome {
  i64 value = 0;
  int fault = 0;
  i64 iteration = 0;
};

// The program as a tree, built from its postfix code: a branch's node has its condition, its
// first and its second half as children.
struct node {
  op o;
  i64 operand = 0;
  std::vector<std::size_t> kids;
};

std::vector<node> tree(const std::vector<i64>& code, std::size_t& root) {
  std::vector<node> nodes;
  std::vector<std::size_t> st, conds, thens;
  for (std::size_t i = 0; i < code.size(); ++i) {
    const auto o = static_cast<op>(code[i]);
    node nd{o, 0, {}};
    switch (o) {
      case op::x: break;
      case op::param: case op::literal: case op::boolean: nd.operand = code[++i]; break;
      case op::if_then: conds.push_back(st.back()), st.pop_back(); continue;
      case op::if_else: thens.push_back(st.back()), st.pop_back(); continue;
      case op::if_end:
        nd.kids = {conds.back(), thens.back(), st.back()};
        conds.pop_back(), thens.pop_back(), st.pop_back();
        break;
      case op::neg: case op::abs: case op::logical_not: nd.kids = {st.back()}, st.pop_back(); break;
      default:
        nd.kids = {st[st.size() - 2], st.back()};
        st.resize(st.size() - 2);
    }
    nodes.push_back(nd);
    st.push_back(nodes.size() - 1);
  }
  root = st.back();
  return nodes;
}

// One node's value for one element, evaluated as Elixir does (left to right; only the branch
// taken), in 128 bits, where no operation on int64 operands can overflow, with each integer
// checked against int64 afterwards: a different route from the interpreter's wrapping and flags.
// fault: 0 none, 1 beyond int64, 2 division by zero.
struct value {
  i128 v = 0;
  int fault = 0;
};

value eval(const std::vector<node>& t, std::size_t at, i64 x, const std::vector<i64>& params) {
  const node& nd = t[at];
  auto kid = [&](std::size_t k) { return eval(t, nd.kids[k], x, params); };
  auto checked = [](i128 v) { return value{v, v < lo || v > hi ? 1 : 0}; };
  switch (nd.o) {
    case op::x: return {x, 0};
    case op::param: return {params[static_cast<std::size_t>(nd.operand)], 0};
    case op::literal: case op::boolean: return {nd.operand, 0};
    case op::if_end: {
      const value c = kid(0);
      if (c.fault) return c;
      return kid(c.v ? 1 : 2);
    }
    default: break;
  }
  const value a = kid(0);
  if (a.fault) return a;
  switch (nd.o) {
    case op::neg: return checked(-a.v);
    case op::abs: return checked(a.v < 0 ? -a.v : a.v);
    case op::logical_not: return {!a.v, 0};
    default: break;
  }
  const value b = kid(1);
  if (b.fault) return b;
  switch (nd.o) {
    case op::add: return checked(a.v + b.v);
    case op::sub: return checked(a.v - b.v);
    case op::mul: return checked(a.v * b.v);
    case op::div: return b.v == 0 ? value{0, 2} : checked(a.v / b.v);  // truncates, like Elixir's div
    case op::rem: return b.v == 0 ? value{0, 2} : checked(a.v % b.v);  // the dividend's sign, like rem
    case op::min: return {a.v < b.v ? a.v : b.v, 0};
    case op::max: return {a.v < b.v ? b.v : a.v, 0};
    case op::eq: return {a.v == b.v, 0};
    case op::ne: return {a.v != b.v, 0};
    case op::lt: return {a.v < b.v, 0};
    case op::le: return {a.v <= b.v, 0};
    case op::gt: return {a.v > b.v, 0};
    case op::ge: return {a.v >= b.v, 0};
    default: return {0, 0};
  }
}

outcome reference(const std::vector<i64>& code, const std::vector<i64>& params, i64 iterations, i64 x) {
  std::size_t root = 0;
  const auto t = tree(code, root);
  for (i64 it = 1; it <= iterations; ++it) {
    const value v = eval(t, root, x, params);
    if (v.fault) return {0, v.fault, it};
    x = static_cast<i64>(v.v);
  }
  return {x, 0, 0};
}

void random_bool(std::mt19937_64& rng, int d, std::vector<i64>& code);

// A random integer expression of depth <= d over x, two parameters and literals, in postfix order.
void random_expr(std::mt19937_64& rng, int d, std::vector<i64>& code) {
  const int pick = static_cast<int>(rng() % (d > 0 ? 13 : 3));
  const i64 literals[] = {0, 1, -1, 2, 3, 22, 61, 6'700'417, 1LL << 31, -(1LL << 32), lo, hi, 1'000'000'007};
  switch (pick) {
    case 0: code.push_back(w(op::x)); return;
    case 1: code.insert(code.end(), {w(op::param), static_cast<i64>(rng() % 2)}); return;
    case 2: code.insert(code.end(), {w(op::literal), literals[rng() % std::size(literals)]}); return;
    case 3: random_expr(rng, d - 1, code); code.push_back(w(op::neg)); return;
    case 9: random_expr(rng, d - 1, code); code.push_back(w(op::abs)); return;
    case 10: case 11:
      random_expr(rng, d - 1, code), random_expr(rng, d - 1, code);
      code.push_back(w(pick == 10 ? op::min : op::max));
      return;
    case 12:  // if <bool>, do: <int>, else: <int>
      random_bool(rng, d - 1, code);
      code.push_back(w(op::if_then));
      random_expr(rng, d - 1, code);
      code.push_back(w(op::if_else));
      random_expr(rng, d - 1, code);
      code.push_back(w(op::if_end));
      return;
    default:
      random_expr(rng, d - 1, code);
      random_expr(rng, d - 1, code);
      code.push_back(w(op::add) + pick - 4);  // add, sub, mul, div, rem
  }
}

// A random boolean expression: comparisons, not, and/or (as branches that short-circuit), literals.
void random_bool(std::mt19937_64& rng, int d, std::vector<i64>& code) {
  const int pick = static_cast<int>(rng() % (d > 0 ? 5 : 2));
  switch (pick) {
    case 0: code.insert(code.end(), {w(op::boolean), static_cast<i64>(rng() % 2)}); return;
    case 1: case 2:
      random_expr(rng, d > 0 ? d - 1 : 0, code), random_expr(rng, d > 0 ? d - 1 : 0, code);
      code.push_back(w(op::eq) + static_cast<i64>(rng() % 6));  // eq ne lt le gt ge
      return;
    case 3: random_bool(rng, d - 1, code); code.push_back(w(op::logical_not)); return;
    default: {  // a and b: if a, do: b, else: false;  a or b: if a, do: true, else: b
      const bool is_and = rng() % 2;
      random_bool(rng, d - 1, code);
      code.push_back(w(op::if_then));
      if (is_and) random_bool(rng, d - 1, code); else code.insert(code.end(), {w(op::boolean), 1});
      code.push_back(w(op::if_else));
      if (is_and) code.insert(code.end(), {w(op::boolean), 0}); else random_bool(rng, d - 1, code);
      code.push_back(w(op::if_end));
    }
  }
}

std::vector<i64> inputs(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const i64 edges[] = {0, 1, -1, 2, -2, lo, hi, lo + 1, hi - 1, 1LL << 32, -(1LL << 32), 3'037'000'499, 3'037'000'500};
  std::vector<i64> v(n);
  for (auto& x : v) {
    const auto r = rng() % 4;
    x = r == 0 ? edges[rng() % std::size(edges)] : r == 1 ? static_cast<i64>(rng()) : static_cast<i64>(rng() % 2001) - 1000;
  }
  return v;
}

// Runs `code` on both host backends, out of place and in place, and checks every element against
// the reference, or the error against the reference's first fault.
void check(const std::vector<i64>& code, const std::vector<i64>& params, i64 iterations, const std::vector<i64>& in,
           std::vector<const char*> backends = {"cpu", "scalar"}, std::size_t chunk = 0) {
  std::optional<std::size_t> first;
  std::vector<i64> want(in.size());
  outcome first_fault;
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto o = reference(code, params, iterations, in[i]);
    if (o.fault && !first) first = i, first_fault = o;
    want[i] = o.value;
  }
  const kiln::program prog{code, params, iterations};
  for (const char* backend : backends)
    for (bool in_place : {false, true}) {
      kiln::run_options opt;
      opt.backend = backend;
      opt.chunk_elements = chunk;
      std::vector<i64> out = in_place ? in : std::vector<i64>(in.size(), 0x5a5a);
      auto r = in_place ? kiln::run_program(prog, out, out, opt) : kiln::run_program(prog, in, out, opt);
      const std::string what = std::string(backend) + (in_place ? " in place" : "");
      if (!first) {
        ASSERT_TRUE(r.ok()) << what << ": " << r.err().message;
        ASSERT_TRUE(out == want) << what;
        EXPECT_EQ(r->backend, backend);
      } else {
        ASSERT_FALSE(r.ok()) << what << ": element " << *first << " should fault";
        EXPECT_EQ(r.err().code, first_fault.fault == 2 ? kiln::errc::arithmetic : kiln::errc::invalid_argument) << what;
        const std::string at = "element " + std::to_string(*first) + " (" + std::to_string(in[*first]) +
                               "), iteration " + std::to_string(first_fault.iteration) + ": ";
        EXPECT_EQ(r.err().message.rfind(at, 0), 0u) << what << ": " << r.err().message << " / expected " << at;
      }
    }
}

TEST(Program, RandomProgramsMatchThe128BitEvaluator) {
  std::mt19937_64 rng(2026);
  int faulted = 0, clean = 0;
  for (int round = 0; round < 300; ++round) {
    std::vector<i64> code;
    random_expr(rng, 1 + round % 5, code);
    const std::vector<i64> params{static_cast<i64>(rng() % 100) - 50, static_cast<i64>(rng())};
    const i64 iterations = static_cast<i64>(rng() % 4);
    auto in = inputs(1 + rng() % 700, static_cast<std::uint64_t>(round));
    check(code, params, iterations, in);
    if (HasFatalFailure()) return;
    bool any = false;
    for (i64 x : in) any |= reference(code, params, iterations, x).fault != 0;
    (any ? faulted : clean)++;
  }
  // Both kinds of outcome were exercised.
  EXPECT_GT(faulted, 30);
  EXPECT_GT(clean, 30);
}

// Division by a parameter (one divisor for the whole block, done by multiplication) against
// the 128-bit evaluator: divisors of every size and sign, powers of two and their neighbours.
TEST(Program, DivisionByOneDivisorIsExact) {
  std::mt19937_64 rng(11);
  std::vector<i64> divisors{1, 2, 3, 7, -2, -3, lo, hi, lo + 1, 1'000'000'007, -6'700'417};
  for (int k = 1; k < 63; ++k) divisors.insert(divisors.end(), {i64{1} << k, (i64{1} << k) - 1, (i64{1} << k) + 1, -(i64{1} << k)});
  for (int k = 0; k < 40; ++k) divisors.push_back(static_cast<i64>(rng()) >> (rng() % 63));
  auto in = inputs(2'000, 5);
  for (i64 d : divisors) {
    if (d == 0 || d == -1) continue;  // the per-element path, tested above
    for (kiln::program_op o : {op::div, op::rem}) {
      check({w(op::x), w(op::param), 0, w(o)}, {d}, 1, in, {"cpu"});
      if (HasFatalFailure()) return;
    }
  }
}

// The seed's map written as a program, over enough elements for every worker thread, equals the
// engine's own logistic map.
TEST(Program, TheLogisticMapAsAProgram) {
  // rem(mu * x * (x + 1), p)
  const std::vector<i64> code{w(op::param), 1, w(op::x), w(op::mul), w(op::x), w(op::literal), 1, w(op::add),
                              w(op::mul), w(op::param), 0, w(op::rem)};
  const std::vector<i64> params{6'700'417, 22};
  std::vector<i64> in(1 << 18), want(in.size()), got(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i) + 1;
  ASSERT_TRUE(kiln::logistic_map(in, want, {6'700'417, 22, 10}).ok());
  kiln::run_options cpu;
  cpu.backend = "cpu";  // the interpreter (auto would pick a GPU for this many elements)
  auto r = kiln::run_program({code, params, 10}, in, got, cpu);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(got, want);
  EXPECT_EQ(r->backend, "cpu");
  // With a negative mu the map's values go negative, and rem keeps the dividend's sign.
  const std::vector<i64> neg{6'700'417, -22};
  ASSERT_TRUE(kiln::logistic_map(in, want, {6'700'417, -22, 3}).ok());
  ASSERT_TRUE(kiln::run_program({code, neg, 3}, in, got, cpu).ok());
  EXPECT_EQ(got, want);
}

// Faults far apart, met by different threads in any order: the lowest index is reported, and an
// element that faults in a later iteration still comes first when its index is lower.
TEST(Program, TheFirstFaultByIndexIsReported) {
  // div(1000, x - 1): x = 1 divides by zero at once; x = 3 gives 500, then div(1000, 499) = 2;
  // x = 1001 gives div(1000, 1000) = 1, and then divides by zero in iteration 2.
  const std::vector<i64> code{w(op::literal), 1000, w(op::x), w(op::literal), 1, w(op::sub), w(op::div)};
  std::vector<i64> in(200'000, 3);
  in[150'000] = 1;  // faults in iteration 1
  in[70'001] = 1;   // faults in iteration 1, lower index
  in[9] = 1001;     // div(1000, 1000) = 1, then div(1000, 0): iteration 2, lowest index
  for (const char* backend : {"cpu", "scalar"}) {
    kiln::run_options o;
    o.backend = backend;
    std::vector<i64> out(in.size());
    auto r = kiln::run_program({code, {}, 2}, in, out, o);
    ASSERT_FALSE(r.ok()) << backend;
    EXPECT_EQ(r.err().code, kiln::errc::arithmetic);
    EXPECT_EQ(r.err().message, "element 9 (1001), iteration 2: division by zero") << backend;
    in[9] = 3;
    r = kiln::run_program({code, {}, 2}, in, out, o);
    ASSERT_FALSE(r.ok()) << backend;
    EXPECT_EQ(r.err().message, "element 70001 (1), iteration 1: division by zero") << backend;
    in[9] = 1001;
  }
}

TEST(Program, ZeroIterationsAndEmptyInputs) {
  const std::vector<i64> code{w(op::x), w(op::literal), 0, w(op::div)};  // divides by zero when run
  std::vector<i64> in{1, lo, hi}, out(3);
  ASSERT_TRUE(kiln::run_program({code, {}, 0}, in, out).ok());
  EXPECT_EQ(out, in);
  std::vector<i64> none;
  EXPECT_TRUE(kiln::run_program({code, {}, 5}, none, none).ok());
}

// Only the branch taken is evaluated, as in Elixir's `if`: a division by zero in the other one
// does not fault, and and/or short-circuit the same way. Branches nest; min, max and abs too.
TEST(Program, OnlyTheBranchTakenCounts) {
  const i64 t = w(op::if_then), e = w(op::if_else), end = w(op::if_end);
  // if x == 0, do: -1, else: div(1000, x)
  const std::vector<i64> guarded{w(op::x), w(op::literal), 0, w(op::eq), t, w(op::literal), -1, e,
                                 w(op::literal), 1000, w(op::x), w(op::div), end};
  std::vector<i64> in(100'000);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i % 7) - 3;
  check(guarded, {}, 1, in);
  // x != 0 and div(1000, x) > 100, as if x != 0, do: div(1000, x) > 100, else: false; then
  // max(x, p0) when it holds, else abs(min(x, p1)); and collatz: if rem(x, 2) == 0, do: div(x, 2),
  // else: 3 * x + 1, nested in a branch on x's sign.
  const std::vector<i64> both{w(op::x), w(op::literal), 0, w(op::ne), t, w(op::literal), 1000, w(op::x), w(op::div),
                              w(op::literal), 100, w(op::gt), e, w(op::boolean), 0, end, t, w(op::x), w(op::param), 0,
                              w(op::max), e, w(op::x), w(op::param), 1, w(op::min), w(op::abs), end};
  check(both, {5, -20}, 3, inputs(20'000, 77));
  const std::vector<i64> collatz{w(op::x), w(op::literal), 0, w(op::gt), t,
                                 w(op::x), w(op::literal), 2, w(op::rem), w(op::literal), 0, w(op::eq), t,
                                 w(op::x), w(op::literal), 2, w(op::div), e,
                                 w(op::literal), 3, w(op::x), w(op::mul), w(op::literal), 1, w(op::add), end,
                                 e, w(op::x), end};
  std::vector<i64> seeds(10'000);
  for (std::size_t i = 0; i < seeds.size(); ++i) seeds[i] = static_cast<i64>(i) - 100;
  check(collatz, {}, 50, seeds);
  // 27 takes 111 steps to reach 1, then cycles 4, 2, 1: after 112 steps it is at 4.
  std::vector<i64> x27{27}, out(1);
  ASSERT_TRUE(kiln::run_program({collatz, {}, 112}, x27, out).ok());
  EXPECT_EQ(out[0], 4);
  // A fault in the branch taken still counts: abs(INT64_MIN) where x < 0.
  check({w(op::x), w(op::literal), 0, w(op::lt), t, w(op::x), w(op::abs), e, w(op::x), end}, {}, 1,
        {5, 0, -7, lo, hi});
}

TEST(Program, MalformedCodeIsInvalid) {
  const i64 t = w(op::if_then), e = w(op::if_else), end = w(op::if_end);
  const std::vector<std::pair<std::vector<i64>, const char*>> bad{
      {{}, "no value"},
      {{w(op::x), w(op::x)}, "2 values left instead of one"},
      {{w(op::add)}, "too few operands"},
      {{w(op::param), 2}, "parameter 2 at word 1, but 2 parameter(s) given"},
      {{w(op::param)}, "lacks its operand"},
      {{w(op::x), 99, w(op::add)}, "unknown operation 99"},
      {{w(op::boolean), 2}, "neither 0 nor 1"},
      {{w(op::x), w(op::x), w(op::lt)}, "the expression is a boolean"},
      {{w(op::x), w(op::boolean), 1, w(op::add)}, "takes an integer but finds a boolean"},
      {{w(op::x), w(op::logical_not)}, "takes a boolean but finds an integer"},
      {{w(op::x), t, w(op::x), e, w(op::x), end}, "takes a boolean but finds an integer"},
      {{w(op::x), e}, "if_else at word 1 without its if_then"},
      {{w(op::boolean), 1, t, w(op::x), end}, "without its if_else"},
      {{w(op::boolean), 1, t, w(op::x), w(op::x), e, w(op::x), end}, "does not leave one value"},
      {{w(op::boolean), 1, t, w(op::x), e, w(op::boolean), 0, end}, "values of two types"},
      {{w(op::boolean), 1, t, w(op::x), e, w(op::x)}, "a branch is not closed"},
      // A branch cannot take the values outside it: this `add` would reach below its if_then.
      {{w(op::x), w(op::boolean), 1, t, w(op::add), e, w(op::x), end}, "too few operands"},
  };
  const std::vector<i64> params{1, 2};
  for (const auto& [code, why] : bad) {
    auto s = kiln::validate(kiln::program{code, params, 1});
    ASSERT_FALSE(s.ok()) << why;
    EXPECT_EQ(s.err().code, kiln::errc::invalid_argument);
    EXPECT_NE(s.err().message.find(why), std::string::npos) << s.err().message;
  }
  std::vector<i64> nested;  // 33 nested branches: if true, do: (if true, do: ... x ...), else: x
  for (int i = 0; i < 33; ++i) nested.insert(nested.end(), {w(op::boolean), 1, t});
  nested.push_back(w(op::x));
  for (int i = 0; i < 33; ++i) nested.insert(nested.end(), {e, w(op::x), end});
  auto s33 = kiln::validate(kiln::program{nested, {}, 1});
  ASSERT_FALSE(s33.ok());
  EXPECT_NE(s33.err().message.find("more than 32 nested branches"), std::string::npos) << s33.err().message;
  std::vector<i64> deep;
  for (int i = 0; i < 65; ++i) deep.push_back(w(op::x));
  for (int i = 0; i < 64; ++i) deep.push_back(w(op::add));
  EXPECT_FALSE(kiln::validate(kiln::program{deep, {}, 1}).ok()) << "65 values at once";
  EXPECT_FALSE(kiln::validate(kiln::program{std::vector<i64>{w(op::x)}, {}, -1}).ok()) << "negative iterations";
  EXPECT_TRUE(kiln::validate(kiln::program{std::vector<i64>{w(op::x)}, {}, 1}).ok());
}

// The GPU backends compile each program for their devices (OpenCL: PoCL here and in CI; CUDA on
// a GPU machine): fewer programs than above, since each costs a build, over chunks small enough
// that faults land in later chunks (and, with `device`, on other devices) too.
void check_compiled_programs(const char* backend, int device = 0) {
  kiln::run_options probe;
  probe.backend = backend;
  probe.device = device;
  if (auto d = kiln::resolve(probe); !d) GTEST_SKIP() << backend << " unavailable: " << d.err().message;
  std::mt19937_64 rng(7);
  for (int round = 0; round < 24; ++round) {
    std::vector<i64> code;
    random_expr(rng, 1 + round % 4, code);
    const std::vector<i64> params{static_cast<i64>(rng() % 100) - 50, static_cast<i64>(rng())};
    auto in = inputs(1 + rng() % 5000, static_cast<std::uint64_t>(round) + 1000);
    // Every other round, values that fit in 32 bits but for one in a thousand: chunks that cross
    // the bus narrowed (narrow_transfers) beside ones at full width.
    if (round % 2)
      for (auto& x : in)
        if (rng() % 1000) x = static_cast<std::int32_t>(x);
    check(code, params, static_cast<i64>(rng() % 4), in, {backend}, 1 + rng() % 1500);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // The seed's map, compiled: equal to the engine's own.
  const std::vector<i64> logistic{w(op::param), 1, w(op::x), w(op::mul), w(op::x), w(op::literal), 1, w(op::add),
                                  w(op::mul), w(op::param), 0, w(op::rem)};
  std::vector<i64> in(100'003), want(in.size()), got(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i) + 1;
  ASSERT_TRUE(kiln::logistic_map(in, want, {6'700'417, 22, 10}).ok());
  auto r = kiln::run_program({logistic, std::vector<i64>{6'700'417, 22}, 10}, in, got, probe);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(got, want);
  EXPECT_EQ(r->backend, backend);
  // The first fault by index, over many chunks: element 9 faults in iteration 2, two others in 1.
  const std::vector<i64> code{w(op::literal), 1000, w(op::x), w(op::literal), 1, w(op::sub), w(op::div)};
  std::vector<i64> f(300'000, 3);
  f[250'000] = 1, f[70'001] = 1, f[9] = 1001;
  kiln::run_options small = probe;
  small.chunk_elements = 4096;
  for (bool in_place : {false, true}) {
    std::vector<i64> data = f, out(f.size());
    r = in_place ? kiln::run_program({code, {}, 2}, data, data, small) : kiln::run_program({code, {}, 2}, f, out, small);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, kiln::errc::arithmetic);
    EXPECT_EQ(r.err().message, "element 9 (1001), iteration 2: division by zero") << (in_place ? "in place" : "");
  }
}

// Division and remainder in compiled kernels, where neither operand is a literal: dividends and
// divisors at the edges of every path a kernel may take (around 0, +-2^52, multiples of the
// divisor and their neighbours, the ends of int64), divisor fixed (a parameter) and per element.
void check_compiled_division(const char* backend) {
  kiln::run_options probe;
  probe.backend = backend;
  if (auto d = kiln::resolve(probe); !d) GTEST_SKIP() << backend << " unavailable: " << d.err().message;
  const i64 e52 = i64{1} << 52;
  std::vector<i64> divisors{1, 2, 3, -2, -3, 7, 10, 6'700'417, -6'700'417, (i64{1} << 32) - 1, e52 - 1, e52, e52 + 1,
                            -e52 + 1, -e52, -e52 - 1, lo, hi, lo + 1, i64{1} << 40, -(i64{1} << 40) - 3};
  std::vector<i64> in{0, 1, -1, e52 - 1, e52, e52 + 1, -e52, -e52 + 1, -e52 - 1, lo, hi, lo + 1, hi - 1};
  std::mt19937_64 rng(52);
  // Multiples of each divisor and their neighbours, in two's complement (a product or neighbour
  // beyond int64 wraps, which only makes it another value near an edge).
  auto wrap = [](std::uint64_t v) { return static_cast<i64>(v); };
  for (i64 d : divisors)
    for (i64 m : {i64{1}, i64{3}, (e52 - 1) / (d == lo ? hi : d < 0 ? -d : d)}) {
      const auto base = static_cast<std::uint64_t>(d) * static_cast<std::uint64_t>(m);
      in.insert(in.end(), {wrap(base), wrap(base - 1), wrap(base + 1), wrap(0 - base), wrap(1 - base), wrap(0 - base - 1)});
    }
  for (int i = 0; i < 3000; ++i) in.push_back(static_cast<i64>(rng()) >> (rng() % 64));
  // As divisors the same values, less those that fault (0; -1 under INT64_MIN), which would end
  // the run at its first element and leave the others unchecked (faults are tested elsewhere).
  std::vector<i64> nonzero;
  for (i64 x : in)
    if (x != 0 && x != -1) nonzero.push_back(x);
  for (i64 d : divisors)
    for (kiln::program_op o : {op::div, op::rem}) {
      check({w(op::x), w(op::param), 0, w(o)}, {d}, 1, in, {backend});        // x op d
      if (::testing::Test::HasFatalFailure()) return;
      check({w(op::param), 0, w(op::x), w(o)}, {d}, 1, nonzero, {backend});   // d op x
      if (::testing::Test::HasFatalFailure()) return;
    }
}

TEST(Program, OpenCLDividesExactlyAtTheEdges) { check_compiled_division("opencl"); }

TEST(Program, CudaDividesExactlyAtTheEdges) { check_compiled_division("cuda"); }

TEST(Program, OpenCLCompilesProgramsThatMatchThe128BitEvaluator) { check_compiled_programs("opencl"); }

TEST(Program, CudaCompilesProgramsThatMatchThe128BitEvaluator) { check_compiled_programs("cuda"); }

// Every usable CUDA device at once, one work counter feeding them all (one device where there is one).
TEST(Program, CudaSpreadsAProgramOverEveryDevice) { check_compiled_programs("cuda", kiln::all_devices); }

// From page-locked memory (kiln::host_memory) the CUDA lanes copy straight from the caller's
// arrays, without staging: the same results and faults.
TEST(Program, CudaRunsProgramsFromPinnedMemory) {
  kiln::run_options o;
  o.backend = "cuda";
  if (auto d = kiln::resolve(o); !d) GTEST_SKIP() << "cuda unavailable: " << d.err().message;
  const std::vector<i64> code{w(op::x), w(op::x), w(op::mul), w(op::param), 0, w(op::rem)};  // rem(x * x, p)
  const std::vector<i64> params{1'000'000'007};
  const std::size_t n = 3'000'001;
  auto in = kiln::host_memory::allocate(n);
  auto out = kiln::host_memory::allocate(n);
  ASSERT_TRUE(in.ok() && out.ok());
  EXPECT_TRUE(in->pinned());
  for (std::size_t i = 0; i < n; ++i) in->data()[i] = static_cast<i64>(i) - 1'000'000;
  auto r = kiln::run_program({code, params, 3}, in->span(), out->span(), o);
  ASSERT_TRUE(r.ok()) << r.err().message;
  for (std::size_t i = 0; i < n; i += 997) {
    ASSERT_EQ(out->data()[i], reference(code, params, 3, in->data()[i]).value) << i;
  }
  in->data()[2'500'000] = 4'000'000'000;  // x * x overflows int64 in iteration 1
  r = kiln::run_program({code, params, 3}, in->span(), in->span(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::invalid_argument);
  EXPECT_EQ(r.err().message.rfind("element 2500000 (4000000000), iteration 1: ", 0), 0u) << r.err().message;
}

// Many threads at once, each with its own program, on the host and (where usable) the GPU
// backends, whose programs share one cache per device (OpenCL) or per process (CUDA).
TEST(Program, ManyThreadsRunProgramsAtOnce) {
  kiln::run_options probe;
  probe.backend = "opencl";
  const bool opencl = kiln::resolve(probe).ok();
  probe.backend = "cuda";
  const bool cuda = kiln::resolve(probe).ok();
  constexpr int threads = 8;
  std::vector<int> ok(threads, 0);
  std::vector<std::string> why(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      // x * (t + 2) + t, twice: two programs per backend, each used by several threads.
      const std::vector<i64> code{w(op::x), w(op::param), 0, w(op::mul), w(op::param), 1, w(op::add)};
      const std::vector<i64> params{t % 2 + 2, t};
      const char* backend = opencl && t % 4 == 0 ? "opencl" : cuda && t % 4 == 3 ? "cuda" : t % 4 == 1 ? "scalar" : "cpu";
      auto in = inputs(20'000 + static_cast<std::size_t>(t), static_cast<std::uint64_t>(t));
      for (auto& x : in) x %= 1'000'000;  // no overflow
      std::vector<i64> out(in.size()), want(in.size());
      for (std::size_t i = 0; i < in.size(); ++i) want[i] = (in[i] * params[0] + t) * params[0] + t;
      kiln::run_options o;
      o.backend = backend;
      auto r = kiln::run_program({code, params, 2}, in, out, o);
      ok[t] = r.ok() && out == want;
      if (!r.ok()) why[t] = r.err().message;
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_TRUE(ok[t]) << "thread " << t << ": " << why[t];
}

// "auto" runs small inputs on the host and large ones on a GPU whose backend compiles programs
// (the cpu backend where there is none, as here and in CI).
TEST(Program, AutoPicksTheHostForSmallInputs) {
  const std::vector<i64> code{w(op::x), w(op::literal), 3, w(op::mul)};
  std::vector<i64> small(1000, 5), out(1000);
  auto r = kiln::run_program({code, {}, 1}, small, out);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->backend, "cpu");
  EXPECT_EQ(out, std::vector<i64>(1000, 15));
  // "auto" picks its device itself, as logistic_map's does: a device index does not bind it.
  kiln::run_options any;
  any.device = 3;
  r = kiln::run_program({code, {}, 1}, small, out, any);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->backend, "cpu");
  std::vector<i64> large(1 << 17, 5), large_out(large.size());
  r = kiln::run_program({code, {}, 1}, large, large_out);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(large_out, std::vector<i64>(large.size(), 15));
  bool gpu = false;
  for (const auto& d : kiln::devices()) gpu = gpu || (d.available && d.gpu);
  if (!gpu) {
    EXPECT_EQ(r->backend, "cpu");
  }
  std::cout << "[ auto     ] 2^17 elements ran on " << r->backend << " (" << r->device << ")" << std::endl;
}

TEST(Program, UnknownBackendsAreRefused) {
  const std::vector<i64> code{w(op::x)};
  std::vector<i64> in{1}, out(1);
  kiln::run_options o;
  o.backend = "tpu";
  auto r = kiln::run_program({code, {}, 1}, in, out, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::unknown_backend);
}

}  // namespace
