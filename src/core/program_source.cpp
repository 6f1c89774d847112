// A program's checked operations as the source of one GPU kernel, in OpenCL C or CUDA C.
#include <climits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/program.hpp"

namespace kiln::detail {

// The kernel applies the operations as straight-line code over one element, in a loop over the
// iterations, each checked as the host interpreter checks it (core/program.cpp). An element that
// faults goes on with values that no longer matter (every division is guarded), and the kernel
// records the lowest faulting index; the host interprets that element again to say why
// (program_fault). The two dialects differ only in names, in the kernel's signature and in how
// a fault is recorded:
// - OpenCL C: `fault` is the chunk's lowest faulting index (an int: 64-bit atomics are an
//   extension);
// - CUDA C: `fault` is the lowest faulting index of the whole run (base + i, atomicMin on 64
//   bits).
// Either way a faulting element is written with its input, so that staged copies back to the
// caller leave the input that the host reinterprets in place, even when `out` is `in`.
std::string program_source(const std::vector<program_instr>& code, program_dialect dialect) {
  const bool cuda = dialect == program_dialect::cuda;
  const std::string i64 = cuda ? "long long" : "long";
  const std::string u64 = cuda ? "unsigned long long" : "ulong";
  const std::string suffix = cuda ? "LL" : "L";
  const std::string mul_hi = cuda ? "__mul64hi" : "mul_hi";
  std::ostringstream k;
  k << "#define KILN_MIN (-9223372036854775807" << suffix << " - 1" << suffix << ")\n";
  if (cuda)
    k << "extern \"C\" __global__ void kiln_program(const long long* __restrict__ in, long long* __restrict__ out,\n"
         "    const long long* __restrict__ P, const long long n, const long long iterations,\n"
         "    unsigned long long* fault, const unsigned long long base, const int in32) {\n"
         "  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
         "  if (i >= n) return;\n";
  else
    k << "__kernel void kiln_program(__global const long* in, __global long* out, __global const long* P,\n"
         "                           const long n, const long iterations, __global int* fault, const int in32) {\n"
         "  const size_t i = get_global_id(0);\n"
         "  if ((long)i >= n) return;\n";
  // A chunk that crossed the bus narrowed (core/lanes.hpp, narrow_transfers) holds int32.
  const std::string narrow_in = cuda ? "(const int*)in" : "(__global const int*)in";
  k << "  " << i64 << " x = in32 ? (" << i64 << ")(" << narrow_in << ")[i] : in[i];\n";
  k << "  const " << i64 << " x0 = x;\n";
  k << "  int bad = 0;\n"
    << "  for (" << i64 << " it = 0; it < iterations; ++it) {\n";
  std::vector<std::string> stack;
  // The variable each open branch assigns its value to: branches become C blocks, so only the
  // branch taken runs (and only its faults count), and the values computed inside one stay in it.
  std::vector<std::string> branches;
  std::map<std::string, std::int64_t> literals;  // the variables that hold a literal, and its value
  int next = 0;
  for (const program_instr& ins : code) {
    std::string r = "v";
    r += std::to_string(next++);
    auto pop = [&] {
      std::string v = stack.back();
      stack.pop_back();
      return v;
    };
    switch (ins.op) {
      case program_op::if_then:
        k << "    " << i64 << " " << r << ";\n    if (" << pop() << ") {\n";
        branches.push_back(r);
        continue;
      case program_op::if_else:
        k << "    " << branches.back() << " = " << pop() << ";\n    } else {\n";
        continue;
      case program_op::if_end:
        k << "    " << branches.back() << " = " << pop() << ";\n    }\n";
        stack.push_back(branches.back());
        branches.pop_back();
        continue;
      case program_op::boolean: k << "    const " << i64 << " " << r << " = " << ins.operand << ";\n"; break;
      case program_op::logical_not: k << "    const " << i64 << " " << r << " = !" << pop() << ";\n"; break;
      case program_op::abs: {
        const std::string a = pop();
        k << "    const " << i64 << " " << r << " = " << a << " < 0 ? (" << i64 << ")((" << u64 << ")0 - (" << u64
          << ")" << a << ") : " << a << "; bad |= " << a << " == KILN_MIN;\n";
        break;
      }
      case program_op::x: k << "    const " << i64 << " " << r << " = x;\n"; break;
      case program_op::param: k << "    const " << i64 << " " << r << " = P[" << ins.operand << "];\n"; break;
      case program_op::literal:
        literals[r] = ins.operand;
        if (ins.operand == INT64_MIN)
          k << "    const " << i64 << " " << r << " = KILN_MIN;\n";
        else
          k << "    const " << i64 << " " << r << " = " << ins.operand << suffix << ";\n";
        break;
      case program_op::neg: {
        const std::string a = pop();
        k << "    const " << i64 << " " << r << " = (" << i64 << ")((" << u64 << ")0 - (" << u64 << ")" << a
          << "); bad |= " << a << " == KILN_MIN;\n";
        break;
      }
      default: {
        const std::string b = pop(), a = pop();
        k << "    " << i64 << " " << r << ";\n    { const " << i64 << " a = " << a << ", b = " << b << ";\n";
        const std::string wrap = "(" + i64 + ")((" + u64 + ")a ";
        switch (ins.op) {
          case program_op::add:
            k << "      " << r << " = " << wrap << "+ (" << u64 << ")b); bad |= ((a ^ " << r << ") & (b ^ " << r
              << ")) < 0;\n";
            break;
          case program_op::sub:
            k << "      " << r << " = " << wrap << "- (" << u64 << ")b); bad |= ((a ^ b) & (a ^ " << r << ")) < 0;\n";
            break;
          case program_op::mul:
            k << "      " << r << " = " << wrap << "* (" << u64 << ")b); bad |= " << mul_hi << "(a, b) != (" << r
              << " >> 63);\n";
            break;
          case program_op::div:
          case program_op::rem: {
            const bool div = ins.op == program_op::div;
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
          case program_op::min: k << "      " << r << " = a < b ? a : b;\n"; break;
          case program_op::max: k << "      " << r << " = a < b ? b : a;\n"; break;
          case program_op::eq: k << "      " << r << " = a == b;\n"; break;
          case program_op::ne: k << "      " << r << " = a != b;\n"; break;
          case program_op::lt: k << "      " << r << " = a < b;\n"; break;
          case program_op::le: k << "      " << r << " = a <= b;\n"; break;
          case program_op::gt: k << "      " << r << " = a > b;\n"; break;
          case program_op::ge: k << "      " << r << " = a >= b;\n"; break;
          default: break;
        }
        k << "    }\n";
      }
    }
    stack.push_back(r);
  }
  k << "    x = " << stack.back() << ";\n"
    << "  }\n";
  if (cuda)
    k << "  if (bad) atomicMin(fault, base + (unsigned long long)i);\n";
  else
    k << "  if (bad) atomic_min(fault, (int)i);\n";
  k << "  out[i] = bad ? x0 : x;\n";
  k << "}\n";
  return k.str();
}

}  // namespace kiln::detail
