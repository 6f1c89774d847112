// The host's kernel interpreter: every operation over a block of elements at once, with Elixir's integer semantics.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <array>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "core/kernel_ir.hpp"
#include "core/thread_pool.hpp"

namespace kiln::detail {
namespace {

using i64 = std::int64_t;
using u64 = std::uint64_t;

// Elements interpreted together: each operation runs over a whole block, so its dispatch costs
// once per block and its loop is a plain one the compiler can vectorise.
constexpr std::size_t block = 256;
using lanes = std::array<i64, block>;
using mask = std::array<unsigned char, block>;

// Why an element faulted (mark values; 0: it did not).
constexpr auto beyond_int64 = static_cast<unsigned char>(fault_kind::beyond_int64);
constexpr auto division_by_zero = static_cast<unsigned char>(fault_kind::division_by_zero);
constexpr auto negative_exponent = static_cast<unsigned char>(fault_kind::negative_exponent);
constexpr auto no_cond_clause = static_cast<unsigned char>(fault_kind::no_cond_clause);
constexpr auto no_case_clause = static_cast<unsigned char>(fault_kind::no_case_clause);
constexpr auto zero_step = static_cast<unsigned char>(fault_kind::zero_step);

u64 magnitude(i64 v) { return v < 0 ? u64{0} - static_cast<u64>(v) : static_cast<u64>(v); }
i64 negate(u64 m) { return static_cast<i64>(u64{0} - m); }

// a mod m in [0, m) (m >= 1).
u64 math_mod(i64 a, u64 m) {
  const u64 r = magnitude(a) % m;
  return a < 0 && r ? m - r : r;
}

// Integer.pow(a, b) for b >= 0; false where the result does not fit in int64.
bool power(i64 a, i64 b, i64& out) {
  if (b == 0 || a == 1) return out = 1, true;
  if (a == 0) return out = 0, true;
  if (a == -1) return out = (b & 1) ? -1 : 1, true;
  if (b >= 64) return false;
  i64 r = 1, base = a;
  for (i64 e = b;;) {
    if (e & 1)
      if (__builtin_mul_overflow(r, base, &r)) return false;
    e >>= 1;
    if (!e) break;
    if (__builtin_mul_overflow(base, base, &base)) return false;
  }
  out = r;
  return true;
}

// Bitwise.bsl(a, b) = a * 2^b; false where it does not fit. b < 0 shifts right.
bool shift_left(i64 a, i64 b, i64& out);

// Bitwise.bsr(a, b) = floor(a / 2^b); b < 0 shifts left (and may not fit).
bool shift_right(i64 a, i64 b, i64& out) {
  if (b < 0) {
    if (b == INT64_MIN) return a == 0 ? (out = 0, true) : false;
    return shift_left(a, -b, out);
  }
  out = b >= 63 ? (a < 0 ? -1 : 0) : a >> b;
  return true;
}

bool shift_left(i64 a, i64 b, i64& out) {
  if (b < 0) {
    if (b == INT64_MIN) return out = a < 0 ? -1 : 0, true;
    return shift_right(a, -b, out);
  }
  if (a == 0) return out = 0, true;
  if (b >= 63) {
    if (b == 63 && a == -1) return out = INT64_MIN, true;
    return false;
  }
  const i64 r = static_cast<i64>(static_cast<u64>(a) << b);
  if ((r >> b) != a) return false;
  out = r;
  return true;
}

struct open_branch {
  mask outside, cond;
};

struct open_loop {
  u64 left;     // iterations after the current one
  i64 value;    // the loop variable's current value
  i64 step;
  std::size_t local;
};

// Per-thread scratch: the value stack and the locals, one block each (too large for the small
// stacks of a VM's dirty schedulers, so never on the stack).
struct scratch {
  std::vector<lanes> stack{kernel_max_depth};
  std::vector<lanes> locals;
};

scratch& thread_scratch(std::size_t depth, std::size_t locals) {
  thread_local scratch s;
  if (s.stack.size() < depth) s.stack.resize(depth);
  if (s.locals.size() < locals) s.locals.resize(locals);
  return s;
}

// The most values the decoded code holds at once. Validation bounds a kernel's own code by
// kernel_max_depth, but rem_prod keeps every factor's values until it runs where the product's
// mul operations kept two, so a lowered kernel may hold more than the limit.
std::size_t stack_depth(const std::vector<kernel_instr>& code) {
  std::size_t sp = 0, most = 0;
  for (const kernel_instr& ins : code) {
    if (ins.op == static_cast<i64>(lowered_op::rem_prod)) {
      const rem_prod_layout l = rem_prod_layout::decode(ins.operand);
      for (unsigned f = 0; f < l.factors; ++f) sp -= l.values_of(f);  // and m becomes the result
      continue;
    }
    switch (static_cast<op>(ins.op)) {
      case op::arg: case op::literal: case op::boolean: case op::index: case op::local_get: case op::fail: ++sp; break;
      case op::neg: case op::abs: case op::bnot: case op::logical_not: case op::if_else: case op::loop_end: break;
      case op::loop_begin: sp -= 3; break;
      default: --sp;  // local_set, if_then, if_end and the binary operations
    }
    most = std::max(most, sp);
  }
  return most;
}

}  // namespace

std::optional<kernel_fault> interpret(const decoded_kernel& k, std::span<const i64* const> arrays,
                                      std::span<i64* const> outputs, std::size_t begin, std::size_t count,
                                      std::size_t origin, const std::stop_token* stop) {
  const auto stopped = [stop] { return stop && stop->stop_requested(); };
  scratch& sc = thread_scratch(stack_depth(k.code), k.locals);
  auto& stack = sc.stack;
  auto& locals = sc.locals;
  const auto& code = k.code;
  std::array<open_branch, kernel_max_nesting> branches;
  std::array<open_loop, kernel_max_nesting> loops;
  // The single array's current values when the kernel is applied several times.
  lanes x{};
  const bool repeated = k.iterations != 1;

  for (std::size_t s = begin; s < begin + count; s += block) {
    if (stopped()) return kernel_fault{s, 0, fault_kind::cancelled};
    const std::size_t n = std::min(block, begin + count - s);
    mask mark{};
    std::array<i64, block> fault_application{};
    mask active;
    std::fill(active.begin(), active.end(), 1);
    bool marked = false;
    std::size_t faulted = 0;  // elements of the block marked, in any application
    auto flag = [&](std::size_t i, unsigned char why) {
      if (!mark[i] && active[i]) mark[i] = why, marked = true, ++faulted;
    };
    // Whether every element still being computed has faulted: a loop then has nothing left to
    // compute, and must not run on (its bounds may come from a faulted operation's wrapped value,
    // a range of up to 2^64 values, where Elixir would have stopped at the fault).
    auto all_faulted = [&] {
      if (faulted == 0) return false;
      for (std::size_t i = 0; i < n; ++i)
        if (active[i] && !mark[i]) return false;
      return true;
    };
    auto enter = [&](const mask& take) {
      bool any = false;
      for (std::size_t i = 0; i < n; ++i) any |= (active[i] = take[i]) != 0;
      return any;
    };
    // A local set inside a branch changes only the elements that take it: the others keep the
    // value they had (as if the branch were not evaluated for them, which it is not in Elixir).
    auto set_local = [&](lanes& l, const lanes& v, std::size_t branches_open) {
      if (branches_open == 0) std::copy(v.begin(), v.begin() + n, l.begin());
      else for (std::size_t i = 0; i < n; ++i) l[i] = active[i] ? v[i] : l[i];
    };
    auto fill_local = [&](lanes& l, i64 v, std::size_t branches_open) {
      if (branches_open == 0) std::fill(l.begin(), l.begin() + n, v);
      else for (std::size_t i = 0; i < n; ++i) l[i] = active[i] ? v : l[i];
    };
    if (repeated) std::copy(arrays[0] + (s - origin), arrays[0] + (s - origin) + n, x.begin());
    for (i64 app = 0; app < k.iterations || (!repeated && app == 0); ++app) {
      if (app % 256 == 255 && stopped()) return kernel_fault{s, 0, fault_kind::cancelled};
      std::size_t sp = 0, depth = 0, loop_depth = 0;
      for (std::size_t pc = 0; pc < code.size(); ++pc) {
        const kernel_instr& ins = code[pc];
        if (ins.op == static_cast<i64>(lowered_op::rem_prod)) {
          const rem_prod_layout l = rem_prod_layout::decode(ins.operand);
          unsigned values = 0;
          for (unsigned f = 0; f < l.factors; ++f) values += l.values_of(f);
          const std::size_t base = sp - 1 - values;
          const lanes& m = stack[sp - 1];
          for (std::size_t i = 0; i < n; ++i) {
            const u64 um = magnitude(m[i]);
            bool negative = false, zero = false;
            u64 r = um == 1 ? 0 : 1;
            std::size_t v = base;
            for (unsigned f = 0; f < l.factors; ++f) {
              u64 res;
              if (l.values_of(f) == 2) {
                const i64 a = stack[v][i], b = stack[v + 1][i];
                v += 2;
                const bool diff = l.diff >> f & 1u;
                const __int128 t = diff ? static_cast<__int128>(a) - b : static_cast<__int128>(a) + b;
                const u64 ra = math_mod(a, um), rb = math_mod(b, um);
                const u64 mod = diff ? (ra + um - rb) % um : (ra + rb) % um;  // t mod um in [0, um)
                res = t < 0 ? (um - mod) % um : mod;                           // |t| mod um
                negative ^= t < 0;
                zero |= t == 0;
              } else {
                const i64 a = stack[v++][i];
                res = magnitude(a) % um;
                negative ^= a < 0;
                zero |= a == 0;
              }
              r = r * res % um;  // both below 2^32
            }
            stack[base][i] = zero ? 0 : negative ? negate(r) : static_cast<i64>(r);
          }
          sp = base + 1;
          continue;
        }
        switch (static_cast<op>(ins.op)) {
          case op::arg: {
            const arg_binding& b = k.bindings[static_cast<std::size_t>(ins.operand)];
            if (b.array) {
              if (repeated) std::copy(x.begin(), x.begin() + n, stack[sp].begin());
              else std::copy(arrays[b.index] + (s - origin), arrays[b.index] + (s - origin) + n, stack[sp].begin());
              ++sp;
            } else {
              std::fill(stack[sp].begin(), stack[sp].begin() + n, k.scalars[b.index]);
              ++sp;
            }
            break;
          }
          case op::literal:
          case op::boolean:
            std::fill(stack[sp].begin(), stack[sp].begin() + n, ins.operand);
            ++sp;
            break;
          case op::index:
            for (std::size_t i = 0; i < n; ++i) stack[sp][i] = static_cast<i64>(s + i);
            ++sp;
            break;
          case op::local_get:
            std::copy(locals[static_cast<std::size_t>(ins.operand)].begin(),
                      locals[static_cast<std::size_t>(ins.operand)].begin() + n, stack[sp].begin());
            ++sp;
            break;
          case op::local_set: {
            // Inside a branch only the elements that take it set the local: the other branch may
            // set the same local for the others (a tuple-valued if, say).
            --sp;
            set_local(locals[static_cast<std::size_t>(ins.operand)], stack[sp], depth);
            break;
          }
          case op::fail:
            for (std::size_t i = 0; i < n; ++i)
              flag(i, ins.operand == static_cast<i64>(fail_reason::no_cond_clause) ? no_cond_clause : no_case_clause);
            std::fill(stack[sp].begin(), stack[sp].begin() + n, 0);
            ++sp;
            break;
          case op::neg:
          case op::abs: {
            auto& a = stack[sp - 1];
            const bool abs = static_cast<op>(ins.op) == op::abs;
            for (std::size_t i = 0; i < n; ++i) {
              if (a[i] == INT64_MIN) flag(i, beyond_int64);
              if (!abs || a[i] < 0) a[i] = negate(static_cast<u64>(a[i]));
            }
            break;
          }
          case op::bnot: {
            auto& a = stack[sp - 1];
            for (std::size_t i = 0; i < n; ++i) a[i] = ~a[i];
            break;
          }
          case op::logical_not: {
            auto& a = stack[sp - 1];
            for (std::size_t i = 0; i < n; ++i) a[i] = !a[i];
            break;
          }
          case op::if_then: {
            open_branch& b = branches[depth++];
            const auto& c = stack[--sp];
            b.outside = active;
            for (std::size_t i = 0; i < n; ++i) b.cond[i] = (c[i] != 0) & active[i];
            if (!enter(b.cond)) {
              // No element takes it: its value, which no element will select, is a placeholder.
              std::fill(stack[sp].begin(), stack[sp].begin() + n, 0);
              ++sp;
              pc = ins.jump - 1;  // on to the if_else
            }
            break;
          }
          case op::if_else: {
            const open_branch& b = branches[depth - 1];
            mask other;
            for (std::size_t i = 0; i < n; ++i) other[i] = b.outside[i] && !b.cond[i];
            if (!enter(other)) {
              std::fill(stack[sp].begin(), stack[sp].begin() + n, 0);
              ++sp;
              pc = ins.jump - 1;  // on to the if_end
            }
            break;
          }
          case op::if_end: {
            const open_branch& b = branches[--depth];
            auto& then_v = stack[sp - 2];
            const auto& else_v = stack[sp - 1];
            for (std::size_t i = 0; i < n; ++i) then_v[i] = b.cond[i] ? then_v[i] : else_v[i];
            --sp;
            active = b.outside;
            break;
          }
          case op::loop_begin: {
            // Bounds are uniform (checked): every element iterates alike, so one element tells,
            // one that computes them: inside a branch the others may hold other values (an `if`
            // gives them its else value). One is active, or the branch would have been skipped.
            sp -= 3;
            std::size_t e = 0;
            while (e + 1 < n && !active[e]) ++e;
            const i64 first = stack[sp][e], last = stack[sp + 1][e], step = stack[sp + 2][e];
            if (step == 0) {
              for (std::size_t i = 0; i < n; ++i) flag(i, zero_step);
              pc = ins.jump;
              break;
            }
            u64 span;
            const bool empty = step > 0 ? first > last : first < last;
            if (empty || all_faulted()) {
              pc = ins.jump;  // past the loop_end
              break;
            }
            span = step > 0 ? (static_cast<u64>(last) - static_cast<u64>(first)) / static_cast<u64>(step)
                            : (static_cast<u64>(first) - static_cast<u64>(last)) / (u64{0} - static_cast<u64>(step));
            open_loop& l = loops[loop_depth++];
            l = {span, first, step, static_cast<std::size_t>(ins.operand)};
            fill_local(locals[l.local], first, depth);
            break;
          }
          case op::loop_end: {
            open_loop& l = loops[loop_depth - 1];
            if (l.left == 0 || all_faulted()) {
              --loop_depth;
              break;
            }
            --l.left;
            if ((l.left & 4095) == 0 && stopped()) return kernel_fault{s, 0, fault_kind::cancelled};
            l.value = static_cast<i64>(static_cast<u64>(l.value) + static_cast<u64>(l.step));
            fill_local(locals[l.local], l.value, depth);
            pc = ins.jump;  // the loop_begin; the body follows it
            break;
          }
          default: {
            auto& a = stack[sp - 2];
            const auto& b = stack[sp - 1];
            --sp;
            switch (static_cast<op>(ins.op)) {
              case op::add:
                for (std::size_t i = 0; i < n; ++i)
                  if (__builtin_add_overflow(a[i], b[i], &a[i])) flag(i, beyond_int64);
                break;
              case op::sub:
                for (std::size_t i = 0; i < n; ++i)
                  if (__builtin_sub_overflow(a[i], b[i], &a[i])) flag(i, beyond_int64);
                break;
              case op::mul:
                for (std::size_t i = 0; i < n; ++i)
                  if (__builtin_mul_overflow(a[i], b[i], &a[i])) flag(i, beyond_int64);
                break;
              case op::div:
              case op::rem: {
                const bool div = static_cast<op>(ins.op) == op::div;
                for (std::size_t i = 0; i < n; ++i) {
                  if (b[i] == 0) {
                    flag(i, division_by_zero);
                    a[i] = 0;
                  } else if (b[i] == -1) {
                    // div(INT64_MIN, -1) is 2^63; rem(x, -1) is always 0. Neither divides in C++.
                    if (div && a[i] == INT64_MIN) flag(i, beyond_int64);
                    a[i] = div ? negate(static_cast<u64>(a[i])) : 0;
                  } else {
                    a[i] = div ? a[i] / b[i] : a[i] % b[i];
                  }
                }
                break;
              }
              case op::min: for (std::size_t i = 0; i < n; ++i) a[i] = std::min(a[i], b[i]); break;
              case op::max: for (std::size_t i = 0; i < n; ++i) a[i] = std::max(a[i], b[i]); break;
              case op::pow:
                for (std::size_t i = 0; i < n; ++i) {
                  if (b[i] < 0) {
                    flag(i, negative_exponent);
                    a[i] = 0;
                  } else if (!power(a[i], b[i], a[i])) {
                    flag(i, beyond_int64);
                    a[i] = 0;
                  }
                }
                break;
              case op::band: for (std::size_t i = 0; i < n; ++i) a[i] &= b[i]; break;
              case op::bor: for (std::size_t i = 0; i < n; ++i) a[i] |= b[i]; break;
              case op::bxor: for (std::size_t i = 0; i < n; ++i) a[i] ^= b[i]; break;
              case op::bsl:
              case op::bsr: {
                const bool left = static_cast<op>(ins.op) == op::bsl;
                for (std::size_t i = 0; i < n; ++i) {
                  i64 r = 0;
                  if (!(left ? shift_left(a[i], b[i], r) : shift_right(a[i], b[i], r))) flag(i, beyond_int64);
                  a[i] = r;
                }
                break;
              }
              case op::eq: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] == b[i]; break;
              case op::ne: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] != b[i]; break;
              case op::lt: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] < b[i]; break;
              case op::le: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] <= b[i]; break;
              case op::gt: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] > b[i]; break;
              case op::ge: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] >= b[i]; break;
              default: break;  // decode admits no other operation
            }
          }
        }
      }
      // Faulted elements go on (with values that no longer matter), so that a block reports its
      // first faulting element by index, whichever application it faulted in.
      if (marked)
        for (std::size_t i = 0; i < n; ++i)
          if (mark[i] && !fault_application[i]) fault_application[i] = app + 1;
      marked = false;
      // The block's report is settled once its first element has faulted (no lower one is left),
      // or every element has: later applications could not change it.
      if (mark[0] || all_faulted()) break;
      if (repeated) std::copy(stack[0].begin(), stack[0].begin() + n, x.begin());
    }
    for (std::size_t i = 0; i < n; ++i)
      if (mark[i]) {
        return kernel_fault{s + i, fault_application[i], static_cast<fault_kind>(mark[i])};
      }
    if (repeated) {
      std::copy(x.begin(), x.begin() + n, outputs[0] + (s - origin));
    } else {
      for (std::size_t j = 0; j < k.outputs; ++j)
        std::copy(stack[j].begin(), stack[j].begin() + n, outputs[j] + (s - origin));
    }
  }
  return std::nullopt;
}

namespace {
error fault_error_at(const decoded_kernel& k, const kernel_fault& f, std::span<const i64* const> arrays,
                     std::size_t origin) {
  std::string at = "element " + std::to_string(f.index);
  if (k.arrays == 1) at += " (" + std::to_string(arrays[0][f.index - origin]) + ")";
  // The element's application of the kernel: the old single-array shape always names it.
  if (k.arrays == 1) at += ", iteration " + std::to_string(f.application);
  at += ": ";
  switch (f.why) {
    case fault_kind::beyond_int64:
      return make_error(errc::invalid_argument,
                        at + "an intermediate value does not fit in int64 (Elixir would go on with a big integer)");
    case fault_kind::zero_step: return make_error(errc::invalid_argument, at + "a range's step must not be 0");
    case fault_kind::division_by_zero: return make_error(errc::arithmetic, at + "division by zero");
    case fault_kind::negative_exponent:
      return make_error(errc::arithmetic, at + "negative exponent (Integer.pow/2 needs an exponent >= 0)");
    case fault_kind::no_cond_clause:
      return make_error(errc::arithmetic, at + "no cond clause evaluated to a truthy value");
    case fault_kind::no_case_clause: return make_error(errc::arithmetic, at + "no case clause matching");
    case fault_kind::cancelled: return cancelled_error();
  }
  return make_error(errc::internal, at + "unknown fault");
}
}  // namespace

error fault_error(const decoded_kernel& k, const kernel_fault& f, std::span<const i64* const> arrays,
                  std::size_t origin) {
  return fault_error_at(k, f, arrays, origin);
}

error device_fault(const decoded_kernel& k, std::span<const i64* const> arrays, std::size_t index, const char* device,
                   std::size_t origin) {
  // The element alone, interpreted again on the host, says in which application and why.
  std::vector<i64> element(k.arrays), out(k.outputs);
  std::vector<const i64*> ins;
  std::vector<i64*> outs;
  for (std::size_t j = 0; j < k.arrays; ++j) element[j] = arrays[j][index - origin], ins.push_back(&element[j]);
  for (auto& o : out) outs.push_back(&o);
  if (auto f = interpret(k, ins, outs, index, 1, index)) return fault_error_at(k, *f, ins, index);
  return make_error(errc::internal, std::string("a ") + device + " device reported a fault at element " +
                                        std::to_string(index) + " that the host does not reproduce");
}

result<run_stats> interpret_all(const decoded_kernel& k, std::span<const i64* const> arrays,
                                std::span<i64* const> outputs, std::size_t n, bool parallel,
                                const std::stop_token& stop, std::size_t base) {
  const auto t0 = std::chrono::steady_clock::now();
  // With outputs that alias an array, a block reads its inputs before it writes (interpret), and
  // ranges are disjoint, so every element reads its own input.
  std::mutex m;
  std::optional<kernel_fault> first;
  auto run_range = [&](std::size_t b, std::size_t e) {
    if (auto f = interpret(k, arrays, outputs, base + b, e - b, base, &stop)) {
      std::lock_guard<std::mutex> lock(m);
      if (!first || f->index < first->index) first = f;
    }
  };
  constexpr std::size_t grain = std::size_t{1} << 14;
  if (parallel)
    parallel_for(n, grain, run_range, stop);
  else
    run_range(0, n);
  if (stop.stop_requested()) return cancelled_error();
  // A block that faults writes nothing, so even in place the element still holds its input.
  if (first) return fault_error(k, *first, arrays, base);
  run_stats st;
  st.total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.kernel_s = st.total_s;
  st.chunks = parallel ? (n + grain - 1) / grain : 1;
  return st;
}

status device_outcome(const decoded_kernel& k, std::span<const i64> in, std::uint64_t first, const char* device) {
  if (first == no_fault) return {};
  if (first >= in.size())
    return make_error(errc::internal, std::string("a ") + device + " device reported a fault at element " +
                                          std::to_string(first) + ", past the input's end");
  // Device kernels write a faulting element back with its input, so in place too in[first] is it.
  const i64* arrays[] = {in.data()};
  return device_fault(k, arrays, static_cast<std::size_t>(first), device);
}

}  // namespace kiln::detail
