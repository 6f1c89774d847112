// Kernels: typed element-wise programs over several arrays and scalars, and kiln::run, the one entry that runs them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "kiln/result.hpp"

namespace kiln {

struct run_options;
struct run_stats;
class device_buffer;

// ---- types -------------------------------------------------------------------------------------
//
// Every array, argument, local and intermediate value of a kernel has a type. Today arrays and
// scalars are s64 (Elixir's integers where they fit in int64) and conditions are boolean; the
// other numbers are named so that kernels and their encodings need no redesign when they come.
enum class dtype : std::int64_t {
  s64 = 0,
  boolean = 1,  // values only (conditions, `and`, `or`, `not`); never an array's element type
  f64 = 2,      // reserved: not yet accepted
  f32 = 3,      // reserved
  s32 = 4,      // reserved
  u8 = 5,       // reserved
};

const char* dtype_name(dtype t) noexcept;

// ---- operations --------------------------------------------------------------------------------
//
// A kernel's code is its operations in postfix order, one int64 word each, followed by one
// operand word for those marked `operand` below. Every operation pops its operands' values from a
// stack and pushes its result; integers are s64, conditions boolean. Semantics are Elixir's, on
// unbounded integers: where the exact value of an operation does not fit in int64 the element
// faults with invalid_argument (Elixir would go on with a big integer); a zero divisor, a
// negative exponent and a missing clause fault with arithmetic (what Elixir raises).
//
//   X(name, number, operands popped, has an operand word)
// This list is the one source of the encoding: Elixir's Kiln.Kernel reads it from this file.
#define KILN_KERNEL_OPS(X)                                                                              \
  X(arg, 0, 0, 1)          /* push argument k: its element where it is an array, else its value */  \
  X(literal, 1, 0, 1)      /* push the s64 operand */                                                \
  X(boolean, 2, 0, 1)      /* push true (1) or false (0) */                                          \
  X(index, 3, 0, 0)        /* push the element's index in the whole array (s64, from 0) */           \
  X(local_get, 4, 0, 1)    /* push local k (set earlier in the code) */                              \
  X(local_set, 5, 1, 1)    /* pop into local k; a local keeps one type */                            \
  X(add, 6, 2, 0)          /* a + b */                                                               \
  X(sub, 7, 2, 0)          /* a - b */                                                               \
  X(mul, 8, 2, 0)          /* a * b */                                                               \
  X(div, 9, 2, 0)          /* div(a, b): truncates toward zero */                                    \
  X(rem, 10, 2, 0)         /* rem(a, b): the sign of the dividend */                                 \
  X(neg, 11, 1, 0)         /* -a */                                                                  \
  X(abs, 12, 1, 0)         /* abs(a) */                                                              \
  X(min, 13, 2, 0)         /* min(a, b) */                                                           \
  X(max, 14, 2, 0)         /* max(a, b) */                                                           \
  X(pow, 15, 2, 0)         /* Integer.pow(a, b), b >= 0 (else arithmetic); pow(0, 0) == 1 */         \
  X(band, 16, 2, 0)        /* Bitwise.band: two's complement, as Elixir's on any integer */          \
  X(bor, 17, 2, 0)         /* Bitwise.bor */                                                         \
  X(bxor, 18, 2, 0)        /* Bitwise.bxor */                                                        \
  X(bnot, 19, 1, 0)        /* Bitwise.bnot: -a - 1 */                                                \
  X(bsl, 20, 2, 0)         /* Bitwise.bsl(a, b) = a * 2^b (b < 0 shifts right) */                   \
  X(bsr, 21, 2, 0)         /* Bitwise.bsr(a, b) = floor(a / 2^b) (b < 0 shifts left) */              \
  X(eq, 22, 2, 0)          /* a == b -> boolean */                                                   \
  X(ne, 23, 2, 0)          /* a != b -> boolean */                                                   \
  X(lt, 24, 2, 0)          /* a < b -> boolean */                                                    \
  X(le, 25, 2, 0)          /* a <= b -> boolean */                                                   \
  X(gt, 26, 2, 0)          /* a > b -> boolean */                                                    \
  X(ge, 27, 2, 0)          /* a >= b -> boolean */                                                   \
  X(logical_not, 28, 1, 0) /* not a: boolean -> boolean */                                           \
  X(if_then, 29, 1, 0)     /* <cond> if_then <a> if_else <b> if_end: a where cond, else b */        \
  X(if_else, 30, 0, 0)     /*   (one value each, of one type; only the branch taken is evaluated, */ \
  X(if_end, 31, 0, 0)      /*   so a fault in the other does not count: Elixir's if, and, or) */    \
  X(loop_begin, 32, 3, 1)  /* <first> <last> <step> loop_begin k <body> loop_end: the body runs */  \
  X(loop_end, 33, 0, 0)    /*   with local k = each value of first..last//step (Elixir's Range) */  \
  X(fail, 34, 0, 1)        /* the element faults (operand: fail_reason); pushes a value of any type */

enum class op : std::int64_t {
#define KILN_OP_ENUM(name, number, pops, operand) name = number,
  KILN_KERNEL_OPS(KILN_OP_ENUM)
#undef KILN_OP_ENUM
};

// Why a `fail` faults: Elixir's CondClauseError and CaseClauseError.
enum class fail_reason : std::int64_t { no_cond_clause = 0, no_case_clause = 1 };

// Loop bounds are the same for every element: computed from literals, scalar arguments and locals
// set from them (never from an array's element, the index, or inside a branch). A loop's body
// leaves the stack as it found it (it changes locals). Ranges follow Elixir: step != 0 (else
// invalid_argument); first..last//step is empty when step > 0 and first > last, or step < 0 and
// first < last; a loop may run for any number of iterations, up to 2^64.

// A kernel: its code and its shape. `outputs` values are left on the stack at the end, one per
// output array, in order. At most kernel_max_depth values at once, kernel_max_nesting nested
// branches and loops, kernel_max_locals locals, kernel_max_args arguments, kernel_max_outputs
// outputs; anything else is invalid_argument.
struct kernel {
  std::span<const std::int64_t> code;
  std::size_t arity = 1;    // arguments, each an array or a scalar, chosen per run (kiln::arg)
  std::size_t outputs = 1;  // output arrays
  std::size_t locals = 0;   // local slots the code uses (0..locals-1)
  // Times the whole kernel is applied to each element: the outputs of one application become the
  // next's array argument. Only for a kernel of one array argument (any number of scalars) and
  // one output; 1 otherwise. 0 copies the array unchanged.
  std::int64_t iterations = 1;
};

inline constexpr std::size_t kernel_max_depth = 64;
inline constexpr std::size_t kernel_max_nesting = 32;
inline constexpr std::size_t kernel_max_locals = 256;
inline constexpr std::size_t kernel_max_args = 32;
inline constexpr std::size_t kernel_max_outputs = 16;

// One argument of a run: an array of elements (every array of a run has one length), or one
// scalar, which every element sees.
// A device buffer (kiln::device_buffer) is an array that lives on a device: a run over buffers
// reads and writes them there, with no copies (run over buffers, below).
struct arg {
  enum class kind { array, scalar, buffer } what = kind::scalar;
  dtype type = dtype::s64;
  std::span<const std::int64_t> array;  // what == array
  std::int64_t scalar = 0;              // what == scalar
  const device_buffer* buffer = nullptr;// what == buffer

  static arg of_array(std::span<const std::int64_t> a) { return {kind::array, dtype::s64, a, 0, nullptr}; }
  static arg of_scalar(std::int64_t v) { return {kind::scalar, dtype::s64, {}, v, nullptr}; }
  static arg of_buffer(const device_buffer& b) { return {kind::buffer, dtype::s64, {}, 0, &b}; }
};

// invalid_argument unless the code is well formed for these arguments: known operations,
// argument and local indices in range, every operation finding operands of its types, branches
// that each leave one value of one type, loops whose bounds do not depend on the element, exactly
// `outputs` integers left, within the limits above.
status validate(const kernel& k, std::span<const arg> args);

// Runs the kernel over every element of the arrays among `args` (at least one; one length for
// all), writing `outputs[j]` (each of that length; an output may alias an array argument
// exactly, never partially). Exact as the operations above say. A fault fails the whole run: its
// message names the first faulting element by index (and the application, where the kernel is
// applied several times); the outputs are then unspecified.
//
// Where it runs (run_options): host backends interpret the kernel a block of elements at a time
// (`cpu` on every core); GPU backends compile it (CUDA with NVRTC, OpenCL C) and stream the
// arrays through their pipelines. Kernels the engine recognises as its built-in map (the seed's
// `rem(mu * x * (x + 1), p)`, iterated) run its hand-tuned code on every backend, the host's
// share included. `auto` picks a GPU for large inputs (CUDA first), else `cpu`.
result<run_stats> run(const kernel& k, std::span<const arg> args, std::span<const std::span<std::int64_t>> outputs,
                      const run_options& options);

// Runs the kernel over device buffers, on their device, without copies: every array argument a
// buffer (arg::of_buffer), all on one device and of one length; `outputs` buffers of that length
// on the same device (device_buffer::allocate; an output may be an argument's buffer, so a chain
// of kernels can work in place). The same exactness and faults as the run over host arrays; on a
// fault the outputs are unspecified and the arguments not written by it unchanged.
result<run_stats> run(const kernel& k, std::span<const arg> args, std::span<device_buffer* const> outputs);
// The same, stopping early (errc::cancelled) once options.stop is requested; the buffers decide
// where it runs, so the other options are not read.
result<run_stats> run(const kernel& k, std::span<const arg> args, std::span<device_buffer* const> outputs,
                      const run_options& options);

}  // namespace kiln
