// kiln::run_program: integer expressions from elsewhere (Elixir's Kiln.Kernel), checked and interpreted on the host.
#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "core/program.hpp"
#include "core/thread_pool.hpp"
#include "kiln/kiln.hpp"

namespace kiln {
namespace detail {
namespace {

using i64 = std::int64_t;
using u64 = std::uint64_t;

constexpr std::size_t max_depth = program_max_depth;
// Elements interpreted together: each operation runs over a whole block, so its dispatch costs
// once per block and its loop is a plain one the compiler can vectorise (add, sub, neg).
constexpr std::size_t block = 256;

using instr = program_instr;

// What went wrong first in a block: the element's index in the block, its iteration and why.
struct fault {
  std::size_t index;
  i64 iteration;
  bool division_by_zero;
};

}  // namespace

result<std::vector<program_instr>> decode_program(const program& prog) {
  std::vector<program_instr> out;
  // The type of every value on the stack (true: boolean), and for every open branch the stack
  // depth at its start, the instruction that opened it and the type its first half left.
  std::vector<bool> types;
  struct open_branch {
    std::size_t depth, instr;
    int then_type;  // -1 until its if_else
  };
  std::vector<open_branch> branches;
  auto bad = [](const std::string& what) { return make_error(errc::invalid_argument, "program: " + what); };
  for (std::size_t i = 0; i < prog.code.size(); ++i) {
    const i64 w = prog.code[i];
    if (w < 0 || w > static_cast<i64>(program_op::boolean))
      return bad("unknown operation " + std::to_string(w) + " at word " + std::to_string(i));
    const auto op = static_cast<program_op>(w);
    const std::string at = " at word " + std::to_string(i);
    i64 operand = 0;
    if (op == program_op::param || op == program_op::literal || op == program_op::boolean) {
      if (i + 1 >= prog.code.size()) return bad("operation" + at + " lacks its operand");
      operand = prog.code[++i];
      if (op == program_op::param && (operand < 0 || static_cast<u64>(operand) >= prog.params.size()))
        return bad("parameter " + std::to_string(operand) + " at word " + std::to_string(i) + ", but " +
                   std::to_string(prog.params.size()) + " parameter(s) given");
      if (op == program_op::boolean && operand != 0 && operand != 1)
        return bad("boolean " + std::to_string(operand) + " at word " + std::to_string(i) + " is neither 0 nor 1");
    }
    // Pops `n` values of type `boolean` (false: integers).
    auto pop = [&](std::size_t n, bool boolean) -> status {
      const std::size_t floor = branches.empty() ? 0 : branches.back().depth + (branches.back().then_type >= 0 ? 1 : 0);
      if (types.size() < floor + n) return bad("operation" + at + " has too few operands");
      for (std::size_t k = 0; k < n; ++k) {
        if (types.back() != boolean)
          return bad("operation" + at + " takes " + (boolean ? "a boolean" : "an integer") + " but finds " +
                     (boolean ? "an integer" : "a boolean"));
        types.pop_back();
      }
      return {};
    };
    switch (op) {
      case program_op::x:
      case program_op::param:
      case program_op::literal: types.push_back(false); break;
      case program_op::boolean: types.push_back(true); break;
      case program_op::neg:
      case program_op::abs: KILN_TRY(pop(1, false)); types.push_back(false); break;
      case program_op::logical_not: KILN_TRY(pop(1, true)); types.push_back(true); break;
      case program_op::eq: case program_op::ne: case program_op::lt:
      case program_op::le: case program_op::gt: case program_op::ge:
        KILN_TRY(pop(2, false));
        types.push_back(true);
        break;
      case program_op::if_then:
        KILN_TRY(pop(1, true));
        if (branches.size() >= program_max_nesting)
          return bad("more than " + std::to_string(program_max_nesting) + " nested branches");
        branches.push_back({types.size(), out.size(), -1});
        break;
      case program_op::if_else: {
        if (branches.empty() || branches.back().then_type >= 0) return bad("if_else" + at + " without its if_then");
        open_branch& b = branches.back();
        if (types.size() != b.depth + 1) return bad("the branch before if_else" + at + " does not leave one value");
        b.then_type = types.back() ? 1 : 0;
        out[b.instr].operand = static_cast<i64>(out.size());
        break;
      }
      case program_op::if_end: {
        if (branches.empty() || branches.back().then_type < 0) return bad("if_end" + at + " without its if_else");
        const open_branch b = branches.back();
        if (types.size() != b.depth + 2) return bad("the branch before if_end" + at + " does not leave one value");
        if (types.back() != (b.then_type == 1)) return bad("the branches closed" + at + " leave values of two types");
        types.pop_back();  // the two halves' values become one
        const std::size_t else_at = static_cast<std::size_t>(out[b.instr].operand);
        out[else_at].operand = static_cast<i64>(out.size());
        branches.pop_back();
        break;
      }
      default: KILN_TRY(pop(2, false)); types.push_back(false); break;  // add sub mul div rem min max
    }
    if (types.size() > max_depth) return bad("more than " + std::to_string(max_depth) + " values at once");
    out.push_back({op, operand});
  }
  if (!branches.empty()) return bad("a branch is not closed");
  if (types.size() != 1) return bad(types.empty() ? "no value" : std::to_string(types.size()) + " values left instead of one");
  if (types.back()) return bad("the expression is a boolean, not an integer");
  if (prog.iterations < 0) return bad("iterations must be >= 0, got " + std::to_string(prog.iterations));
  return out;
}

namespace {

// Divides every a[i] by one divisor d (not 0 or -1) as Elixir's div and rem do, truncating, with
// a multiplication instead of a 64-bit hardware division, which takes tens of cycles (the seed's
// map as a kernel: 26.0 -> 22.9 ms for 2^20 elements on the 2-core machine): with m = 2^64 / |d|
// rounded down, the high half of |a| * m is the quotient or one less, which one comparison
// corrects (|a| < 2^64 makes the error of m below one step). One instance per result, so that
// neither pays a per-element choice.
template <bool quotient>
void divide_by_one(std::array<i64, block>& a, i64 d, std::size_t n) {
  const u64 ud = d < 0 ? u64{0} - static_cast<u64>(d) : static_cast<u64>(d);
  const u64 m = ud == 1 ? 0 : static_cast<u64>((static_cast<unsigned __int128>(1) << 64) / ud);
  for (std::size_t i = 0; i < n; ++i) {
    const u64 ua = a[i] < 0 ? u64{0} - static_cast<u64>(a[i]) : static_cast<u64>(a[i]);
    u64 q = ud == 1 ? ua : static_cast<u64>((static_cast<unsigned __int128>(ua) * m) >> 64);
    u64 r = ua - q * ud;
    if (r >= ud) ++q, r -= ud;
    // The quotient's sign is the product of the signs; the remainder's the dividend's.
    const bool negative = quotient ? (a[i] < 0) != (d < 0) : a[i] < 0;
    const u64 v = quotient ? q : r;
    a[i] = static_cast<i64>(negative ? u64{0} - v : v);
  }
}

// Interprets the program over n <= block elements; writes `out` only when none faults. Every
// operation also marks the elements it could not compute (code 1: out of int64, 2: zero
// divisor); a marked element keeps its first mark, and its later values, which no longer
// matter, are computed without undefined behaviour. Branches run over the whole block with a
// mask of the elements that take them: only those can fault there, and a branch no element of
// the block takes is skipped. Booleans are 0 and 1.
std::optional<fault> run_block(const std::vector<instr>& code, std::span<const i64> params, i64 iterations,
                               const i64* in, i64* out, std::size_t n) {
  using mask = std::array<unsigned char, block>;
  std::array<std::array<i64, block>, max_depth> stack;
  // Whether a stack slot holds one value in every element (a parameter or a literal): a
  // division by it can skip the per-element divisions.
  std::array<bool, max_depth> uniform{};
  std::array<i64, block> x;
  mask mark{};
  std::array<i64, block> fault_iteration{};
  // The elements the current branch computes, and for every open branch the mask outside it and
  // its condition.
  mask active;
  struct open_branch {
    mask outside, cond;
  };
  std::array<open_branch, program_max_nesting> branches;
  std::size_t depth = 0;
  bool marked = false;  // some element was marked in this iteration (rare: a fault)
  auto flag = [&mark, &active, &marked](std::size_t i, unsigned char why) {
    if (!mark[i] && active[i]) mark[i] = why, marked = true;
  };
  // Enters a branch taken where `take` is set; false if no element takes it.
  auto enter = [&](const mask& take) {
    bool any = false;
    for (std::size_t i = 0; i < n; ++i) any |= (active[i] = take[i]) != 0;
    return any;
  };
  std::copy(in, in + n, x.begin());
  // Every element takes part outside branches (each if_end restores the mask its if_then found).
  std::fill(active.begin(), active.end(), 1);
  for (i64 it = 0; it < iterations; ++it) {
    std::size_t sp = 0;
    for (std::size_t pc = 0; pc < code.size(); ++pc) {
      const instr& ins = code[pc];
      switch (ins.op) {
        case program_op::x: uniform[sp] = false, std::copy(x.begin(), x.begin() + n, stack[sp++].begin()); break;
        case program_op::param:
          uniform[sp] = true;
          std::fill(stack[sp].begin(), stack[sp].begin() + n, params[static_cast<std::size_t>(ins.operand)]), ++sp;
          break;
        case program_op::literal:
        case program_op::boolean:
          uniform[sp] = true, std::fill(stack[sp].begin(), stack[sp].begin() + n, ins.operand), ++sp;
          break;
        case program_op::neg:
        case program_op::abs: {
          auto& a = stack[sp - 1];
          const bool abs = ins.op == program_op::abs;
          for (std::size_t i = 0; i < n; ++i) {
            if (a[i] == INT64_MIN) flag(i, 1);
            if (!abs || a[i] < 0) a[i] = static_cast<i64>(u64{0} - static_cast<u64>(a[i]));
          }
          break;
        }
        case program_op::logical_not: {
          auto& a = stack[sp - 1];
          for (std::size_t i = 0; i < n; ++i) a[i] = !a[i];
          break;
        }
        case program_op::if_then: {
          // The condition leaves the stack; the branch runs where it holds (within the outer mask).
          open_branch& b = branches[depth++];
          const auto& c = stack[--sp];
          b.outside = active;
          for (std::size_t i = 0; i < n; ++i) b.cond[i] = c[i] != 0, b.cond[i] &= active[i];
          if (!enter(b.cond)) {
            // No element takes it: its value, which no element will select, is a placeholder.
            uniform[sp] = true, std::fill(stack[sp].begin(), stack[sp].begin() + n, 0), ++sp;
            pc = static_cast<std::size_t>(ins.operand) - 1;  // on to the if_else
          }
          break;
        }
        case program_op::if_else: {
          const open_branch& b = branches[depth - 1];
          mask other;
          for (std::size_t i = 0; i < n; ++i) other[i] = b.outside[i] && !b.cond[i];
          if (!enter(other)) {
            uniform[sp] = true, std::fill(stack[sp].begin(), stack[sp].begin() + n, 0), ++sp;
            pc = static_cast<std::size_t>(ins.operand) - 1;  // on to the if_end
          }
          break;
        }
        case program_op::if_end: {
          const open_branch& b = branches[--depth];
          auto& then_v = stack[sp - 2];
          const auto& else_v = stack[sp - 1];
          for (std::size_t i = 0; i < n; ++i) then_v[i] = b.cond[i] ? then_v[i] : else_v[i];
          uniform[sp - 2] = false;
          --sp;
          active = b.outside;
          break;
        }
        default: {
          auto& a = stack[sp - 2];
          const auto& b = stack[sp - 1];
          const bool b_uniform = uniform[sp - 1];
          uniform[sp - 2] = uniform[sp - 2] && b_uniform;
          --sp;
          switch (ins.op) {
            case program_op::add:
              for (std::size_t i = 0; i < n; ++i) {
                const i64 r = static_cast<i64>(static_cast<u64>(a[i]) + static_cast<u64>(b[i]));
                if (((a[i] ^ r) & (b[i] ^ r)) < 0) flag(i, 1);
                a[i] = r;
              }
              break;
            case program_op::sub:
              for (std::size_t i = 0; i < n; ++i) {
                const i64 r = static_cast<i64>(static_cast<u64>(a[i]) - static_cast<u64>(b[i]));
                if (((a[i] ^ b[i]) & (a[i] ^ r)) < 0) flag(i, 1);
                a[i] = r;
              }
              break;
            case program_op::mul:
              for (std::size_t i = 0; i < n; ++i) {
                i64 r;
                if (__builtin_mul_overflow(a[i], b[i], &r)) flag(i, 1);
                a[i] = r;
              }
              break;
            case program_op::div:
            case program_op::rem:
              if (b_uniform && n > 0 && b[0] != 0 && b[0] != -1) {
                if (ins.op == program_op::div)
                  divide_by_one<true>(a, b[0], n);
                else
                  divide_by_one<false>(a, b[0], n);
                break;
              }
              for (std::size_t i = 0; i < n; ++i) {
                if (b[i] == 0) {
                  flag(i, 2);
                  a[i] = 0;
                } else if (b[i] == -1) {
                  // div(INT64_MIN, -1) is 2^63; rem(x, -1) is always 0. Neither divides in C++.
                  if (ins.op == program_op::div && a[i] == INT64_MIN) flag(i, 1);
                  a[i] = ins.op == program_op::div ? static_cast<i64>(u64{0} - static_cast<u64>(a[i])) : 0;
                } else {
                  a[i] = ins.op == program_op::div ? a[i] / b[i] : a[i] % b[i];
                }
              }
              break;
            case program_op::min:
              for (std::size_t i = 0; i < n; ++i) a[i] = std::min(a[i], b[i]);
              break;
            case program_op::max:
              for (std::size_t i = 0; i < n; ++i) a[i] = std::max(a[i], b[i]);
              break;
            case program_op::eq: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] == b[i]; break;
            case program_op::ne: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] != b[i]; break;
            case program_op::lt: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] < b[i]; break;
            case program_op::le: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] <= b[i]; break;
            case program_op::gt: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] > b[i]; break;
            case program_op::ge: for (std::size_t i = 0; i < n; ++i) a[i] = a[i] >= b[i]; break;
            default: break;  // decode() admits no other operation
          }
        }
      }
    }
    // Faulted elements go on (with values that no longer matter), so that a block reports its
    // first faulting element by index, whichever iteration it faulted in.
    if (marked)
      for (std::size_t i = 0; i < n; ++i)
        if (mark[i] && !fault_iteration[i]) fault_iteration[i] = it + 1;
    marked = false;
    std::copy(stack[0].begin(), stack[0].begin() + n, x.begin());
  }
  for (std::size_t i = 0; i < n; ++i)
    if (mark[i]) return fault{i, fault_iteration[i], mark[i] == 2};
  std::copy(x.begin(), x.begin() + n, out);
  return std::nullopt;
}

// The error for a fault met at element `index`, iteration `iteration` (1-based).
error fault_error(std::size_t index, i64 x, const fault& f) {
  const std::string at =
      "element " + std::to_string(index) + " (" + std::to_string(x) + "), iteration " + std::to_string(f.iteration) + ": ";
  if (f.division_by_zero) return make_error(errc::arithmetic, at + "division by zero");
  return make_error(errc::invalid_argument,
                    at + "an intermediate value does not fit in int64 (Elixir would go on with a big integer)");
}

}  // namespace

error program_fault(const std::vector<program_instr>& code, const program& prog, std::size_t index, i64 x) {
  i64 out = 0;
  if (auto f = run_block(code, prog.params, prog.iterations, &x, &out, 1)) return fault_error(index, x, *f);
  return make_error(errc::internal, "a device reported a fault at element " + std::to_string(index) +
                                        " that the host does not reproduce");
}

// Where "auto" runs a program of n elements: on a GPU whose backend compiles programs (CUDA
// first, as logistic_map's auto), unless n is below gpu_program_min, where a launch and the copies
// (and a compile, on the first call) cost more than the host takes; else the cpu backend.
constexpr std::size_t gpu_program_min = std::size_t{1} << 16;

result<device_info> resolve_program_device(const run_options& options, std::size_t n) {
  if (options.backend != "auto") return resolve(options);
  const auto all = devices();
  if (n >= gpu_program_min)
    for (auto k : {backend_kind::cuda, backend_kind::opencl})
      for (const auto& d : all)
        if (d.backend == k && d.available && d.gpu && backend_of(k).program_support().ok()) return d;
  run_options cpu = options;
  cpu.backend = "cpu";
  cpu.device = 0;  // as resolve's "auto", which picks its device itself
  return resolve(cpu);
}

status device_program_outcome(const std::vector<program_instr>& code, const program& prog, std::span<const i64> in,
                              std::uint64_t first, const char* device) {
  if (first == no_fault) return {};
  if (first >= in.size())
    return make_error(errc::internal, std::string("a ") + device + " device reported a fault at element " +
                                          std::to_string(first) + ", past the input's end");
  // Device kernels write a faulting element back with its input, so in place too in[first] is it.
  const auto at = static_cast<std::size_t>(first);
  return program_fault(code, prog, at, in[at]);
}

}  // namespace detail

status validate(const program& prog) {
  auto code = detail::decode_program(prog);
  if (!code) return code.err();
  return {};
}

result<run_stats> run_program(const program& prog, std::span<const std::int64_t> in, std::span<std::int64_t> out,
                              const run_options& options) {
  using detail::block;
  const auto t0 = std::chrono::steady_clock::now();
  auto code = detail::decode_program(prog);
  if (!code) return code.err();
  KILN_TRY(detail::check_in_out(in, out));
  auto dev = detail::resolve_program_device(options, in.size());
  if (!dev) return dev.err();
  run_stats st;
  auto index = detail::run_target(options, *dev, st);
  if (!index) return index.err();
  // Nothing to compute: a copy on every backend, as logistic_map does (and backends that compile
  // programs are asked only for real work).
  if (in.empty() || prog.iterations == 0) {
    if (in.data() != out.data()) std::copy(in.begin(), in.end(), out.begin());
    st.total_s = detail::seconds_since(t0);
    return st;
  }

  if (dev->backend == backend_kind::opencl || dev->backend == backend_kind::cuda) {
    // The GPU backends compile the program for their devices (and report faults the same way).
    auto r = detail::backend_of(dev->backend).run_program(*index, *code, prog, in, out, options);
    if (!r) return r.err();
    r->backend = st.backend;
    r->device = st.device;
    return r;
  }

  // The first fault by element index, whichever thread meets it.
  std::mutex m;
  std::optional<std::pair<std::size_t, detail::fault>> first;
  auto run_range = [&](std::size_t b, std::size_t e) {
    for (std::size_t s = b; s < e; s += block) {
      const std::size_t n = std::min(block, e - s);
      if (auto f = detail::run_block(*code, prog.params, prog.iterations, in.data() + s, out.data() + s, n)) {
        std::lock_guard<std::mutex> lock(m);
        if (!first || s + f->index < first->first) first = std::make_pair(s + f->index, *f);
        return;  // later blocks of this range come after the fault
      }
    }
  };
  if (dev->backend == backend_kind::scalar)
    run_range(0, in.size());
  else
    detail::parallel_for(in.size(), std::size_t{1} << 14, run_range);

  // A block that faults writes nothing, so even in place the element still holds its input.
  if (first) return detail::fault_error(first->first, in[first->first], first->second);
  st.total_s = detail::seconds_since(t0);
  st.kernel_s = st.total_s;
  st.chunks = (in.size() + block - 1) / block;
  return st;
}

}  // namespace kiln
