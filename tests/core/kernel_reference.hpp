// A per-element kernel evaluator in 128-bit integers with Elixir's semantics, and a generator of random well-typed kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kiln/kernel.hpp"

namespace kiln_test {

using i64 = std::int64_t;
using u64 = std::uint64_t;
using i128 = __int128;
using u128 = unsigned __int128;

constexpr i64 int64_min = std::numeric_limits<i64>::min();
constexpr i64 int64_max = std::numeric_limits<i64>::max();

constexpr i64 w(kiln::op o) { return static_cast<i64>(o); }

// Why an element faults, as Elixir would have it (beyond_int64: Elixir would go on with a big
// integer, which Kiln refuses).
enum class ref_fault { none, beyond_int64, division_by_zero, negative_exponent, no_cond_clause, no_case_clause, zero_step };

// The error code a fault is reported with: ArgumentError-like faults are invalid_argument, the
// ones Elixir raises as ArithmeticError (and the clause errors) are arithmetic.
inline bool is_arithmetic(ref_fault f) {
  return f == ref_fault::division_by_zero || f == ref_fault::negative_exponent || f == ref_fault::no_cond_clause ||
         f == ref_fault::no_case_clause;
}

// Words of the reason a fault's message gives.
inline const char* fault_phrase(ref_fault f) {
  switch (f) {
    case ref_fault::none: return "";
    case ref_fault::beyond_int64: return "does not fit in int64";
    case ref_fault::division_by_zero: return "division by zero";
    case ref_fault::negative_exponent: return "negative exponent";
    case ref_fault::no_cond_clause: return "no cond clause";
    case ref_fault::no_case_clause: return "no case clause";
    case ref_fault::zero_step: return "step must not be 0";
  }
  return "?";
}

struct ref_outcome {
  std::vector<i64> values;  // one per output, where no fault
  ref_fault fault = ref_fault::none;
  i64 application = 0;  // 1-based, where it faulted
};

// One kernel bound to one run's arguments, evaluated one element at a time, as Elixir evaluates
// the expression it stands for: left to right, only the branch taken, ranges as Elixir's
// first..last//step, every integer exact (128 bits hold every operation on int64 operands) and
// checked against int64 where it is a value of its own. A rem whose divisor is a literal or
// scalar with magnitude in 1..2^32-1 and whose dividend is a tree of mul (or a sum or difference)
// is exact: its product and sums are never values of their own, so only the leaves fault.
class reference {
 public:
  reference(std::span<const i64> code, std::size_t outputs, std::size_t locals, i64 iterations,
            std::span<const kiln::arg> args)
      : outputs_(outputs), locals_(locals), iterations_(iterations), args_(args.begin(), args.end()) {
    for (std::size_t i = 0; i < code.size(); ++i) {
      instr in{code[i]};
      if (has_operand(code[i])) in.operand = code[++i];
      code_.push_back(in);
    }
    link();
    analyse_lowering();
  }

  ref_outcome element(std::size_t index) const {
    ref_outcome out;
    i64 x = 0;
    const bool repeated = iterations_ != 1;
    for (const auto& a : args_)
      if (a.what == kiln::arg::kind::array) x = a.array[index];
    if (iterations_ == 0) {
      out.values = {x};
      return out;
    }
    const i64 apps = repeated ? iterations_ : 1;
    std::vector<i128> loc(locals_, 0);
    for (i64 app = 1; app <= apps; ++app) {
      const ref_fault f = run(index, x, loc, out.values);
      if (f != ref_fault::none) {
        out.values.clear();
        out.fault = f;
        out.application = app;
        return out;
      }
      if (repeated) x = out.values[0];
    }
    return out;
  }

  // How many rems the analysis lowered (so that tests can tell the lowering was exercised).
  std::size_t lowered() const {
    std::size_t n = 0;
    for (const auto& in : code_) n += in.lowered;
    return n;
  }

 private:
  struct instr {
    i64 op;
    i64 operand = 0;
    std::size_t match = 0;  // if_then -> if_else, if_else -> if_end, loop_begin <-> loop_end
    u64 mod = 0;            // mul/add/sub inside a lowered rem's dividend: |divisor|
    bool lowered = false;   // a rem whose dividend is exact
  };
  struct val {
    i128 v = 0;        // the exact value (a sum inside a dividend may pass int64)
    u64 res = 0;       // a product inside a dividend: |product| mod |divisor|
    bool neg = false;  // ... and its sign
    bool zero = false;
    bool prod = false;
  };

  static bool has_operand(i64 o) {
    using kiln::op;
    return o == w(op::arg) || o == w(op::literal) || o == w(op::boolean) || o == w(op::local_get) ||
           o == w(op::local_set) || o == w(op::loop_begin) || o == w(op::fail);
  }
  static bool fits(i128 v) { return v >= int64_min && v <= int64_max; }
  static bool small_divisor(i64 m) { return m != 0 && m >= -((i64{1} << 32) - 1) && m <= (i64{1} << 32) - 1; }

  void link() {
    using kiln::op;
    std::vector<std::size_t> open;
    for (std::size_t i = 0; i < code_.size(); ++i) {
      const i64 o = code_[i].op;
      if (o == w(op::if_then) || o == w(op::loop_begin)) {
        open.push_back(i);
      } else if (o == w(op::if_else)) {
        code_[open.back()].match = i;
        open.back() = i;
      } else if (o == w(op::if_end)) {
        code_[open.back()].match = i;
        open.pop_back();
      } else if (o == w(op::loop_end)) {
        code_[open.back()].match = i;
        code_[i].match = open.back();
        open.pop_back();
      }
    }
  }

  // Which instruction pushes each operand of each instruction, then which rems are exact.
  void analyse_lowering() {
    using kiln::op;
    constexpr std::size_t none = ~std::size_t{0};
    std::vector<std::size_t> left(code_.size(), none), right(code_.size(), none), st;
    for (std::size_t i = 0; i < code_.size(); ++i) {
      const i64 o = code_[i].op;
      auto pop = [&] {
        const std::size_t v = st.back();
        st.pop_back();
        return v;
      };
      if (o == w(op::arg) || o == w(op::literal) || o == w(op::boolean) || o == w(op::index) ||
          o == w(op::local_get) || o == w(op::fail)) {
        st.push_back(i);
      } else if (o == w(op::neg) || o == w(op::abs) || o == w(op::bnot) || o == w(op::logical_not)) {
        left[i] = pop();
        st.push_back(i);
      } else if (o == w(op::local_set) || o == w(op::if_then)) {
        pop();
      } else if (o == w(op::if_else) || o == w(op::loop_end)) {
      } else if (o == w(op::if_end)) {
        pop(), pop();
        st.push_back(i);
      } else if (o == w(op::loop_begin)) {
        pop(), pop(), pop();
      } else {
        right[i] = pop();
        left[i] = pop();
        st.push_back(i);
      }
    }
    for (std::size_t i = 0; i < code_.size(); ++i) {
      if (code_[i].op != w(op::rem)) continue;
      const instr& m = code_[right[i]];
      i64 divisor = 0;
      if (m.op == w(op::literal)) {
        divisor = m.operand;
      } else if (m.op == w(op::arg) && args_[static_cast<std::size_t>(m.operand)].what == kiln::arg::kind::scalar) {
        divisor = args_[static_cast<std::size_t>(m.operand)].scalar;
      } else {
        continue;
      }
      if (!small_divisor(divisor)) continue;
      const std::size_t e = left[i];
      const i64 eo = code_[e].op;
      std::vector<std::size_t> muls, factors;
      if (eo == w(op::mul)) {
        std::vector<std::size_t> todo{e};
        while (!todo.empty()) {
          const std::size_t r = todo.back();
          todo.pop_back();
          if (code_[r].op == w(op::mul)) {
            muls.push_back(r);
            todo.push_back(left[r]);
            todo.push_back(right[r]);
          } else {
            factors.push_back(r);
          }
        }
      } else if (eo == w(op::add) || eo == w(op::sub)) {
        factors.push_back(e);
      } else {
        continue;
      }
      if (factors.size() > 16) continue;  // the lowering's limit: then every mul is checked
      const u64 um = divisor < 0 ? u64{0} - static_cast<u64>(divisor) : static_cast<u64>(divisor);
      for (auto r : muls) code_[r].mod = um;
      for (auto r : factors)
        if (code_[r].op == w(op::add) || code_[r].op == w(op::sub)) code_[r].mod = um;
      code_[i].lowered = true;
    }
  }

  i64 arg_value(std::size_t a, std::size_t index, i64 x) const {
    const kiln::arg& g = args_[a];
    if (g.what == kiln::arg::kind::scalar) return g.scalar;
    return iterations_ != 1 ? x : g.array[index];
  }

  // Integer.pow(a, b) for b >= 0 by repeated multiplication (|a| >= 2 passes int64 within 64 steps).
  static bool power(i128 a, i128 b, i128& out) {
    if (b == 0) return out = 1, true;
    if (a == 0 || a == 1) return out = a, true;
    if (a == -1) return out = (b % 2 != 0) ? -1 : 1, true;
    i128 r = 1;
    for (i128 e = 0; e < b; ++e) {
      r *= a;
      if (!fits(r)) return false;
    }
    return out = r, true;
  }

  // a * 2^k for any k (floor(a / 2^-k) when k < 0): Bitwise.bsl(a, k) and Bitwise.bsr(a, -k).
  static bool shift(i128 a, i128 k, i128& out) {
    if (k >= 0) {
      if (a == 0) return out = 0, true;
      if (k >= 64) return false;
      out = a * (static_cast<i128>(1) << static_cast<int>(k));
      return fits(out);
    }
    const i128 s = -k;
    out = s >= 120 ? (a < 0 ? -1 : 0) : a >> static_cast<int>(s);
    return true;
  }

  ref_fault run(std::size_t index, i64 x, std::vector<i128>& loc, std::vector<i64>& values) const {
    using kiln::op;
    val st[kiln::kernel_max_depth + 2];
    std::size_t sp = 0;
    struct loop {
      std::size_t begin, local;
      i128 value, last, step;
    };
    loop loops[kiln::kernel_max_nesting + 1];
    std::size_t nloops = 0;
    auto push = [&](i128 v) { st[sp++] = val{v}; };
    // A value as a factor of a product modulo um.
    auto residue = [](const val& a, u64 um) {
      if (a.prod) return a;
      val r;
      const u128 mag = a.v < 0 ? static_cast<u128>(-a.v) : static_cast<u128>(a.v);
      r.res = static_cast<u64>(mag % um);
      r.neg = a.v < 0;
      r.zero = a.v == 0;
      r.prod = true;
      return r;
    };
    for (std::size_t pc = 0; pc < code_.size(); ++pc) {
      const instr& in = code_[pc];
      const auto o = static_cast<op>(in.op);
      switch (o) {
        case op::arg: push(arg_value(static_cast<std::size_t>(in.operand), index, x)); continue;
        case op::literal: case op::boolean: push(in.operand); continue;
        case op::index: push(static_cast<i128>(index)); continue;
        case op::local_get: push(loc[static_cast<std::size_t>(in.operand)]); continue;
        case op::local_set: loc[static_cast<std::size_t>(in.operand)] = st[--sp].v; continue;
        case op::fail:
          return in.operand == static_cast<i64>(kiln::fail_reason::no_cond_clause) ? ref_fault::no_cond_clause
                                                                                  : ref_fault::no_case_clause;
        case op::if_then:
          if (st[--sp].v == 0) pc = in.match;  // on into the second half
          continue;
        case op::if_else: pc = in.match; continue;  // the first half ran: past the second
        case op::if_end: continue;
        case op::loop_begin: {
          const i128 step = st[sp - 1].v, last = st[sp - 2].v, first = st[sp - 3].v;
          sp -= 3;
          if (step == 0) return ref_fault::zero_step;
          if (step > 0 ? first > last : first < last) {
            pc = in.match;
            continue;
          }
          loops[nloops++] = {pc, static_cast<std::size_t>(in.operand), first, last, step};
          loc[static_cast<std::size_t>(in.operand)] = first;
          continue;
        }
        case op::loop_end: {
          loop& l = loops[nloops - 1];
          l.value += l.step;
          if (l.step > 0 ? l.value <= l.last : l.value >= l.last) {
            loc[l.local] = l.value;
            pc = l.begin;
          } else {
            --nloops;
          }
          continue;
        }
        case op::neg: case op::abs: case op::bnot: case op::logical_not: {
          const i128 a = st[sp - 1].v;
          const i128 r = o == op::neg ? -a : o == op::abs ? (a < 0 ? -a : a) : o == op::bnot ? -a - 1 : (a == 0);
          if (!fits(r)) return ref_fault::beyond_int64;
          st[sp - 1] = val{r};
          continue;
        }
        default: break;
      }
      const val vb = st[--sp], va = st[--sp];
      const i128 a = va.v, b = vb.v;
      if (in.mod != 0) {  // inside a lowered rem's dividend: exact, never a value of its own
        if (o == op::mul) {
          const val ra = residue(va, in.mod), rb = residue(vb, in.mod);
          val r;
          r.res = static_cast<u64>(static_cast<u128>(ra.res) * rb.res % in.mod);
          r.neg = ra.neg != rb.neg;
          r.zero = ra.zero || rb.zero;
          r.prod = true;
          st[sp++] = r;
        } else {
          st[sp++] = val{o == op::add ? a + b : a - b};
        }
        continue;
      }
      if (in.lowered) {
        // rem(E, m): the sign of E, |E| mod |m|.
        const val e = residue(va, in.mod == 0 ? static_cast<u64>(b < 0 ? -b : b) : in.mod);
        const i128 r = e.zero ? 0 : e.neg ? -static_cast<i128>(e.res) : static_cast<i128>(e.res);
        push(r);
        continue;
      }
      i128 r = 0;
      switch (o) {
        case op::add: r = a + b; break;
        case op::sub: r = a - b; break;
        case op::mul: r = a * b; break;
        case op::div:
          if (b == 0) return ref_fault::division_by_zero;
          r = a / b;  // truncates toward zero, as Elixir's div
          break;
        case op::rem:
          if (b == 0) return ref_fault::division_by_zero;
          r = a % b;  // the dividend's sign, as Elixir's rem
          break;
        case op::min: r = a < b ? a : b; break;
        case op::max: r = a < b ? b : a; break;
        case op::pow:
          if (b < 0) return ref_fault::negative_exponent;
          if (!power(a, b, r)) return ref_fault::beyond_int64;
          break;
        case op::band: r = a & b; break;
        case op::bor: r = a | b; break;
        case op::bxor: r = a ^ b; break;
        case op::bsl:
          if (!shift(a, b, r)) return ref_fault::beyond_int64;
          break;
        case op::bsr:
          if (!shift(a, -b, r)) return ref_fault::beyond_int64;
          break;
        case op::eq: r = a == b; break;
        case op::ne: r = a != b; break;
        case op::lt: r = a < b; break;
        case op::le: r = a <= b; break;
        case op::gt: r = a > b; break;
        case op::ge: r = a >= b; break;
        default: break;
      }
      if (!fits(r)) return ref_fault::beyond_int64;
      push(r);
    }
    values.resize(outputs_);
    for (std::size_t j = 0; j < outputs_; ++j) values[j] = static_cast<i64>(st[j].v);
    return ref_fault::none;
  }

  std::vector<instr> code_;
  std::size_t outputs_, locals_;
  i64 iterations_;
  std::vector<kiln::arg> args_;
};

// ---- random kernels ------------------------------------------------------------------------------

struct random_kernel {
  std::vector<i64> code;
  std::size_t outputs = 1;
  std::size_t locals = 0;
  i64 iterations = 1;
  std::vector<bool> array;      // per argument: an array, else a scalar
  std::vector<i64> scalars;     // per argument (scalars only)
  kiln::kernel view() const { return kiln::kernel{code, array.size(), outputs, locals, iterations}; }
};

// Values at the edges: 0, ±1, the ends of int64, divisors the lowering takes and their
// neighbours, powers of two and square roots of 2^63.
inline const std::vector<i64>& edge_values() {
  static const std::vector<i64> v{0, 1, -1, 2, -2, 3, -3, 7, int64_min, int64_max, int64_min + 1, int64_max - 1,
                                  6'700'417, 6'700'416, 6'700'418, -6'700'417, 4'294'967'291, 4'294'967'295,
                                  4'294'967'296, -4'294'967'295, 4'294'967'297, i64{1} << 31, -(i64{1} << 31),
                                  (i64{1} << 31) - 1, i64{1} << 62, -(i64{1} << 62), 3'037'000'499, 3'037'000'500,
                                  -3'037'000'500, 63, 64, -64, 1'000'000'007, 6'700'417LL * 6'700'417LL};
  return v;
}

// Kernels with every operation: expressions, branches (and `and`/`or`/`cond` as Elixir writes
// them), loops with uniform bounds, locals (some written in branches and loops and read after),
// several arrays and outputs. Well typed and within the limits by construction.
class kernel_generator {
 public:
  explicit kernel_generator(std::mt19937_64& rng) : rng_(rng) {}

  // arrays >= 1 array arguments and scalars scalar arguments in a random order.
  random_kernel make(std::size_t arrays, std::size_t scalars, std::size_t outputs, int depth, bool small_values) {
    small_ = small_values;
    depth_ = depth;
    k_ = random_kernel{};
    slots_.clear();
    visible_.clear();
    in_branch_ = 0;
    nest_ = 0;
    array_args_.clear();
    scalar_args_.clear();
    for (std::size_t a = 0; a < arrays + scalars; ++a) k_.array.push_back(a < arrays);
    std::shuffle(k_.array.begin(), k_.array.end(), rng_);
    for (std::size_t a = 0; a < k_.array.size(); ++a) {
      (k_.array[a] ? array_args_ : scalar_args_).push_back(a);
      k_.scalars.push_back(k_.array[a] ? 0 : small_ && chance(80) ? static_cast<i64>(pick(21)) - 10 : scalar_value());
    }
    k_.outputs = outputs;
    statements(static_cast<int>(pick(4)));
    for (std::size_t j = 0; j < outputs; ++j) int_expr(depth, false);
    k_.locals = slots_.size() + pick(2);
    return k_;
  }

  i64 scalar_value() {
    switch (pick(4)) {
      case 0: return edge_values()[pick(edge_values().size())];
      case 1: return static_cast<i64>(pick(21)) - 10;
      case 2: return static_cast<i64>(rng_());
      default: return static_cast<i64>(rng_()) >> pick(64);
    }
  }

 private:
  struct slot {
    bool boolean;
    bool uniform;  // never set in a branch nor from an element's value: usable in loop bounds
  };

  std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
  bool chance(int percent) { return static_cast<int>(pick(100)) < percent; }
  void emit(kiln::op o) { k_.code.push_back(w(o)); }
  void emit(kiln::op o, i64 operand) { k_.code.insert(k_.code.end(), {w(o), operand}); }

  i64 literal() {
    if (small_ || chance(30)) return static_cast<i64>(pick(11)) - 5;
    return edge_values()[pick(edge_values().size())];
  }

  // Visible slots of a type (uniform only where asked).
  std::vector<std::size_t> slots_of(bool boolean, bool uniform) const {
    std::vector<std::size_t> r;
    for (auto s : visible_)
      if (slots_[s].boolean == boolean && (!uniform || slots_[s].uniform)) r.push_back(s);
    return r;
  }

  void leaf(bool uniform) {
    for (;;) {
      switch (pick(6)) {
        case 0: case 1:
          if (uniform) continue;
          emit(kiln::op::arg, static_cast<i64>(array_args_[pick(array_args_.size())]));
          return;
        case 2:
          if (scalar_args_.empty()) continue;
          emit(kiln::op::arg, static_cast<i64>(scalar_args_[pick(scalar_args_.size())]));
          return;
        case 3: emit(kiln::op::literal, literal()); return;
        case 4:
          if (uniform || !chance(40)) continue;
          emit(kiln::op::index);
          return;
        default: {
          const auto s = slots_of(false, uniform);
          if (s.empty()) continue;
          emit(kiln::op::local_get, static_cast<i64>(s[pick(s.size())]));
          return;
        }
      }
    }
  }

  // A shift count or exponent: mostly small, sometimes any value.
  void count_expr(int d, bool uniform) {
    static const i64 counts[] = {-70, -64, -63, -62, -1, 0, 1, 2, 5, 31, 32, 62, 63, 64, 65, int64_min, int64_max};
    switch (small_ ? 1 : pick(4)) {
      case 0: emit(kiln::op::literal, counts[pick(std::size(counts))]); break;
      case 1: emit(kiln::op::literal, static_cast<i64>(pick(8))); break;
      case 2:
        int_expr(d, uniform);
        emit(kiln::op::literal, 63);
        emit(kiln::op::band);
        break;
      default: int_expr(d, uniform);
    }
  }

  // A divisor the lowering may take (literal or scalar), or none of those.
  void divisor(int d, bool uniform) {
    static const i64 small[] = {1, -1, 2, 3, -7, 10, 6'700'417, -6'700'417, 4'294'967'291, 4'294'967'295,
                                -4'294'967'295, 4'294'967'296, int64_min, 0};
    if (chance(60)) emit(kiln::op::literal, small[pick(std::size(small) - (chance(90) ? 1 : 0))]);
    else int_expr(d, uniform);
  }

  // A factor of a product: a value, or a sum or difference of two.
  void factor(int d, bool uniform) {
    if (chance(35)) {
      int_expr(d, uniform);
      int_expr(d, uniform);
      emit(chance(50) ? kiln::op::add : kiln::op::sub);
    } else {
      int_expr(d, uniform);
    }
  }

  // Statements in a branch's half, then its value; what they set stays local to the half.
  void half(int d, bool uniform, bool boolean) {
    const auto saved = visible_;
    ++in_branch_;
    // Statements only in the outermost branches, so that generation ends.
    if (in_branch_ == 1 && chance(25)) statements(1 + static_cast<int>(pick(2)));
    boolean ? bool_expr(d, uniform) : int_expr(d, uniform);
    --in_branch_;
    visible_ = saved;
  }

  void int_expr(int d, bool uniform) {
    using kiln::op;
    if (d <= 0) return leaf(uniform);
    switch (pick(20)) {
      case 0: case 1: return leaf(uniform);
      case 2: {
        int_expr(d - 1, uniform);
        static const op unary[] = {op::neg, op::abs, op::bnot};
        emit(unary[pick(3)]);
        return;
      }
      case 3: case 4: case 5: case 6: {
        static const op binary[] = {op::add, op::sub, op::mul, op::div, op::rem, op::min, op::max,
                                    op::band, op::bor, op::bxor};
        int_expr(d - 1, uniform);
        int_expr(d - 1, uniform);
        emit(binary[pick(std::size(binary))]);
        return;
      }
      case 7:
        int_expr(d - 1, uniform);
        count_expr(d - 1, uniform);
        emit(chance(50) ? op::bsl : op::bsr);
        return;
      case 8:
        int_expr(d - 1, uniform);
        count_expr(d - 1, uniform);
        emit(op::pow);
        return;
      case 9: case 10: {  // rem of a product (the lowering), or div/rem by a divisor
        if (chance(70)) {
          const std::size_t n = 1 + pick(4);
          factor(d - 1, uniform);
          for (std::size_t f = 1; f < n; ++f) {
            factor(d - 1, uniform);
            emit(op::mul);
          }
          divisor(d - 1, uniform);
          emit(op::rem);
        } else {
          int_expr(d - 1, uniform);
          divisor(d - 1, uniform);
          emit(chance(50) ? op::div : op::rem);
        }
        return;
      }
      case 11: case 12:  // if c, do: a, else: b
        bool_expr(d - 1, uniform);
        emit(op::if_then);
        half(d - 1, uniform, false);
        emit(op::if_else);
        half(d - 1, uniform, false);
        emit(op::if_end);
        return;
      case 13:  // cond do c -> a; true -> raise (no clause)
        bool_expr(d - 1, uniform);
        emit(op::if_then);
        half(d - 1, uniform, false);
        emit(op::if_else);
        emit(op::fail, static_cast<i64>(pick(2)));
        emit(op::if_end);
        return;
      case 14: {  // a guarded division: if b != 0, do: div(a, b), else: a literal
        const std::size_t start = k_.code.size();
        int_expr(d - 1, uniform);
        const std::vector<i64> b(k_.code.begin() + static_cast<std::ptrdiff_t>(start), k_.code.end());
        emit(op::literal, 0);
        emit(op::ne);
        emit(op::if_then);
        int_expr(d - 1, uniform);
        k_.code.insert(k_.code.end(), b.begin(), b.end());
        emit(chance(50) ? op::div : op::rem);
        emit(op::if_else);
        emit(op::literal, literal());
        emit(op::if_end);
        return;
      }
      default: {
        static const op binary[] = {op::add, op::sub, op::mul, op::min, op::max, op::band, op::bxor};
        int_expr(d - 1, uniform);
        int_expr(d - 1, uniform);
        emit(binary[pick(std::size(binary))]);
      }
    }
  }

  void bool_expr(int d, bool uniform) {
    using kiln::op;
    if (d <= 0 || chance(15)) {
      const auto s = slots_of(true, uniform);
      if (!s.empty() && chance(40)) return emit(op::local_get, static_cast<i64>(s[pick(s.size())]));
      if (chance(30)) return emit(op::boolean, static_cast<i64>(pick(2)));
    }
    switch (pick(6)) {
      case 0: case 1: case 2: {
        static const op cmp[] = {op::eq, op::ne, op::lt, op::le, op::gt, op::ge};
        int_expr(d > 0 ? d - 1 : 0, uniform);
        int_expr(d > 0 ? d - 1 : 0, uniform);
        emit(cmp[pick(6)]);
        return;
      }
      case 3:
        bool_expr(d - 1, uniform);
        emit(op::logical_not);
        return;
      default: {  // a and b: if a, do: b, else: false;  a or b: if a, do: true, else: b
        const bool is_and = chance(50);
        bool_expr(d - 1, uniform);
        emit(op::if_then);
        if (is_and) half(d - 1, uniform, true);
        else emit(op::boolean, 1);
        emit(op::if_else);
        if (is_and) emit(op::boolean, 0);
        else half(d - 1, uniform, true);
        emit(op::if_end);
      }
    }
  }

  // A loop bound: small (so that loops stay short) and the same for every element.
  void bound() {
    using kiln::op;
    switch (pick(3)) {
      case 0: emit(op::literal, static_cast<i64>(pick(7)) - 3); return;
      case 1:
        int_expr(1, true);
        emit(op::literal, 3);
        emit(op::band);
        return;
      default:
        int_expr(1, true);
        emit(op::literal, 4);
        emit(op::rem);
    }
  }

  void step() {
    using kiln::op;
    if (chance(3)) return emit(op::literal, 0);  // ArgumentError: step 0
    if (chance(70)) {
      static const i64 steps[] = {1, 1, 2, -1, -1, -2, 3};
      return emit(op::literal, steps[pick(std::size(steps))]);
    }
    int_expr(1, true);
    emit(op::literal, 1);
    emit(op::band);
    emit(op::literal, 1);
    emit(op::add);
    if (chance(50)) emit(op::neg);
  }

  // Sets a local: a new one (visible from here on in this scope) or a visible one again.
  void assignment() {
    using kiln::op;
    const bool boolean = chance(20);
    std::vector<std::size_t> again;
    for (auto s : visible_)
      if (slots_[s].boolean == boolean && (!slots_[s].uniform || in_branch_ == 0)) again.push_back(s);
    if (!again.empty() && chance(50)) {
      const std::size_t s = again[pick(again.size())];
      boolean ? bool_expr(depth_ - 1, slots_[s].uniform) : int_expr(depth_ - 1, slots_[s].uniform);
      emit(op::local_set, static_cast<i64>(s));
      return;
    }
    const bool uniform = in_branch_ == 0 && chance(40);
    boolean ? bool_expr(depth_ - 1, uniform) : int_expr(depth_ - 1, uniform);
    slots_.push_back({boolean, uniform});
    emit(op::local_set, static_cast<i64>(slots_.size() - 1));
    visible_.push_back(slots_.size() - 1);
  }

  void statements(int n) {
    for (int i = 0; i < n; ++i) {
      if (nest_ < 3 && chance(30)) {
        // for v <- first..last//step: the body updates locals visible after the loop.
        bound();
        bound();
        step();
        slots_.push_back({false, in_branch_ == 0});
        const std::size_t v = slots_.size() - 1;
        emit(kiln::op::loop_begin, static_cast<i64>(v));
        const auto saved = visible_;
        visible_.push_back(v);
        ++nest_;
        statements(1 + static_cast<int>(pick(2)));
        --nest_;
        visible_ = saved;
        emit(kiln::op::loop_end);
      } else {
        assignment();
      }
    }
  }

  std::mt19937_64& rng_;
  random_kernel k_;
  std::vector<slot> slots_;
  std::vector<std::size_t> visible_;
  int in_branch_ = 0, nest_ = 0, depth_ = 3;
  bool small_ = false;
  std::vector<std::size_t> array_args_, scalar_args_;
};

}  // namespace kiln_test
