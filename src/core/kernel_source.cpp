// A decoded kernel as the source of one GPU kernel, in OpenCL C or CUDA C.
#include <climits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/kernel_ir.hpp"

namespace kiln::detail {

// The kernel applies the operations as straight-line C over one element (branches become C
// blocks, loops C loops, locals C variables), in a loop over the kernel's applications, each
// operation checked as the host interpreter checks it (core/kernel_interpret.cpp). An element
// that faults goes on with values that no longer matter (every division is guarded; loops stop,
// since their bounds may be such values), and the
// kernel records the lowest faulting index; the host interprets that element again to say why
// (device_fault). The two dialects differ in names, in the signature and in how a fault is
// recorded:
// - OpenCL C: `fault` is the chunk's lowest faulting index (an int: 64-bit atomics are an
//   extension); `base` is the chunk's first element in the run (for `index`);
// - CUDA C: `fault` is the lowest faulting index of the whole run (base + i, atomicMin on 64 bits).
// Either way a faulting element is written with its input, so that staged copies back to the
// caller leave the input that the host reinterprets in place, even when `out` is `in`. The entry
// keeps the name kiln_program and the argument order of the pipelines' program launches.
std::string kernel_source(const decoded_kernel& dk, kernel_dialect dialect, bool resident) {
  const bool cuda = dialect == kernel_dialect::cuda;
  const std::string i64 = cuda ? "long long" : "long";
  const std::string u64 = cuda ? "unsigned long long" : "ulong";
  const std::string suffix = cuda ? "LL" : "L";
  const std::string mul_hi = cuda ? "__mul64hi" : "mul_hi";
  const std::string fn = cuda ? "__device__ __forceinline__ static" : "inline";
  std::ostringstream k;
  k << "#define KILN_MIN (-9223372036854775807" << suffix << " - 1" << suffix << ")\n";
  // Helpers: magnitudes and residues for rem_prod; Integer.pow and the shifts with their checks.
  k << fn << " " << u64 << " kiln_mag(" << i64 << " v) { return v < 0 ? (" << u64 << ")0 - (" << u64 << ")v : (" << u64
    << ")v; }\n";
  k << fn << " " << u64 << " kiln_mmod(" << i64 << " a, " << u64 << " m) { " << u64
    << " r = kiln_mag(a) % m; return a < 0 && r ? m - r : r; }\n";
  k << fn << " " << i64 << " kiln_pow(" << i64 << " a, " << i64 << " b, int* bad) {\n"
    << "  if (b < 0) { *bad = 1; return 0; }\n"
    << "  if (b == 0 || a == 1) return 1;\n  if (a == 0) return 0;\n  if (a == -1) return (b & 1) ? -1 : 1;\n"
    << "  if (b >= 64) { *bad = 1; return 0; }\n"
    << "  " << i64 << " r = 1, x = a;\n"
    << "  for (" << i64 << " e = b;;) {\n"
    << "    if (e & 1) { " << i64 << " t = (" << i64 << ")((" << u64 << ")r * (" << u64 << ")x); if (" << mul_hi
    << "(r, x) != (t >> 63)) { *bad = 1; return 0; } r = t; }\n"
    << "    e >>= 1; if (!e) break;\n"
    << "    { " << i64 << " t = (" << i64 << ")((" << u64 << ")x * (" << u64 << ")x); if (" << mul_hi
    << "(x, x) != (t >> 63)) { *bad = 1; return 0; } x = t; }\n"
    << "  }\n  return r;\n}\n";
  k << fn << " " << i64 << " kiln_shl(" << i64 << " a, " << i64 << " b, int* bad);\n";
  k << fn << " " << i64 << " kiln_shr(" << i64 << " a, " << i64 << " b, int* bad) {\n"
    << "  if (b < 0) { if (b == KILN_MIN) { if (a != 0) *bad = 1; return 0; } return kiln_shl(a, -b, bad); }\n"
    << "  return b >= 63 ? (a < 0 ? -1 : 0) : a >> b;\n}\n";
  k << fn << " " << i64 << " kiln_shl(" << i64 << " a, " << i64 << " b, int* bad) {\n"
    << "  if (b < 0) { if (b == KILN_MIN) return a < 0 ? -1 : 0; return kiln_shr(a, -b, bad); }\n"
    << "  if (a == 0) return 0;\n"
    << "  if (b >= 63) { if (b == 63 && a == -1) return KILN_MIN; *bad = 1; return 0; }\n"
    << "  " << i64 << " r = (" << i64 << ")((" << u64 << ")a << b);\n"
    << "  if ((r >> b) != a) *bad = 1;\n  return r;\n}\n";
  const bool streamed = !resident;
  if (streamed && cuda)
    k << "extern \"C\" __global__ void kiln_program(const long long* __restrict__ in, long long* __restrict__ out,\n"
         "    const long long* __restrict__ P, const long long n, const long long iterations,\n"
         "    unsigned long long* fault, const unsigned long long base, const int in32) {\n"
         "  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
         "  if (i >= n) return;\n"
         "  const long long element = (long long)(base + (unsigned long long)i);\n";
  else if (streamed)
    k << "__kernel void kiln_program(__global const long* in, __global long* out, __global const long* P,\n"
         "                           const long n, const long iterations, __global int* fault, const int in32,\n"
         "                           const long base) {\n"
         "  const size_t i = get_global_id(0);\n"
         "  if ((long)i >= n) return;\n"
         "  const long element = base + (long)i;\n";
  if (streamed) {
    // A chunk that crossed the bus narrowed (core/lanes.hpp, narrow_transfers) holds int32.
    const std::string narrow_in = cuda ? "(const int*)in" : "(__global const int*)in";
    k << "  " << i64 << " a0 = in32 ? (" << i64 << ")(" << narrow_in << ")[i] : in[i];\n";
  } else {
    // Resident buffers: one pointer per array argument and per output (an output may be an
    // argument's buffer, so none is restrict), the scalars, and the lowest faulting index.
    const std::string global = cuda ? "" : "__global ";
    k << (cuda ? "extern \"C\" __global__ void" : "__kernel void") << " kiln_resident(";
    for (std::size_t j = 0; j < dk.arrays; ++j) k << global << "const " << i64 << "* A" << j << ", ";
    for (std::size_t j = 0; j < dk.outputs; ++j) k << global << i64 << "* O" << j << ", ";
    k << global << "const " << i64 << "* P, const " << i64 << " n, const " << i64 << " iterations, " << global
      << (cuda ? "unsigned long long" : "int") << "* fault, const " << i64 << " base) {\n";
    if (cuda)
      k << "  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n";
    else
      k << "  const long i = (long)get_global_id(0);\n";
    k << "  if (i >= n) return;\n  const " << i64 << " element = base + i;\n";
    for (std::size_t j = 0; j < dk.arrays; ++j) k << "  " << i64 << " a" << j << " = A" << j << "[i];\n";
  }
  k << "  int bad = 0;\n";
  for (std::size_t j = 0; j < dk.outputs; ++j) k << "  " << i64 << " r" << j << " = 0;\n";
  for (std::size_t l = 0; l < dk.locals; ++l) k << "  " << i64 << " L" << l << " = 0;\n";
  k << "  for (" << i64 << " it = 0; it < iterations; ++it) {\n";
  std::vector<std::string> stack;
  // The variable each open branch assigns its value to; branches become C blocks, so only the
  // branch taken runs (and only its faults count), and the values computed inside one stay in it.
  std::vector<std::string> branches;
  std::map<std::string, std::int64_t> literals;  // the variables that hold a literal, and its value
  int next = 0;
  auto pop = [&] {
    std::string v = stack.back();
    stack.pop_back();
    return v;
  };
  for (const kernel_instr& ins : dk.code) {
    std::string r = "v";
    r += std::to_string(next++);
    if (ins.op == static_cast<std::int64_t>(lowered_op::rem_prod)) {
      const rem_prod_layout l = rem_prod_layout::decode(ins.operand);
      unsigned values = 0;
      for (unsigned f = 0; f < l.factors; ++f) values += l.values_of(f);
      const std::string m = pop();
      std::vector<std::string> vals(values);
      for (unsigned v = values; v-- > 0;) vals[v] = pop();
      k << "    " << i64 << " " << r << ";\n    { const " << u64 << " um = kiln_mag(" << m << "); " << u64
        << " r = um == 1 ? 0 : 1; int neg = 0, zero = 0;\n";
      unsigned v = 0;
      for (unsigned f = 0; f < l.factors; ++f) {
        if (l.values_of(f) == 2) {
          const std::string& a = vals[v];
          const std::string& b = vals[v + 1];
          v += 2;
          const bool diff = l.diff >> f & 1u;
          k << "      { const " << i64 << " a = " << a << ", b = " << b << "; const " << i64 << " s = (" << i64 << ")(("
            << u64 << ")a " << (diff ? "-" : "+") << " (" << u64 << ")b);\n"
            << "        const int o = " << (diff ? "((a ^ b) & (a ^ s)) < 0" : "((a ^ s) & (b ^ s)) < 0")
            << "; const int negative = o ? a < 0 : s < 0;\n"
            << "        const " << u64 << " ra = kiln_mmod(a, um), rb = kiln_mmod(b, um); const " << u64
            << " mod = " << (diff ? "(ra + um - rb) % um" : "(ra + rb) % um") << ";\n"
            << "        neg ^= negative; zero |= !o && s == 0; r = r * (negative ? (um - mod) % um : mod) % um; }\n";
        } else {
          const std::string& a = vals[v++];
          k << "      neg ^= " << a << " < 0; zero |= " << a << " == 0; r = r * (kiln_mag(" << a << ") % um) % um;\n";
        }
      }
      k << "      " << r << " = zero ? 0 : neg ? (" << i64 << ")((" << u64 << ")0 - r) : (" << i64 << ")r; }\n";
      stack.push_back(r);
      continue;
    }
    switch (static_cast<op>(ins.op)) {
      case op::if_then:
        k << "    " << i64 << " " << r << ";\n    if (" << pop() << ") {\n";
        branches.push_back(r);
        continue;
      case op::if_else:
        k << "    " << branches.back() << " = " << pop() << ";\n    } else {\n";
        continue;
      case op::if_end:
        k << "    " << branches.back() << " = " << pop() << ";\n    }\n";
        stack.push_back(branches.back());
        branches.pop_back();
        continue;
      case op::local_set:
        k << "    L" << ins.operand << " = " << pop() << ";\n";
        continue;
      case op::loop_begin: {
        const std::string st = pop(), last = pop(), first = pop();
        k << "    { const " << i64 << " f = " << first << ", l = " << last << ", st = " << st << ";\n"
          << "    if (st == 0) bad = 1;\n"
          << "    else if (!bad && (st > 0 ? f <= l : f >= l)) {\n"
          << "    " << u64 << " left = st > 0 ? ((" << u64 << ")l - (" << u64 << ")f) / (" << u64 << ")st : ((" << u64
          << ")f - (" << u64 << ")l) / ((" << u64 << ")0 - (" << u64 << ")st);\n"
          << "    L" << ins.operand << " = f;\n"
          << "    for (;;) {\n";
        std::string local = "L";
        local += std::to_string(ins.operand);
        branches.push_back(local);
        continue;
      }
      case op::loop_end:
        k << "    if (left == 0 || bad) break;\n    --left; " << branches.back() << " = (" << i64 << ")((" << u64 << ")"
          << branches.back() << " + (" << u64 << ")st);\n    }\n    }\n    }\n";
        branches.pop_back();
        continue;
      case op::fail: k << "    const " << i64 << " " << r << " = 0; bad = 1;\n"; break;
      case op::boolean: k << "    const " << i64 << " " << r << " = " << ins.operand << ";\n"; break;
      case op::logical_not: k << "    const " << i64 << " " << r << " = !" << pop() << ";\n"; break;
      case op::bnot: k << "    const " << i64 << " " << r << " = ~" << pop() << ";\n"; break;
      case op::index: k << "    const " << i64 << " " << r << " = element;\n"; break;
      case op::local_get: k << "    const " << i64 << " " << r << " = L" << ins.operand << ";\n"; break;
      case op::abs: {
        const std::string a = pop();
        k << "    const " << i64 << " " << r << " = " << a << " < 0 ? (" << i64 << ")((" << u64 << ")0 - (" << u64
          << ")" << a << ") : " << a << "; bad |= " << a << " == KILN_MIN;\n";
        break;
      }
      case op::arg: {
        const arg_binding& b = dk.bindings[static_cast<std::size_t>(ins.operand)];
        if (b.array)
          k << "    const " << i64 << " " << r << " = a" << b.index << ";\n";
        else
          k << "    const " << i64 << " " << r << " = P[" << b.index << "];\n";
        break;
      }
      case op::literal:
        literals[r] = ins.operand;
        if (ins.operand == INT64_MIN)
          k << "    const " << i64 << " " << r << " = KILN_MIN;\n";
        else
          k << "    const " << i64 << " " << r << " = " << ins.operand << suffix << ";\n";
        break;
      case op::neg: {
        const std::string a = pop();
        k << "    const " << i64 << " " << r << " = (" << i64 << ")((" << u64 << ")0 - (" << u64 << ")" << a
          << "); bad |= " << a << " == KILN_MIN;\n";
        break;
      }
      default: {
        const std::string b = pop(), a = pop();
        k << "    " << i64 << " " << r << ";\n    { const " << i64 << " a = " << a << ", b = " << b << ";\n";
        const std::string wrap = "(" + i64 + ")((" + u64 + ")a ";
        switch (static_cast<op>(ins.op)) {
          case op::add:
            k << "      " << r << " = " << wrap << "+ (" << u64 << ")b); bad |= ((a ^ " << r << ") & (b ^ " << r
              << ")) < 0;\n";
            break;
          case op::sub:
            k << "      " << r << " = " << wrap << "- (" << u64 << ")b); bad |= ((a ^ b) & (a ^ " << r << ")) < 0;\n";
            break;
          case op::mul:
            k << "      " << r << " = " << wrap << "* (" << u64 << ")b); bad |= " << mul_hi << "(a, b) != (" << r
              << " >> 63);\n";
            break;
          case op::div:
          case op::rem: {
            const bool div = static_cast<op>(ins.op) == op::div;
            const std::string negated = "(" + i64 + ")((" + u64 + ")0 - (" + u64 + ")a)";
            if (auto lit = literals.find(b); lit != literals.end()) {
              // A literal divisor: its cases are known here (and tests on a constant would draw
              // compiler warnings).
              if (lit->second == 0)
                k << "      " << r << " = 0; bad = 1;\n";
              else if (lit->second == -1)
                k << "      " << r << " = " << (div ? negated + "; bad |= a == KILN_MIN" : "0") << ";\n";
              else
                k << "      " << r << " = a " << (div ? "/" : "%") << " b;\n";
              break;
            }
            k << "      const " << i64 << " d = (b == 0 || b == -1) ? 1 : b;\n";
            // div(INT64_MIN, -1) overflows; with a literal dividend, whether it is INT64_MIN is known.
            const auto dividend = literals.find(a);
            const std::string min_by_minus_one = dividend == literals.end() ? " || (b == -1 && a == KILN_MIN)"
                                                 : dividend->second == INT64_MIN ? " || b == -1"
                                                                                : "";
            if (div)
              k << "      " << r << " = b == -1 ? " << negated << " : a / d; bad |= b == 0" << min_by_minus_one << ";\n";
            else
              k << "      " << r << " = b == -1 ? 0 : a % d; bad |= b == 0;\n";
            break;
          }
          case op::min: k << "      " << r << " = a < b ? a : b;\n"; break;
          case op::max: k << "      " << r << " = a < b ? b : a;\n"; break;
          case op::pow: k << "      " << r << " = kiln_pow(a, b, &bad);\n"; break;
          case op::band: k << "      " << r << " = a & b;\n"; break;
          case op::bor: k << "      " << r << " = a | b;\n"; break;
          case op::bxor: k << "      " << r << " = a ^ b;\n"; break;
          case op::bsl: k << "      " << r << " = kiln_shl(a, b, &bad);\n"; break;
          case op::bsr: k << "      " << r << " = kiln_shr(a, b, &bad);\n"; break;
          case op::eq: k << "      " << r << " = a == b;\n"; break;
          case op::ne: k << "      " << r << " = a != b;\n"; break;
          case op::lt: k << "      " << r << " = a < b;\n"; break;
          case op::le: k << "      " << r << " = a <= b;\n"; break;
          case op::gt: k << "      " << r << " = a > b;\n"; break;
          case op::ge: k << "      " << r << " = a >= b;\n"; break;
          default: break;
        }
        k << "    }\n";
      }
    }
    stack.push_back(r);
  }
  for (std::size_t j = 0; j < dk.outputs; ++j) k << "    r" << j << " = " << stack[j] << ";\n";
  // Applied again (kernel::iterations), the one output becomes the one array argument.
  if (dk.arrays == 1 && dk.outputs == 1) k << "    a0 = r0;\n";
  k << "  }\n";
  if (streamed) {
    if (cuda)
      k << "  if (bad) atomicMin(fault, base + (unsigned long long)i);\n";
    else
      k << "  if (bad) atomic_min(fault, (int)i);\n";
    k << "  out[i] = bad ? (in32 ? (" << i64 << ")(" << (cuda ? "(const int*)in" : "(__global const int*)in")
      << ")[i] : in[i]) : r0;\n";
  } else {
    // A faulting element writes nothing, so its inputs stay for the host to interpret again.
    if (cuda)
      k << "  if (bad) { atomicMin(fault, (unsigned long long)element); return; }\n";
    else
      k << "  if (bad) { atomic_min(fault, (int)i); return; }\n";
    for (std::size_t j = 0; j < dk.outputs; ++j) k << "  O" << j << "[i] = r" << j << ";\n";
  }
  k << "}\n";
  return k.str();
}

}  // namespace kiln::detail
