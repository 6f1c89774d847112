// Kernels checked against their arguments, typed, lowered (exact rem of products) and recognised as the built-in map.
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "core/kernel_ir.hpp"
#include "kiln/kernel.hpp"
#include "kiln/kiln.hpp"

namespace kiln {

const char* dtype_name(dtype t) noexcept {
  switch (t) {
    case dtype::s64: return "s64";
    case dtype::boolean: return "boolean";
    case dtype::f64: return "f64";
    case dtype::f32: return "f32";
    case dtype::s32: return "s32";
    case dtype::u8: return "u8";
  }
  return "unknown";
}

namespace detail {
namespace {

using i64 = std::int64_t;
using u64 = std::uint64_t;

struct op_info {
  const char* name;
  int pops;
  bool operand;
};

constexpr std::size_t op_count = static_cast<std::size_t>(op::fail) + 1;

constexpr std::array<op_info, op_count> op_table = [] {
  std::array<op_info, op_count> t{};
#define KILN_OP_INFO(name, number, pops, operand) t[number] = {#name, pops, operand != 0};
  KILN_KERNEL_OPS(KILN_OP_INFO)
#undef KILN_OP_INFO
  return t;
}();

bool is(const kernel_instr& ins, op o) { return ins.op == static_cast<i64>(o); }

error bad(const std::string& what) { return make_error(errc::invalid_argument, "kernel: " + what); }

// The magnitude of a divisor the lowering accepts: 1..2^32-1.
bool small_divisor(i64 m) { return m != 0 && m >= -max_p && m <= max_p; }

// Types while checking: a value's type, or `any` for what `fail` pushes (it never completes).
constexpr int type_any = -1;

struct value {
  int type;      // dtype as int, or type_any
  bool uniform;  // the same for every element
};

struct frame {
  bool loop;
  std::size_t depth;  // stack size at the frame's start (after popping its operands)
  std::size_t instr;  // the if_then / loop_begin
  int then_type = -2; // branches: the first half's type once if_else is met (-2: not yet)
  bool then_uniform = false;
  bool cond_uniform = false;
};

// One checking pass over `code`. `local_uniform` says, on entry, which locals are taken to be
// uniform; the pass clears the flag of every local that some set makes non-uniform, so passes
// repeat until nothing changes (locals only ever lose the flag).
status check(std::vector<kernel_instr>& code, const decoded_kernel& dk, std::vector<int>& local_type,
             std::vector<bool>& local_uniform, bool& changed) {
  std::vector<value> stack;
  std::vector<frame> frames;
  std::vector<bool> local_set_seen(dk.locals, false);
  std::fill(local_type.begin(), local_type.end(), -2);
  changed = false;
  auto at = [](std::size_t i) { return " (operation " + std::to_string(i) + ")"; };
  for (std::size_t i = 0; i < code.size(); ++i) {
    kernel_instr& ins = code[i];
    const op o = static_cast<op>(ins.op);
    const std::size_t floor = frames.empty() ? 0 : frames.back().depth + (!frames.back().loop && frames.back().then_type != -2 ? 1 : 0);
    auto pop = [&](int want, value& out) -> status {
      if (stack.size() <= floor) return bad(std::string(op_table[static_cast<std::size_t>(o)].name) + " has too few operands" + at(i));
      out = stack.back();
      if (want != type_any && out.type != type_any && out.type != want)
        return bad(std::string(op_table[static_cast<std::size_t>(o)].name) + " takes " +
                   (want == static_cast<int>(dtype::boolean) ? "a boolean" : "an integer") + " but finds " +
                   (out.type == static_cast<int>(dtype::boolean) ? "a boolean" : "an integer") + at(i));
      stack.pop_back();
      return {};
    };
    auto push = [&](int type, bool uniform) {
      stack.push_back({type, uniform});
      ins.type = type == static_cast<int>(dtype::boolean) ? dtype::boolean : dtype::s64;
    };
    const int s64 = static_cast<int>(dtype::s64), boolean = static_cast<int>(dtype::boolean);
    value a{}, b{}, c{};
    switch (o) {
      case op::arg: {
        if (ins.operand < 0 || static_cast<std::size_t>(ins.operand) >= dk.bindings.size())
          return bad("argument " + std::to_string(ins.operand) + at(i) + ", but the kernel has " +
                     std::to_string(dk.bindings.size()));
        push(s64, !dk.bindings[static_cast<std::size_t>(ins.operand)].array);
        break;
      }
      case op::literal: push(s64, true); break;
      case op::boolean:
        if (ins.operand != 0 && ins.operand != 1) return bad("boolean " + std::to_string(ins.operand) + at(i));
        push(boolean, true);
        break;
      case op::index: push(s64, false); break;
      case op::local_get: {
        if (ins.operand < 0 || static_cast<std::size_t>(ins.operand) >= dk.locals)
          return bad("local " + std::to_string(ins.operand) + at(i) + " out of range");
        const auto k = static_cast<std::size_t>(ins.operand);
        if (!local_set_seen[k]) return bad("local " + std::to_string(k) + " is read before it is set" + at(i));
        push(local_type[k], local_uniform[k]);
        break;
      }
      case op::local_set: {
        if (ins.operand < 0 || static_cast<std::size_t>(ins.operand) >= dk.locals)
          return bad("local " + std::to_string(ins.operand) + at(i) + " out of range");
        const auto k = static_cast<std::size_t>(ins.operand);
        KILN_TRY(pop(type_any, a));
        if (a.type != type_any) {
          if (local_type[k] == -2 || local_type[k] == type_any) local_type[k] = a.type;
          else if (local_type[k] != a.type) return bad("local " + std::to_string(k) + " holds values of two types" + at(i));
        } else if (local_type[k] == -2) {
          local_type[k] = type_any;
        }
        local_set_seen[k] = true;
        bool in_branch = false;
        for (const auto& f : frames) in_branch |= !f.loop;
        if ((!a.uniform || in_branch) && local_uniform[k]) local_uniform[k] = false, changed = true;
        break;
      }
      case op::neg: case op::abs: case op::bnot:
        KILN_TRY(pop(s64, a));
        push(s64, a.uniform);
        break;
      case op::logical_not:
        KILN_TRY(pop(boolean, a));
        push(boolean, a.uniform);
        break;
      case op::eq: case op::ne: case op::lt: case op::le: case op::gt: case op::ge:
        KILN_TRY(pop(s64, b));
        KILN_TRY(pop(s64, a));
        push(boolean, a.uniform && b.uniform);
        break;
      case op::add: case op::sub: case op::mul: case op::div: case op::rem: case op::min: case op::max:
      case op::pow: case op::band: case op::bor: case op::bxor: case op::bsl: case op::bsr:
        KILN_TRY(pop(s64, b));
        KILN_TRY(pop(s64, a));
        push(s64, a.uniform && b.uniform);
        break;
      case op::if_then: {
        KILN_TRY(pop(boolean, c));
        if (frames.size() >= kernel_max_nesting)
          return bad("more than " + std::to_string(kernel_max_nesting) + " nested branches and loops" + at(i));
        frame f{false, stack.size(), i};
        f.cond_uniform = c.uniform;
        frames.push_back(f);
        break;
      }
      case op::if_else: {
        if (frames.empty() || frames.back().loop || frames.back().then_type != -2)
          return bad("if_else without its if_then" + at(i));
        frame& f = frames.back();
        if (stack.size() != f.depth + 1) return bad("the branch before if_else does not leave one value" + at(i));
        f.then_type = stack.back().type;
        f.then_uniform = stack.back().uniform;
        code[f.instr].jump = i;
        break;
      }
      case op::if_end: {
        if (frames.empty() || frames.back().loop || frames.back().then_type == -2)
          return bad("if_end without its if_else" + at(i));
        const frame f = frames.back();
        if (stack.size() != f.depth + 2) return bad("the branch before if_end does not leave one value" + at(i));
        const value e = stack.back();
        int t = f.then_type;
        if (t == type_any) t = e.type;
        else if (e.type != type_any && e.type != t) return bad("the two branches closed here leave values of two types" + at(i));
        stack.pop_back();
        stack.pop_back();
        code[code[f.instr].jump].jump = i;
        frames.pop_back();
        push(t, f.cond_uniform && f.then_uniform && e.uniform);
        break;
      }
      case op::loop_begin: {
        KILN_TRY(pop(s64, c));
        KILN_TRY(pop(s64, b));
        KILN_TRY(pop(s64, a));
        if (!a.uniform || !b.uniform || !c.uniform)
          return bad("a loop's bounds depend on the element (they may use literals and scalar arguments only)" + at(i));
        if (ins.operand < 0 || static_cast<std::size_t>(ins.operand) >= dk.locals)
          return bad("loop variable local " + std::to_string(ins.operand) + at(i) + " out of range");
        if (frames.size() >= kernel_max_nesting)
          return bad("more than " + std::to_string(kernel_max_nesting) + " nested branches and loops" + at(i));
        const auto k = static_cast<std::size_t>(ins.operand);
        if (local_type[k] != -2 && local_type[k] != s64 && local_type[k] != type_any)
          return bad("loop variable local " + std::to_string(k) + " holds a boolean elsewhere" + at(i));
        local_type[k] = s64;
        local_set_seen[k] = true;
        // Inside a branch the variable is set only for the elements that take it, as by a
        // local_set there: no longer the same for every element.
        bool in_branch = false;
        for (const auto& f : frames) in_branch |= !f.loop;
        if (in_branch && local_uniform[k]) local_uniform[k] = false, changed = true;
        frames.push_back({true, stack.size(), i});
        break;
      }
      case op::loop_end: {
        if (frames.empty() || !frames.back().loop) return bad("loop_end without its loop_begin" + at(i));
        const frame f = frames.back();
        if (stack.size() != f.depth) return bad("a loop's body must leave the stack as it found it" + at(i));
        code[f.instr].jump = i;
        ins.jump = f.instr;
        frames.pop_back();
        break;
      }
      case op::fail:
        if (ins.operand != static_cast<i64>(fail_reason::no_cond_clause) &&
            ins.operand != static_cast<i64>(fail_reason::no_case_clause))
          return bad("unknown fail reason " + std::to_string(ins.operand) + at(i));
        stack.push_back({type_any, true});
        ins.type = dtype::s64;
        break;
    }
    if (stack.size() > kernel_max_depth)
      return bad("more than " + std::to_string(kernel_max_depth) + " values at once" + at(i));
  }
  if (!frames.empty()) return bad(frames.back().loop ? "a loop is not closed" : "a branch is not closed");
  if (stack.size() != dk.outputs)
    return bad(std::to_string(stack.size()) + " value(s) left at the end, for " + std::to_string(dk.outputs) + " output(s)");
  for (const auto& v : stack)
    if (v.type == static_cast<int>(dtype::boolean)) return bad("an output is a boolean, not an integer");
  return {};
}

// ---- lowering: rem of a product ---------------------------------------------------------------

// For every value-producing operation, its operands' roots (for the lowering's tree walk).
struct tree {
  std::vector<std::array<std::size_t, 2>> children;  // binary ops: {left, right} roots
  std::vector<std::size_t> start;                     // first operation of each root's subtree
};

constexpr std::size_t none = ~std::size_t{0};

tree build_tree(const std::vector<kernel_instr>& code) {
  tree t;
  t.children.assign(code.size(), {none, none});
  t.start.assign(code.size(), none);
  struct entry {
    std::size_t start, root;
  };
  std::vector<entry> stack;
  std::vector<std::size_t> cond_start;  // open branches: where their condition began
  for (std::size_t i = 0; i < code.size(); ++i) {
    const auto o = static_cast<op>(code[i].op);
    auto pop = [&] {
      entry e = stack.back();
      stack.pop_back();
      return e;
    };
    switch (o) {
      case op::arg: case op::literal: case op::boolean: case op::index: case op::local_get: case op::fail:
        stack.push_back({i, i});
        break;
      case op::neg: case op::abs: case op::bnot: case op::logical_not: {
        const entry a = pop();
        t.children[i] = {a.root, none};
        stack.push_back({a.start, i});
        break;
      }
      case op::local_set: pop(); break;
      case op::loop_begin: pop(), pop(), pop(); break;
      case op::loop_end: break;
      case op::if_then: cond_start.push_back(pop().start); break;
      case op::if_else: pop(); break;
      case op::if_end: {
        pop();
        stack.push_back({cond_start.back(), i});
        cond_start.pop_back();
        break;
      }
      default: {
        const entry b = pop(), a = pop();
        t.children[i] = {a.root, b.root};
        stack.push_back({a.start, i});
      }
    }
    if (!stack.empty() && stack.back().root == i) t.start[i] = stack.back().start;
  }
  return t;
}

// Whether operation r pushes a divisor the lowering accepts for this run.
bool lowerable_divisor(const kernel_instr& r, const decoded_kernel& dk) {
  if (is(r, op::literal)) return small_divisor(r.operand);
  if (!is(r, op::arg)) return false;
  const arg_binding& b = dk.bindings[static_cast<std::size_t>(r.operand)];
  return !b.array && small_divisor(dk.scalars[b.index]);
}

// Lowers every rem whose divisor is small and whose dividend is a product (or a sum or
// difference) to rem_prod, removing the tree's mul/add/sub operations: their operands' code stays
// in place, in order, as rem_prod's values.
std::vector<kernel_instr> lower(const std::vector<kernel_instr>& code, const decoded_kernel& dk) {
  const tree t = build_tree(code);
  std::vector<bool> removed(code.size(), false);
  std::vector<kernel_instr> out = code;
  for (std::size_t i = 0; i < code.size(); ++i) {
    if (!is(code[i], op::rem) || removed[i]) continue;
    const std::size_t e = t.children[i][0], m = t.children[i][1];
    if (!lowerable_divisor(code[m], dk)) continue;
    const bool product = is(code[e], op::mul), linear = is(code[e], op::add) || is(code[e], op::sub);
    if (!product && !linear) continue;
    std::vector<std::size_t> factors, muls;
    std::vector<std::size_t> todo{e};
    // Depth-first, left before right: the factors' order is their code's order.
    std::vector<std::size_t> order;
    auto walk = [&](auto&& self, std::size_t r) -> void {
      if (is(code[r], op::mul)) {
        muls.push_back(r);
        self(self, t.children[r][0]);
        self(self, t.children[r][1]);
      } else {
        factors.push_back(r);
      }
    };
    walk(walk, e);
    if (factors.size() > rem_prod_max_factors) continue;
    rem_prod_layout layout;
    layout.factors = static_cast<unsigned>(factors.size());
    for (std::size_t f = 0; f < factors.size(); ++f) {
      const auto& ins = code[factors[f]];
      if (is(ins, op::add)) layout.sum |= 1u << f, removed[factors[f]] = true;
      if (is(ins, op::sub)) layout.diff |= 1u << f, removed[factors[f]] = true;
    }
    for (auto r : muls) removed[r] = true;
    out[i].op = static_cast<i64>(lowered_op::rem_prod);
    out[i].operand = layout.encode();
  }
  std::vector<kernel_instr> kept;
  kept.reserve(out.size());
  for (std::size_t i = 0; i < out.size(); ++i)
    if (!removed[i]) kept.push_back(out[i]);
  return kept;
}

// Re-derives every jump after the lowering removed operations (and checks nothing broke).
void relink(std::vector<kernel_instr>& code) {
  std::vector<std::size_t> open;
  for (std::size_t i = 0; i < code.size(); ++i) {
    if (is(code[i], op::if_then) || is(code[i], op::loop_begin)) {
      open.push_back(i);
    } else if (is(code[i], op::if_else)) {
      code[open.back()].jump = i;
      open.back() = i;
    } else if (is(code[i], op::if_end)) {
      code[open.back()].jump = i;
      open.pop_back();
    } else if (is(code[i], op::loop_end)) {
      code[open.back()].jump = i;
      code[i].jump = open.back();
      open.pop_back();
    }
  }
}

// ---- recognising the built-in map ---------------------------------------------------------------

// The value a scalar-only operation pushes (arg bound to a scalar, or literal), if it is one.
bool uniform_leaf(const kernel_instr& ins, const decoded_kernel& dk, i64& v) {
  if (is(ins, op::literal)) return v = ins.operand, true;
  if (!is(ins, op::arg)) return false;
  const arg_binding& b = dk.bindings[static_cast<std::size_t>(ins.operand)];
  if (b.array) return false;
  v = dk.scalars[b.index];
  return true;
}

// Whether code[b, e) is the seed's step rem(mu * x * (x + 1), p) of the value `is_x` names,
// lowered: the factors mu, x and x + 1 (or 1 + x) in any order, then p. Sets mu and p.
template <class IsX>
bool map_step(const std::vector<kernel_instr>& code, std::size_t b, std::size_t e, const decoded_kernel& dk, IsX is_x,
              i64& mu, i64& p) {
  if (e - b != 6 || code[e - 1].op != static_cast<i64>(lowered_op::rem_prod)) return false;
  const rem_prod_layout l = rem_prod_layout::decode(code[e - 1].operand);
  if (l.factors != 3 || l.diff != 0 || __builtin_popcount(l.sum) != 1) return false;
  if (!uniform_leaf(code[e - 2], dk, p)) return false;
  bool seen_mu = false, seen_x = false, seen_x1 = false;
  std::size_t w = b;
  for (unsigned f = 0; f < 3; ++f) {
    if (l.sum >> f & 1u) {
      i64 one = 0;
      const bool x_one = is_x(code[w]) && uniform_leaf(code[w + 1], dk, one) && is(code[w + 1], op::literal);
      const bool one_x = is(code[w], op::literal) && uniform_leaf(code[w], dk, one) && is_x(code[w + 1]);
      if (!(x_one || one_x) || one != 1 || seen_x1) return false;
      seen_x1 = true;
      w += 2;
    } else if (is_x(code[w]) && !seen_x) {
      seen_x = true;
      ++w;
    } else if (i64 v = 0; uniform_leaf(code[w], dk, v) && !seen_mu) {
      seen_mu = true;
      mu = v;
      ++w;
    } else {
      return false;
    }
  }
  if (p < 0) p = p == INT64_MIN ? 0 : -p;  // rem(a, -p) == rem(a, p)
  return seen_mu && seen_x && seen_x1 && p >= 1 && p <= max_p;
}

// The number of values first..last//step holds (Elixir's Range), or false past 2^63 - 1.
bool range_count(i64 first, i64 last, i64 step, i64& count) {
  if (step == 0) return false;
  u64 span;
  if (step > 0) {
    if (first > last) return count = 0, true;
    span = (static_cast<u64>(last) - static_cast<u64>(first)) / static_cast<u64>(step);
  } else {
    if (first < last) return count = 0, true;
    span = (static_cast<u64>(first) - static_cast<u64>(last)) / (u64{0} - static_cast<u64>(step));
  }
  if (span >= static_cast<u64>(INT64_MAX)) return false;
  count = static_cast<i64>(span + 1);
  return true;
}

std::optional<builtin_map> recognise(const decoded_kernel& dk) {
  if (dk.arrays != 1 || dk.outputs != 1) return std::nullopt;
  const auto& code = dk.code;
  std::size_t x_arg = 0;
  for (std::size_t a = 0; a < dk.bindings.size(); ++a)
    if (dk.bindings[a].array) x_arg = a;
  auto is_arg_x = [&](const kernel_instr& ins) { return is(ins, op::arg) && static_cast<std::size_t>(ins.operand) == x_arg; };
  i64 mu = 0, p = 0;
  // The plain step, applied kernel::iterations times.
  if (map_step(code, 0, code.size(), dk, is_arg_x, mu, p))
    return builtin_map{x_arg, {p, mu, dk.iterations}};
  // Its loop: x0 local_set L; <bounds> loop_begin I; <step of L> local_set L; loop_end; local_get L.
  if (code.size() < 12 || !is_arg_x(code[0]) || !is(code[1], op::local_set)) return std::nullopt;
  const i64 l = code[1].operand;
  const std::size_t end = code.size();
  if (!is(code[end - 1], op::local_get) || code[end - 1].operand != l || !is(code[end - 2], op::loop_end) ||
      !is(code[end - 3], op::local_set) || code[end - 3].operand != l)
    return std::nullopt;
  const std::size_t lb = code[end - 2].jump;
  if (!is(code[lb], op::loop_begin) || code[lb].operand == l) return std::nullopt;
  auto is_local_x = [&](const kernel_instr& ins) { return is(ins, op::local_get) && ins.operand == l; };
  if (!map_step(code, lb + 1, end - 3, dk, is_local_x, mu, p)) return std::nullopt;
  // The bounds: code[2, lb) uses scalars and literals only (checked uniform); evaluate them once.
  decoded_kernel bounds;
  bounds.code.assign(code.begin() + 2, code.begin() + static_cast<std::ptrdiff_t>(lb));
  for (const auto& ins : bounds.code)
    if (is(ins, op::local_get) || is(ins, op::local_set) || is(ins, op::loop_begin) || is(ins, op::index) ||
        is(ins, op::fail))
      return std::nullopt;
  relink(bounds.code);
  bounds.bindings = dk.bindings;
  bounds.scalars = dk.scalars;
  bounds.arrays = dk.arrays;
  bounds.outputs = 3;
  std::array<i64, 3> v{};
  std::array<i64*, 3> outs{&v[0], &v[1], &v[2]};
  std::vector<const i64*> arrays(dk.arrays, nullptr);
  i64 dummy = 0;
  for (auto& a : arrays) a = &dummy;
  if (interpret(bounds, arrays, outs, 0, 1)) return std::nullopt;
  i64 count = 0;
  if (!range_count(v[0], v[1], v[2], count)) return std::nullopt;
  if (dk.iterations != 0 && count > INT64_MAX / dk.iterations) return std::nullopt;
  return builtin_map{x_arg, {p, mu, count * dk.iterations}};
}

}  // namespace

result<decoded_kernel> decode_kernel(const kernel& k, std::span<const arg> args) {
  if (k.arity != args.size())
    return bad("the kernel takes " + std::to_string(k.arity) + " argument(s), " + std::to_string(args.size()) + " given");
  if (k.arity > kernel_max_args) return bad("more than " + std::to_string(kernel_max_args) + " arguments");
  if (k.outputs < 1 || k.outputs > kernel_max_outputs)
    return bad("outputs must be in 1.." + std::to_string(kernel_max_outputs) + ", got " + std::to_string(k.outputs));
  if (k.locals > kernel_max_locals) return bad("more than " + std::to_string(kernel_max_locals) + " locals");
  if (k.iterations < 0) return bad("iterations must be >= 0, got " + std::to_string(k.iterations));
  decoded_kernel dk;
  dk.outputs = k.outputs;
  dk.locals = k.locals;
  dk.iterations = k.iterations;
  for (std::size_t a = 0; a < args.size(); ++a) {
    if (args[a].type != dtype::s64)
      return bad("argument " + std::to_string(a) + " is of type " + dtype_name(args[a].type) +
                 "; only s64 arrays and scalars are supported so far");
    if (args[a].what != arg::kind::scalar) {
      dk.bindings.push_back({true, dk.arrays++});
    } else {
      dk.bindings.push_back({false, dk.scalars.size()});
      dk.scalars.push_back(args[a].scalar);
    }
  }
  if (dk.arrays == 0) return bad("at least one argument must be an array");
  if (k.iterations != 1 && (dk.arrays != 1 || dk.outputs != 1))
    return bad("iterations other than 1 need a kernel of one array argument and one output");

  for (std::size_t i = 0; i < k.code.size(); ++i) {
    const i64 w = k.code[i];
    if (w < 0 || static_cast<std::size_t>(w) >= op_count)
      return bad("unknown operation " + std::to_string(w) + " at word " + std::to_string(i));
    kernel_instr ins{w};
    if (op_table[static_cast<std::size_t>(w)].operand) {
      if (i + 1 >= k.code.size()) return bad(std::string(op_table[static_cast<std::size_t>(w)].name) + " at word " +
                                             std::to_string(i) + " lacks its operand");
      ins.operand = k.code[++i];
    }
    dk.code.push_back(ins);
  }
  std::vector<int> local_type(dk.locals, -2);
  std::vector<bool> local_uniform(dk.locals, true);
  for (bool changed = true; changed;) KILN_TRY(check(dk.code, dk, local_type, local_uniform, changed));

  dk.code = lower(dk.code, dk);
  relink(dk.code);
  dk.builtin = recognise(dk);
  return dk;
}

result<std::size_t> run_length(std::span<const arg> args, std::span<const std::span<std::int64_t>> outputs) {
  std::optional<std::size_t> n;
  for (std::size_t a = 0; a < args.size(); ++a) {
    if (args[a].what != arg::kind::array) continue;
    if (!n) n = args[a].array.size();
    else if (*n != args[a].array.size())
      return make_error(errc::invalid_argument, "the arrays have different lengths (" + std::to_string(*n) + " and " +
                                                    std::to_string(args[a].array.size()) + ", argument " +
                                                    std::to_string(a) + ")");
  }
  if (!n) return make_error(errc::invalid_argument, "kernel: at least one argument must be an array");
  for (std::size_t j = 0; j < outputs.size(); ++j)
    if (outputs[j].size() != *n)
      return make_error(errc::invalid_argument, "output " + std::to_string(j) + " has " +
                                                    std::to_string(outputs[j].size()) + " elements, for arrays of " +
                                                    std::to_string(*n));
  return *n;
}

}  // namespace detail
}  // namespace kiln
