// A kernel's checked, lowered operations: what the host interpreter runs and the GPU code generators translate.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "kiln/kernel.hpp"
#include "kiln/kiln.hpp"

namespace kiln::detail {

// Operations of the decoded form beyond the public ones (kiln::op): lowerings the decoder proves
// exact for the run's arguments. Never accepted in a caller's code.
enum class lowered_op : std::int64_t {
  // rem(f1 * f2 * ... * fn, m) for a divisor m with |m| in 1..2^32-1, exact for every int64
  // factor: the sign is the product of the factors' signs and the residue the product of their
  // residues, so no intermediate value is ever wider than 64 bits. A factor is one value, or the
  // exact sum or difference of two (as `x + 1`, which may exceed int64 by one). Pops the factors'
  // values in order, then m. The operand describes the factors (rem_prod_layout).
  rem_prod = 100,
};

// rem_prod's operand: n factors (n <= 16); factor i takes two values when bit i of `sum` or
// `diff` is set (a + b or a - b), else one.
struct rem_prod_layout {
  unsigned factors = 0;
  unsigned sum = 0;
  unsigned diff = 0;

  std::int64_t encode() const {
    return static_cast<std::int64_t>(factors | (sum << 8) | (static_cast<std::uint64_t>(diff) << 24));
  }
  static rem_prod_layout decode(std::int64_t w) {
    const auto u = static_cast<std::uint64_t>(w);
    return {static_cast<unsigned>(u & 0xff), static_cast<unsigned>((u >> 8) & 0xffff),
            static_cast<unsigned>((u >> 24) & 0xffff)};
  }
  unsigned values_of(unsigned i) const { return ((sum | diff) >> i & 1u) ? 2u : 1u; }
};

inline constexpr unsigned rem_prod_max_factors = 16;

struct kernel_instr {
  std::int64_t op;               // a kiln::op or a lowered_op
  std::int64_t operand = 0;      // as the op says (arg/local index, literal, fail_reason, layout)
  std::size_t jump = 0;          // if_then: its if_else; if_else: its if_end; loop_begin: its
                                 // loop_end; loop_end: its loop_begin
  dtype type = dtype::s64;       // the type of the value it pushes (if any)
};

// How each argument of a run is bound: an array (its index among the run's arrays) or a scalar
// (its index among the scalars). Kernels are decoded per binding: whether a divisor is a scalar
// in range decides a lowering, so a GPU backend keys its compiled code by the decoded form.
struct arg_binding {
  bool array = false;
  std::size_t index = 0;
};

// The built-in map's shape, where the decoder recognised it: the whole kernel is
// rem(mu * x * (x + 1), p) of one array argument, iterated `iterations` times (by the kernel's
// own loop with uniform bounds, and by kernel::iterations), so backends run their hand-tuned map.
struct builtin_map {
  std::size_t array = 0;  // the argument that is x
  map_params params;
};

struct decoded_kernel {
  std::vector<kernel_instr> code;
  std::vector<arg_binding> bindings;   // one per argument
  std::vector<std::int64_t> scalars;   // the scalar arguments' values, by binding index
  std::size_t arrays = 0;              // array arguments
  std::size_t outputs = 1;
  std::size_t locals = 0;
  std::int64_t iterations = 1;         // kernel::iterations
  std::optional<builtin_map> builtin;  // set where the kernel is the built-in map
};

// Checks `k` against `args` (kiln::validate) and lowers it: rem of a product by a divisor whose
// magnitude the run's arguments put in 1..2^32-1 becomes rem_prod; a kernel that is the built-in
// map is recognised. invalid_argument with the reason otherwise.
result<decoded_kernel> decode_kernel(const kernel& k, std::span<const arg> args);

// The elements of a run (the arrays' common length), or invalid_argument.
result<std::size_t> run_length(std::span<const arg> args, std::span<const std::span<std::int64_t>> outputs);

// Interprets the kernel over elements [begin, begin + n) of the run's arrays (`arrays[j]` is
// array argument j's data, indexed from the run's element 0), writing `outputs[j][i]` for each
// element i. Faults: the lowest faulting element's index and why, and nothing written for the
// block it lies in and those after it in this range. `application` counts kernel::iterations.
enum class fault_kind : unsigned char {
  beyond_int64 = 1,      // invalid_argument: Elixir would go on with a big integer
  division_by_zero,      // arithmetic, as Elixir's div/rem raise
  negative_exponent,     // arithmetic, as Integer.pow raises
  no_cond_clause,        // arithmetic (Elixir: CondClauseError)
  no_case_clause,        // arithmetic (Elixir: CaseClauseError)
  zero_step,             // invalid_argument: a range's step is 0 (Elixir: ArgumentError)
  cancelled,             // cancelled: the run's stop was requested (not the element's doing)
};
struct kernel_fault {
  std::size_t index;         // element index in the whole run
  std::int64_t application;  // 1-based application of the kernel (kernel::iterations)
  fault_kind why;
};
// `origin`: the element that arrays[j][0] holds (0 for whole arrays; a single element's index
// when only that element's inputs are at hand). `stop`, where given, is looked at between blocks,
// applications and every few thousand loop iterations: once requested the range ends with a
// `cancelled` fault at the block it reached.
std::optional<kernel_fault> interpret(const decoded_kernel& k, std::span<const std::int64_t* const> arrays,
                                      std::span<std::int64_t* const> outputs, std::size_t begin, std::size_t n,
                                      std::size_t origin = 0, const std::stop_token* stop = nullptr);

// Interprets the kernel over all n elements on the host (every core where `parallel`), the
// lowest faulting element reported as fault_error says; run_stats with the whole time as kernel_s.
// Stops early with errc::cancelled once `stop` is requested. `base`: the run's index of the
// arrays' element 0 (for a slice of a longer run: the kernel's `index` and faults count from it).
result<run_stats> interpret_all(const decoded_kernel& k, std::span<const std::int64_t* const> arrays,
                                std::span<std::int64_t* const> outputs, std::size_t n, bool parallel,
                                const std::stop_token& stop = {}, std::size_t base = 0);

// The error a run reports for a fault; `origin` as interpret's.
error fault_error(const decoded_kernel& k, const kernel_fault& f, std::span<const std::int64_t* const> arrays,
                  std::size_t origin = 0);

// The host's verdict on element `index` that a device reported faulting: the fault's error, or
// internal if the host computes it without a fault.
error device_fault(const decoded_kernel& k, std::span<const std::int64_t* const> arrays, std::size_t index,
                   const char* device, std::size_t origin = 0);

// How a device's run of a kernel ended, from the lowest faulting element index its chunks
// recorded (`first`; no_fault where no element faulted): ok, the fault's error (device_fault), or
// internal when the device names an element past the input's end. `device` names the backend.
constexpr std::uint64_t no_fault = ~std::uint64_t{0};
status device_outcome(const decoded_kernel& k, std::span<const std::int64_t> in, std::uint64_t first,
                      const char* device);

// The error of a run whose run_options::stop was requested before it finished.
inline error cancelled_error() {
  return make_error(errc::cancelled, "the run was stopped before it finished (its caller asked it to stop)");
}

// Runs a decoded kernel (kiln::run after decode_kernel): for callers that decode once.
result<run_stats> run_decoded(const decoded_kernel& k, std::span<const arg> args,
                              std::span<const std::span<std::int64_t>> outputs, const run_options& options);

// Runs a decoded kernel over device buffers (kiln::run over buffers after decode_kernel); `base`
// as interpret_all's.
result<run_stats> run_buffers(const decoded_kernel& k, std::span<const arg> args,
                              std::span<device_buffer* const> outputs, const std::stop_token& stop = {},
                              std::size_t base = 0);

// Several devices (run_options::device = all_devices) for the runs that go through device
// buffers: kernels of several arrays or outputs, and single arrays at many iterations. The
// elements are cut into one contiguous slice per device, in proportion to its compute units;
// every slice is placed on its device (its arrays uploaded, its outputs' buffers made) before any
// runs, then all run at once, each on a thread of its own, and download their outputs' parts. A
// slice's kernel counts `index` and its faults from the slice's first element, so results are the
// one device's. The error returned is the lowest failing slice's (a slice that fails stops those
// after it): for a run in one launch, the run's lowest faulting element, as on one device; in
// rounds (beyond 4096 iterations), that slice's first faulting round's lowest element, where one
// device names the first faulting round's lowest over all elements. `devices` may name a device
// more than once (tests cut a run into slices on one device); none is an error. `placed`:
// whether every slice's buffers could be made (else nothing ran and nothing was written).
result<run_stats> run_over_devices(const decoded_kernel& k, std::span<const arg> args,
                                   std::span<const std::span<std::int64_t>> outputs, const run_options& options,
                                   backend_kind backend, std::span<const device_info> devices, bool& placed);

// The slices (first element, count) of n elements over devices of these weights (compute units;
// below 1 counts as 1): contiguous, in order, covering [0, n), each in proportion to its weight.
std::vector<std::pair<std::size_t, std::size_t>> device_slices(std::size_t n, std::span<const int> weights);

// slice(i) for every i < slices, each on a thread of its own, all at once; the lowest slice's error
// where any failed (on_error(i) is called as slice i fails, from its thread), else their stats:
// each time the slowest slice's, chunks and host elements summed.
result<run_stats> on_every_slice(std::size_t slices, const std::function<result<run_stats>(std::size_t)>& slice,
                                 const std::function<void(std::size_t)>& on_error = {});

// The source of one GPU kernel (core/kernel_source.cpp describes both dialects' signatures and
// fault reports): kiln_program, the pipelines' streamed shape (one array argument, one output,
// chunk by chunk), or with `resident`, kiln_resident over device buffers (any arrays and outputs).
enum class kernel_dialect { opencl, cuda };
std::string kernel_source(const decoded_kernel& k, kernel_dialect dialect, bool resident = false);

}  // namespace kiln::detail
