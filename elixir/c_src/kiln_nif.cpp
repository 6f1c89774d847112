// Erlang NIF glue for Kiln.Native: decodes terms, calls the kiln:: C++ API, encodes the results.
//
// Every function that touches a large input or runs the engine is registered as a dirty NIF
// (CPU-bound, or IO-bound for GPU waits), so nothing long runs on a normal scheduler. C++
// exceptions never cross into the VM: `guarded` turns them into {:error, {kind, message}}.
#include <erl_nif.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "kiln/kiln.hpp"

namespace {

using steady = std::chrono::steady_clock;

double seconds_since(steady::time_point t0) { return std::chrono::duration<double>(steady::now() - t0).count(); }

// ---- terms ---------------------------------------------------------------------------------

// The atoms the NIF uses on every call, made once at load: atoms are never freed, so one term
// serves every environment, and making an atom by name takes the atom table's lock each time
// (a few percent of a small call's cost).
#define KILN_NIF_ATOMS(X)                                                                            \
  X(ok) X(error) X(true) X(false) X(nil) X(started) X(iota) X(list) X(into) X(backend) X(device) X(chunk_size) \
  X(phase_times) X(host_share) X(as_list) X(host_to_device_s) X(kernel_s) X(device_to_host_s)      \
  X(total_s) X(chunks) X(host_elements) X(decode_s) X(encode_s) X(scalar) X(cpu) X(opencl) X(cuda) X(auto)

struct nif_atoms {
#define KILN_NIF_ATOM_FIELD(name) ERL_NIF_TERM name##_ = 0;
  KILN_NIF_ATOMS(KILN_NIF_ATOM_FIELD)
#undef KILN_NIF_ATOM_FIELD
};
nif_atoms atoms;

void make_atoms(ErlNifEnv* env) {
#define KILN_NIF_ATOM_MAKE(name) atoms.name##_ = enif_make_atom(env, #name);
  KILN_NIF_ATOMS(KILN_NIF_ATOM_MAKE)
#undef KILN_NIF_ATOM_MAKE
}

ERL_NIF_TERM atom(ErlNifEnv* env, const char* name) { return enif_make_atom(env, name); }

// A backend's name as an atom (the load-time one for the five names).
ERL_NIF_TERM backend_atom(ErlNifEnv* env, std::string_view name) {
  if (name == "cpu") return atoms.cpu_;
  if (name == "cuda") return atoms.cuda_;
  if (name == "opencl") return atoms.opencl_;
  if (name == "scalar") return atoms.scalar_;
  if (name == "auto") return atoms.auto_;
  return enif_make_atom_len(env, name.data(), name.size());
}

ERL_NIF_TERM string_term(ErlNifEnv* env, std::string_view s) {
  ERL_NIF_TERM t;
  unsigned char* p = enif_make_new_binary(env, s.size(), &t);
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return t;
}

ERL_NIF_TERM ok_tuple(ErlNifEnv* env, ERL_NIF_TERM value) { return enif_make_tuple2(env, atoms.ok_, value); }

// {:error, {kind, message}}: kind is the errc name, so Elixir can branch on it.
ERL_NIF_TERM error_tuple(ErlNifEnv* env, kiln::errc code, std::string_view message) {
  return enif_make_tuple2(env, atoms.error_,
                          enif_make_tuple2(env, atom(env, kiln::errc_name(code)), string_term(env, message)));
}

ERL_NIF_TERM error_tuple(ErlNifEnv* env, const kiln::error& e) { return error_tuple(env, e.code, e.message); }

kiln::error invalid(std::string message) { return kiln::make_error(kiln::errc::invalid_argument, std::move(message)); }

bool get_i64(ErlNifEnv* env, ERL_NIF_TERM t, std::int64_t& out) {
  ErlNifSInt64 v;  // `long` or `long long` depending on the platform; int64_t may be the other
  if (!enif_get_int64(env, t, &v)) return false;
  out = static_cast<std::int64_t>(v);
  return true;
}

bool get_bool(ErlNifEnv*, ERL_NIF_TERM t, bool& out) {
  if (enif_is_identical(t, atoms.true_)) return out = true, true;
  if (enif_is_identical(t, atoms.false_)) return out = false, true;
  return false;
}

bool get_atom_string(ErlNifEnv* env, ERL_NIF_TERM t, std::string& out) {
  char buf[64];
  if (enif_get_atom(env, t, buf, sizeof buf, ERL_NIF_LATIN1) <= 0) return false;
  out = buf;
  return true;
}

// Reads the backend/device/chunk triple that run and upload share.
bool get_run_options(ErlNifEnv* env, ERL_NIF_TERM backend, ERL_NIF_TERM device, ERL_NIF_TERM chunk,
                     kiln::run_options& out) {
  int dev;
  ErlNifUInt64 ch;
  if (!get_atom_string(env, backend, out.backend) || !enif_get_int(env, device, &dev) ||
      !enif_get_uint64(env, chunk, &ch))
    return false;
  out.device = dev;
  out.chunk_elements = static_cast<std::size_t>(ch);
  return true;
}

using nif_fn = ERL_NIF_TERM (*)(ErlNifEnv*, int, const ERL_NIF_TERM[]);

// The boundary: no C++ exception may unwind into the VM.
template <nif_fn F>
ERL_NIF_TERM guarded(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) noexcept {
  try {
    return F(env, argc, argv);
  } catch (const std::bad_alloc&) {
    return error_tuple(env, kiln::errc::out_of_memory, "out of host memory");
  } catch (const kiln::kiln_error& e) {
    return error_tuple(env, e.err());
  } catch (const std::length_error&) {
    return error_tuple(env, kiln::errc::out_of_memory, "input too large for host memory");
  } catch (const std::exception& e) {
    return error_tuple(env, kiln::errc::internal, e.what());
  } catch (...) {
    return error_tuple(env, kiln::errc::internal, "unknown C++ exception");
  }
}

// Probes the engine's devices once, on a runner thread (defined with the runners below).
void probe();

// ---- int64 data in -------------------------------------------------------------------------

// Elements read from a term: a view into the binary itself when it is aligned, else a copy in a
// kiln::host_memory block (pooled, so a large list decodes into memory without fresh page
// faults, and pinned where CUDA runs, so the GPU reads it without a staging copy).
struct int64_data {
  std::span<const std::int64_t> view;
  kiln::host_memory storage;
  bool owned = false;  // view points into storage, so results may be written in place
  // The list element that failed to decode, handed back so that Elixir can inspect() it.
  std::optional<std::pair<std::size_t, ERL_NIF_TERM>> bad_element;

  kiln::status adopt(std::size_t n) {
    auto m = kiln::host_memory::allocate(n);
    if (!m) return m.err();
    storage = std::move(m).value();
    view = storage.span();
    owned = true;
    return {};
  }
};

// An error unless `count` int64s can be addressed at all (a count from a term may be any uint64).
kiln::status addressable(ErlNifUInt64 count) {
  if (count > SIZE_MAX / sizeof(std::int64_t))
    return kiln::make_error(kiln::errc::out_of_memory, std::to_string(count) + " elements do not fit in memory");
  return {};
}

// Reads the first `count` cells of `list` into `out`, which must be all of them (the list ends
// there); a cell that is no int64 is named in out.bad_element.
kiln::status decode_cells(ErlNifEnv* env, ERL_NIF_TERM list, std::size_t count, int64_data& out) {
  KILN_TRY(out.adopt(count));
  ERL_NIF_TERM head, tail = list;
  for (std::size_t i = 0; i < count; ++i) {
    std::int64_t v;
    if (!enif_get_list_cell(env, tail, &head, &tail))
      return invalid("data must be a proper list of " + std::to_string(count) + " integers: it is shorter");
    if (!get_i64(env, head, v)) {
      out.bad_element.emplace(i, head);
      return invalid("element at index " + std::to_string(i) + " is not an int64");
    }
    out.storage.data()[i] = v;
  }
  if (!enif_is_empty_list(env, tail))
    return invalid("data must be a proper list of " + std::to_string(count) + " integers: it is longer or improper");
  return {};
}

// Accepts a binary of native-endian int64, a proper list of integers, {:list, count, list} (a list
// with its length, see Kiln.Args.counted/2), or {:iota, first, step, count} (how Kiln.LogisticMap
// passes a Range, so that no list is built for it).
kiln::status decode(ErlNifEnv* env, ERL_NIF_TERM term, int64_data& out) {
  ErlNifBinary bin;
  if (enif_inspect_binary(env, term, &bin)) {
    if (bin.size % sizeof(std::int64_t) != 0)
      return invalid("binary size " + std::to_string(bin.size) +
                     " bytes is not a multiple of 8 (expected native-endian signed 64-bit integers)");
    const std::size_t n = bin.size / sizeof(std::int64_t);
    if (reinterpret_cast<std::uintptr_t>(bin.data) % alignof(std::int64_t) == 0) {
      out.view = {reinterpret_cast<const std::int64_t*>(bin.data), n};
    } else {
      // A sub-binary may start at any byte: copy instead of reading misaligned int64s.
      KILN_TRY(out.adopt(n));
      if (n) std::memcpy(out.storage.data(), bin.data, bin.size);
    }
    return {};
  }

  unsigned length;
  if (enif_get_list_length(env, term, &length)) return decode_cells(env, term, length, out);

  int arity;
  const ERL_NIF_TERM* tuple;
  std::int64_t first, step;
  ErlNifUInt64 count;
  // {:list, count, list}: a list whose length Elixir has just measured, walked once here instead
  // of twice (its length, then its cells: a walk of a 2^25-element list is tens of milliseconds);
  // the count is checked against the cells as they are read.
  if (enif_get_tuple(env, term, &arity, &tuple) && arity == 3 && enif_is_identical(tuple[0], atoms.list_) &&
      enif_get_uint64(env, tuple[1], &count) && enif_is_list(env, tuple[2])) {
    KILN_TRY(addressable(count));
    return decode_cells(env, tuple[2], static_cast<std::size_t>(count), out);
  }
  if (enif_get_tuple(env, term, &arity, &tuple) && arity == 4 && enif_is_identical(tuple[0], atoms.iota_) &&
      get_i64(env, tuple[1], first) && get_i64(env, tuple[2], step) && enif_get_uint64(env, tuple[3], &count)) {
    KILN_TRY(addressable(count));
    KILN_TRY(out.adopt(static_cast<std::size_t>(count)));
    // Modular arithmetic in uint64: the caller guarantees every element fits in int64, and the
    // wrap-around makes negative steps come out right without signed overflow.
    std::uint64_t v = static_cast<std::uint64_t>(first);
    for (auto& x : out.storage.span()) {
      x = static_cast<std::int64_t>(v);
      v += static_cast<std::uint64_t>(step);
    }
    return {};
  }

  // Elixir lets only lists, binaries and ranges through, so this is an improper list.
  return invalid("data must be a proper list of integers or a binary of native-endian int64");
}

// The reply for a failed decode: {:error, {:bad_element, index, term, :not_integer | :out_of_range}}
// for a bad list element (Elixir words the message), else the usual {:error, {kind, message}}.
ERL_NIF_TERM decode_error(ErlNifEnv* env, const kiln::status& s, const int64_data& in) {
  if (!in.bad_element) return error_tuple(env, s.err());
  const auto [index, term] = *in.bad_element;
  const bool integer = enif_term_type(env, term) == ERL_NIF_TERM_TYPE_INTEGER;
  ERL_NIF_TERM detail[] = {atom(env, "bad_element"), enif_make_uint64(env, index), term,
                           atom(env, integer ? "out_of_range" : "not_integer")};
  return enif_make_tuple2(env, atoms.error_, enif_make_tuple_from_array(env, detail, 4));
}

// ---- int64 data out ------------------------------------------------------------------------

// Set by an exit handler: once the process is exiting, the engine's static registry may already
// be destroyed, so a destructor running then must leave its memory to the OS.
std::atomic<bool> exiting{false};

// Result binaries live in kiln::host_memory blocks (pooled; page-locked where CUDA runs) rather
// than in the VM's allocator: a reused block has no first-touch page faults, and GPU transfers
// reach pinned memory without a staging copy. The VM frees such a binary through this resource,
// whose destructor hands the block back to the pool.
struct host_block_resource {
  kiln::host_memory memory;
};
ErlNifResourceType* host_block_type = nullptr;

void host_block_dtor(ErlNifEnv*, void* obj) {
  if (exiting.load()) return;
  static_cast<host_block_resource*>(obj)->~host_block_resource();
}

// A result binary being filled; released unless handed over to the VM as a term.
class new_binary {
 public:
  new_binary() = default;
  new_binary(const new_binary&) = delete;
  new_binary& operator=(const new_binary&) = delete;
  ~new_binary() {
    if (res_) enif_release_resource(res_);
  }

  bool alloc(std::size_t elements) {
    auto m = kiln::host_memory::allocate(elements);
    if (!m) return false;
    void* mem = enif_alloc_resource(host_block_type, sizeof(host_block_resource));
    if (!mem) return false;
    res_ = new (mem) host_block_resource{std::move(m).value()};
    return true;
  }
  std::span<std::int64_t> span() { return res_->memory.span(); }
  ERL_NIF_TERM to_term(ErlNifEnv* env) {
    ERL_NIF_TERM t = enif_make_resource_binary(env, res_, res_->memory.data(), span().size_bytes());
    enif_release_resource(res_);  // the binary term now holds the only reference
    res_ = nullptr;
    return t;
  }

 private:
  host_block_resource* res_ = nullptr;
};

// A list of the values, which it spends: each int64 is replaced by its term in the same 8 bytes,
// then one enif_make_list_from_array builds the cells in one allocation rather than one per cell
// (docs/BENCHMARKS.md times both). Converting in place spares an array of terms as long as the
// list, fresh memory whose first touch cost more than the conversion at 2^25 elements.
static_assert(sizeof(ERL_NIF_TERM) == sizeof(std::int64_t), "a term takes the place of an int64");

ERL_NIF_TERM list_term_spending(ErlNifEnv* env, std::span<std::int64_t> values) {
  if (values.size() > std::numeric_limits<unsigned>::max()) {
    // Beyond what one enif_make_list_from_array takes: cell by cell from the back.
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (std::size_t i = values.size(); i-- > 0;)
      list = enif_make_list_cell(env, enif_make_int64(env, static_cast<ErlNifSInt64>(values[i])), list);
    return list;
  }
  std::byte* cells = reinterpret_cast<std::byte*>(values.data());
  for (std::size_t i = 0; i < values.size(); ++i) {
    // memcpy in and out: defined whatever types ERL_NIF_TERM and int64_t are on the platform.
    std::int64_t v;
    std::memcpy(&v, cells + i * sizeof v, sizeof v);
    const ERL_NIF_TERM t = enif_make_int64(env, static_cast<ErlNifSInt64>(v));
    std::memcpy(cells + i * sizeof t, &t, sizeof t);
  }
  ERL_NIF_TERM* terms = std::launder(reinterpret_cast<ERL_NIF_TERM*>(values.data()));
  return enif_make_list_from_array(env, terms, static_cast<unsigned>(values.size()));
}

// The list of a decoded array: spent in place where the array is Kiln's own copy (a list's, a
// Range's, a misaligned binary's), else converted from a copy, so that a binary stays as it is.
kiln::result<ERL_NIF_TERM> list_term_of(ErlNifEnv* env, int64_data& in) {
  if (in.owned) return list_term_spending(env, in.storage.span());
  auto copy = kiln::host_memory::allocate(in.view.size());
  if (!copy) return copy.err();
  if (!in.view.empty()) std::memcpy(copy->span().data(), in.view.data(), in.view.size_bytes());
  return list_term_spending(env, copy->span());
}

// Decodes `data` and encodes the same elements as a list or a binary: {:ok, term}, or the error
// tuple. The input binary is never written: a binary result is a fresh one.
ERL_NIF_TERM converted_term(ErlNifEnv* env, ERL_NIF_TERM data, bool as_list) {
  int64_data in;
  if (auto s = decode(env, data, in); !s) return decode_error(env, s, in);
  if (as_list) {
    auto l = list_term_of(env, in);
    return l ? ok_tuple(env, *l) : error_tuple(env, l.err());
  }
  const std::size_t n = in.view.size();
  new_binary bin;
  if (!bin.alloc(n))
    return error_tuple(env, kiln::errc::out_of_memory,
                       "cannot allocate a " + std::to_string(n * sizeof(std::int64_t)) + "-byte result binary");
  if (n) std::memcpy(bin.span().data(), in.view.data(), n * sizeof(std::int64_t));
  return ok_tuple(env, bin.to_term(env));
}

ERL_NIF_TERM stats_term(ErlNifEnv* env, const kiln::run_stats& s, double decode_s, double encode_s) {
  ERL_NIF_TERM keys[] = {atoms.backend_,  atoms.device_,           atoms.host_to_device_s_,
                         atoms.kernel_s_, atoms.device_to_host_s_, atoms.total_s_,
                         atoms.chunks_,   atoms.host_elements_,    atoms.decode_s_,
                         atoms.encode_s_};
  ERL_NIF_TERM values[] = {backend_atom(env, s.backend),
                           string_term(env, s.device),
                           enif_make_double(env, s.host_to_device_s),
                           enif_make_double(env, s.kernel_s),
                           enif_make_double(env, s.device_to_host_s),
                           enif_make_double(env, s.total_s),
                           enif_make_uint64(env, s.chunks),
                           enif_make_uint64(env, s.host_elements),
                           enif_make_double(env, decode_s),
                           enif_make_double(env, encode_s)};
  ERL_NIF_TERM map;
  enif_make_map_from_arrays(env, keys, values, sizeof keys / sizeof keys[0], &map);
  return map;
}

// ---- logistic map ----------------------------------------------------------------------------

// Counts a list's cells, stopping past `cap` (a long list is not walked on a normal scheduler).
std::size_t list_length_upto(ErlNifEnv* env, ERL_NIF_TERM list, std::size_t cap) {
  std::size_t n = 0;
  ERL_NIF_TERM head;
  while (n <= cap && enif_get_list_cell(env, list, &head, &list)) ++n;
  return n;
}

// Reads a map's atom-keyed field; false when it is missing.
bool map_field(ErlNifEnv* env, ERL_NIF_TERM map, ERL_NIF_TERM key, ERL_NIF_TERM& out) {
  return enif_get_map_value(env, map, key, &out);
}

// The options map of kernel_run: %{backend:, device:, chunk_size:, phase_times:, host_share:, as_list:}.
bool get_kernel_options(ErlNifEnv* env, ERL_NIF_TERM map, kiln::run_options& options, bool& as_list) {
  ERL_NIF_TERM backend, device, chunk, phases, share, list;
  if (!enif_is_map(env, map) || !map_field(env, map, atoms.backend_, backend) || !map_field(env, map, atoms.device_, device) ||
      !map_field(env, map, atoms.chunk_size_, chunk) || !map_field(env, map, atoms.phase_times_, phases) ||
      !map_field(env, map, atoms.host_share_, share) || !map_field(env, map, atoms.as_list_, list))
    return false;
  return get_run_options(env, backend, device, chunk, options) && get_bool(env, phases, options.phase_times) &&
         get_bool(env, share, options.host_share) && get_bool(env, list, as_list);
}

// concat(binaries) -> {:ok, binary} | {:error, {kind, message}}: the parts' int64 elements one
// after another in one binary, copied on every core into a host block (Kiln.Cluster joins its
// nodes' results with it: a plain iolist_to_binary copies on one core).
ERL_NIF_TERM concat_nif(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  unsigned count = 0;
  if (!enif_get_list_length(env, argv[0], &count)) return enif_make_badarg(env);
  std::vector<std::span<const std::int64_t>> parts;
  std::vector<std::vector<std::int64_t>> copies;  // of parts not aligned for int64 (sub-binaries)
  parts.reserve(count);
  copies.reserve(count);  // never reallocated: the spans point into it
  std::size_t total = 0;
  ERL_NIF_TERM list = argv[0], head;
  while (enif_get_list_cell(env, list, &head, &list)) {
    ErlNifBinary b;
    if (!enif_inspect_binary(env, head, &b) || b.size % sizeof(std::int64_t) != 0) return enif_make_badarg(env);
    const std::size_t n = b.size / sizeof(std::int64_t);
    if (reinterpret_cast<std::uintptr_t>(b.data) % alignof(std::int64_t) == 0) {
      parts.emplace_back(reinterpret_cast<const std::int64_t*>(b.data), n);
    } else {
      copies.emplace_back(n);
      std::memcpy(copies.back().data(), b.data, b.size);
      parts.emplace_back(copies.back());
    }
    total += n;
  }
  if (total == 0) {
    ERL_NIF_TERM empty;
    enif_make_new_binary(env, 0, &empty);
    return ok_tuple(env, empty);
  }
  new_binary out;
  if (!out.alloc(total)) return error_tuple(env, kiln::errc::out_of_memory, "no host memory for the joined binary");
  if (auto s = kiln::concatenate(parts, out.span()); !s) return error_tuple(env, s.err());
  return ok_tuple(env, out.to_term(env));
}

// ---- devices -----------------------------------------------------------------------------------

ERL_NIF_TERM devices_nif(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
  probe();
  std::vector<ERL_NIF_TERM> maps;
  for (const auto& d : kiln::devices()) {
    ERL_NIF_TERM keys[] = {atoms.backend_,  atom(env, "index"),         atom(env, "name"),
                           atom(env, "platform"), atom(env, "compute_units"), atom(env, "memory_bytes"),
                           atom(env, "gpu"),      atom(env, "available"),     atom(env, "reason")};
    ERL_NIF_TERM values[] = {backend_atom(env, kiln::backend_name(d.backend)),
                             enif_make_int(env, d.index),
                             string_term(env, d.name),
                             string_term(env, d.platform),
                             enif_make_int(env, d.compute_units),
                             enif_make_uint64(env, d.memory_bytes),
                             d.gpu ? atoms.true_ : atoms.false_,
                             d.available ? atoms.true_ : atoms.false_,
                             d.reason.empty() ? atoms.nil_ : string_term(env, d.reason)};
    ERL_NIF_TERM map;
    enif_make_map_from_arrays(env, keys, values, sizeof keys / sizeof keys[0], &map);
    maps.push_back(map);
  }
  return enif_make_list_from_array(env, maps.data(), static_cast<unsigned>(maps.size()));
}

// ---- resident buffers --------------------------------------------------------------------------

// The NIF resource behind %Kiln.Buffer{}: one device buffer, serialised by a mutex because any
// number of processes may hold the same reference.
struct buffer_resource {
  std::mutex mutex;
  std::optional<kiln::device_buffer> buffer;
};

ErlNifResourceType* buffer_type = nullptr;
std::atomic<long> live_buffers{0};
std::once_flag exit_hook_once;

void mark_exiting() { exiting.store(true); }

void buffer_dtor(ErlNifEnv*, void* obj) {
  if (exiting.load()) return;
  static_cast<buffer_resource*>(obj)->~buffer_resource();
  live_buffers.fetch_sub(1);
}

bool get_buffer(ErlNifEnv* env, ERL_NIF_TERM t, buffer_resource*& out) {
  void* p;
  if (!enif_get_resource(env, t, buffer_type, &p)) return false;
  out = static_cast<buffer_resource*>(p);
  return true;
}

// A buffer resource as the term Elixir wraps in %Kiln.Buffer{}: {:buffer, ref, size, backend, device}.
ERL_NIF_TERM buffer_term(ErlNifEnv* env, buffer_resource* res) {
  ERL_NIF_TERM ref = enif_make_resource(env, res);
  const auto& dev = res->buffer->device();
  ERL_NIF_TERM fields[] = {atom(env, "buffer"), ref, enif_make_uint64(env, res->buffer->size()),
                           backend_atom(env, kiln::backend_name(dev.backend)), string_term(env, dev.name)};
  return enif_make_tuple_from_array(env, fields, 5);
}

// A new buffer resource around `b`; nullptr if the VM has no memory for it.
buffer_resource* new_buffer_resource(kiln::device_buffer b) {
  std::call_once(exit_hook_once, [] { std::atexit(mark_exiting); });
  void* mem = enif_alloc_resource(buffer_type, sizeof(buffer_resource));
  if (!mem) return nullptr;
  auto* res = new (mem) buffer_resource();
  live_buffers.fetch_add(1);
  res->buffer.emplace(std::move(b));
  return res;
}

// buffer_upload(data, backend, device) -> {:ok, resource, size, backend, device_name}
ERL_NIF_TERM buffer_upload_nif(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  probe();
  kiln::run_options options;
  if (!get_run_options(env, argv[1], argv[2], enif_make_uint64(env, 0), options)) return enif_make_badarg(env);
  if (auto d = kiln::resolve(options); !d) return error_tuple(env, d.err());
  int64_data in;
  if (auto s = decode(env, argv[0], in); !s) return decode_error(env, s, in);
  auto up = kiln::device_buffer::upload(in.view, options);
  if (!up) return error_tuple(env, up.err());
  // The registry exists by now, so the exit handler new_buffer_resource registers comes after
  // (and runs before) its destructor at exit.
  auto* res = new_buffer_resource(std::move(up).value());
  if (!res) return error_tuple(env, kiln::errc::out_of_memory, "cannot allocate a buffer resource");
  ERL_NIF_TERM t = buffer_term(env, res);
  enif_release_resource(res);  // the term now owns it; GC runs buffer_dtor
  int n;
  const ERL_NIF_TERM* f;
  enif_get_tuple(env, t, &n, &f);
  ERL_NIF_TERM fields[] = {atoms.ok_, f[1], f[2], f[3], f[4]};
  return enif_make_tuple_from_array(env, fields, 5);
}

// buffer_download(resource, as_list) -> {:ok, list | binary}
ERL_NIF_TERM buffer_download_nif(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  buffer_resource* res;
  bool as_list;
  if (!get_buffer(env, argv[0], res) || !get_bool(env, argv[1], as_list)) return enif_make_badarg(env);
  std::lock_guard<std::mutex> lock(res->mutex);
  const std::size_t n = res->buffer->size();
  new_binary bin;
  if (!as_list && !bin.alloc(n))
    return error_tuple(env, kiln::errc::out_of_memory, "cannot allocate the downloaded binary");
  // A list is encoded from a pooled host block (reused across calls: no first-touch faults).
  kiln::host_memory scratch;
  if (as_list) {
    auto m = kiln::host_memory::allocate(n);
    if (!m) return error_tuple(env, m.err());
    scratch = std::move(m).value();
  }
  std::span<std::int64_t> out = as_list ? scratch.span() : bin.span();
  if (auto s = res->buffer->download(out); !s) return error_tuple(env, s.err());
  return ok_tuple(env, as_list ? list_term_spending(env, out) : bin.to_term(env));
}

// ---- kernel runs: inline, or as jobs on Kiln's own threads ---------------------------------------
//
// kernel_run is a normal NIF. A run small enough to finish within the 1 ms a NIF may hold a
// scheduler runs at once, on the caller's scheduler (a dirty-scheduler round trip would cost more
// than the work). Every other run becomes a job: its arguments are decoded (lists on a dirty CPU
// scheduler, since that is work proportional to their length), the job goes to one of Kiln's
// runner threads, and the NIF returns {:started, ref, job} at once; the runner sends
// {ref, reply} to the caller when the run ends. No scheduler waits on the engine, so a caller
// blocked in `receive` can be killed, and the job monitors its caller: when the caller dies the
// run is asked to stop (run_options::stop) and frees what it held.

// A run's kernel, arguments and options, owning everything the run reads, so that it can run on
// another thread after the NIF has returned.
struct run_request {
  std::vector<std::int64_t> code;
  kiln::kernel kern;
  kiln::run_options options;
  bool as_list = false;
  std::vector<int64_data> data;
  std::vector<kiln::arg> args;
  std::vector<buffer_resource*> buffers;       // arguments; kept while the request lives
  std::vector<buffer_resource*> into_buffers;  // options.into; kept too
  bool has_into = false;
  bool host_arrays = false;
  bool identity = false;  // convert: the one decoded array is the result, in the shape as_list asks
  // Holds the binaries whose bytes `data` views (a process-independent copy of each term: for a
  // reference-counted binary, a new reference to the same bytes).
  ErlNifEnv* keep_env = nullptr;

  run_request() = default;
  run_request(const run_request&) = delete;
  run_request& operator=(const run_request&) = delete;
  ~run_request() {
    for (auto* b : buffers) enif_release_resource(b);
    for (auto* b : into_buffers) enif_release_resource(b);
    if (keep_env) enif_free_env(keep_env);
  }
};

// How an argument list looks before it is decoded: what inline_run and the dirty hop decide on.
struct request_shape {
  bool any_buffer = false;
  bool needs_decoding = false;  // a list or a Range: decoding costs time proportional to length
  std::size_t elements = 0;     // of an array argument (the largest seen; lists counted up to a cap)
};

// Reads the kernel tuple and the options (cheap: no data is touched).
bool parse_kernel(ErlNifEnv* env, const ERL_NIF_TERM argv[], run_request& req) {
  int arity = 0;
  const ERL_NIF_TERM* k = nullptr;
  ErlNifBinary code_bin;
  ErlNifUInt64 args_n, outputs_n, locals_n;
  if (!enif_get_tuple(env, argv[0], &arity, &k) || arity != 5 || !enif_inspect_binary(env, k[0], &code_bin) ||
      code_bin.size % sizeof(std::int64_t) != 0 || !enif_get_uint64(env, k[1], &args_n) ||
      !enif_get_uint64(env, k[2], &outputs_n) || !enif_get_uint64(env, k[3], &locals_n) ||
      !get_i64(env, k[4], req.kern.iterations) || !get_kernel_options(env, argv[2], req.options, req.as_list))
    return false;
  // The code binary may be a sub-binary at any byte: copy it into aligned words.
  req.code.resize(code_bin.size / sizeof(std::int64_t));
  if (!req.code.empty()) std::memcpy(req.code.data(), code_bin.data, code_bin.size);
  req.kern.code = req.code;
  req.kern.arity = static_cast<std::size_t>(args_n);
  req.kern.outputs = static_cast<std::size_t>(outputs_n);
  req.kern.locals = static_cast<std::size_t>(locals_n);
  return true;
}

request_shape shape_of(ErlNifEnv* env, ERL_NIF_TERM args, std::size_t cap) {
  request_shape s;
  ERL_NIF_TERM head, list = args;
  while (enif_get_list_cell(env, list, &head, &list)) {
    ErlNifBinary bin;
    int arity;
    const ERL_NIF_TERM* tuple;
    if (enif_is_number(env, head)) continue;
    if (enif_is_ref(env, head)) {
      s.any_buffer = true;
    } else if (enif_is_binary(env, head) && enif_inspect_binary(env, head, &bin)) {
      s.elements = std::max(s.elements, bin.size / sizeof(std::int64_t));
      // A sub-binary off an 8-byte boundary is copied to be read: a long one, on a dirty scheduler.
      if (reinterpret_cast<std::uintptr_t>(bin.data) % alignof(std::int64_t) != 0 && bin.size > (64u << 10))
        s.needs_decoding = true;
    } else if (enif_is_list(env, head)) {
      s.needs_decoding = true;
      s.elements = std::max(s.elements, list_length_upto(env, head, cap));
    } else if (enif_get_tuple(env, head, &arity, &tuple) && (arity == 4 || arity == 3)) {
      // {:iota, first, step, count} or {:list, count, list}
      ErlNifUInt64 count = 0;
      s.needs_decoding = true;
      if (enif_get_uint64(env, tuple[arity == 4 ? 3 : 1], &count)) s.elements = std::max<std::size_t>(s.elements, count);
    } else {
      s.needs_decoding = true;  // decode() words the error
    }
  }
  return s;
}

// Decodes data (a list, a Range, a binary) into argument i of `req`: lists and Ranges into host
// memory, binaries viewed in place through a term of req.keep_env, since the run may outlive
// this call. Returns the error term to reply with, if any.
std::optional<ERL_NIF_TERM> decode_array_arg(ErlNifEnv* env, ERL_NIF_TERM data, run_request& req, std::size_t i) {
  if (enif_is_binary(env, data)) {
    if (!req.keep_env) req.keep_env = enif_alloc_env();
    const ERL_NIF_TERM term = enif_make_copy(req.keep_env, data);
    if (auto s = decode(req.keep_env, term, req.data[i]); !s) return error_tuple(env, s.err());
  } else if (auto s = decode(env, data, req.data[i]); !s) {
    return decode_error(env, s, req.data[i]);
  }
  req.args[i] = kiln::arg::of_array(req.data[i].view);
  req.host_arrays = true;
  return std::nullopt;
}

// Decodes the arguments into `req` (lists and Ranges into host memory; binaries viewed in place,
// kept alive by req.keep_env). Returns the error term to reply with, if any. A job's kernel and
// device are checked here, so that a bad call fails at once rather than in its reply; an inline
// run (`checked_by_run`) leaves that to kiln::run, which makes the same checks as it decodes.
std::optional<ERL_NIF_TERM> parse_args(ErlNifEnv* env, ERL_NIF_TERM args_term, ERL_NIF_TERM opts, run_request& req,
                                       bool checked_by_run = false) {
  if (req.kern.outputs > kiln::kernel_max_outputs) return error_tuple(env, invalid("too many kernel outputs"));
  unsigned count = 0;
  if (!enif_get_list_length(env, args_term, &count)) return enif_make_badarg(env);
  if (count > kiln::kernel_max_args) return error_tuple(env, invalid("too many kernel arguments"));
  req.data.resize(count);
  req.args.resize(count);
  ERL_NIF_TERM list = args_term, head;
  for (unsigned i = 0; enif_get_list_cell(env, list, &head, &list); ++i) {
    buffer_resource* res = nullptr;
    if (enif_is_number(env, head)) {
      std::int64_t v;
      if (!get_i64(env, head, v)) return error_tuple(env, invalid("argument " + std::to_string(i) + " does not fit in int64"));
      req.args[i] = kiln::arg::of_scalar(v);
    } else if (get_buffer(env, head, res)) {
      enif_keep_resource(res);
      req.buffers.push_back(res);
      req.args[i] = kiln::arg::of_buffer(*res->buffer);
    } else if (enif_is_ref(env, head)) {
      return enif_make_badarg(env);  // a reference that is no buffer: Elixir names it
    } else if (auto e = decode_array_arg(env, head, req, i)) {
      return *e;
    }
  }
  ERL_NIF_TERM into;
  req.has_into = map_field(env, opts, atoms.into_, into) && !enif_is_identical(into, atoms.nil_);
  if (req.has_into) {
    ERL_NIF_TERM l = into, h;
    buffer_resource* res = nullptr;
    while (enif_get_list_cell(env, l, &h, &l)) {
      if (!get_buffer(env, h, res)) return enif_make_badarg(env);
      enif_keep_resource(res);
      req.into_buffers.push_back(res);
    }
  }
  // Fail before anything runs when the kernel is wrong for these arguments.
  if (!checked_by_run)
    if (auto s = kiln::validate(req.kern, req.args); !s) return error_tuple(env, s.err());
  if (!req.buffers.empty() || req.has_into) {
    if (req.host_arrays)
      return error_tuple(env, invalid("a kernel runs over buffers or over host data, not both: upload every array "
                                      "with Kiln.Buffer.upload/2 first, or download the buffers"));
    if (req.buffers.empty()) return error_tuple(env, invalid("into: needs a kernel over buffers"));
    if (req.has_into && req.into_buffers.size() != req.kern.outputs)
      return error_tuple(env, invalid("into: gives " + std::to_string(req.into_buffers.size()) + " buffer(s) for " +
                                      std::to_string(req.kern.outputs) + " output(s)"));
  } else if (!checked_by_run) {
    if (auto d = kiln::resolve(req.options); !d) return error_tuple(env, d.err());
  }
  return std::nullopt;
}

// Runs the request; the reply ({:ok, results, stats} or an error tuple) is built in `env`, which
// is the caller's for an inline run and a message environment for a job.
ERL_NIF_TERM execute(ErlNifEnv* env, run_request& req, double decode_s) {
  const auto& kern = req.kern;
  const std::stop_token stop = req.options.stop;
  if (!req.buffers.empty()) {
    // One call on a buffer at a time: every buffer involved is locked, in address order.
    std::vector<buffer_resource*> all = req.buffers;
    all.insert(all.end(), req.into_buffers.begin(), req.into_buffers.end());
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    std::vector<std::unique_lock<std::mutex>> locks;
    for (auto* b : all) locks.emplace_back(b->mutex);
    const kiln::device_buffer& first = *req.buffers.front()->buffer;
    std::vector<buffer_resource*> out_res;
    std::vector<kiln::device_buffer*> outs;
    // Releases the new output buffers that no term took over.
    struct releaser {
      std::vector<buffer_resource*>* v;
      bool own;
      ~releaser() {
        if (own)
          for (auto* r : *v) enif_release_resource(r);
      }
    } release_new{&out_res, !req.has_into};
    if (req.has_into) {
      for (auto* b : req.into_buffers) outs.push_back(&*b->buffer), out_res.push_back(b);
    } else {
      kiln::run_options where;
      where.backend = kiln::backend_name(first.device().backend);
      where.device = first.device().index;
      for (std::size_t j = 0; j < kern.outputs; ++j) {
        auto b = kiln::device_buffer::allocate(first.size(), where);
        if (!b) return error_tuple(env, b.err());
        auto* res = new_buffer_resource(std::move(b).value());
        if (!res) return error_tuple(env, kiln::errc::out_of_memory, "cannot allocate a buffer resource");
        out_res.push_back(res);
        outs.push_back(&*res->buffer);
      }
    }
    auto r = kiln::run(kern, req.args, outs, req.options);
    locks.clear();
    if (!r) return error_tuple(env, r.err());
    std::vector<ERL_NIF_TERM> results;
    for (auto* res : out_res) results.push_back(buffer_term(env, res));
    return enif_make_tuple3(env, atoms.ok_,
                            enif_make_list_from_array(env, results.data(), static_cast<unsigned>(results.size())),
                            stats_term(env, *r, 0, 0));
  }

  if (req.identity) {
    const std::span<const std::int64_t> in = req.args.front().array;
    if (stop.stop_requested()) return error_tuple(env, kiln::errc::cancelled, "the conversion was stopped");
    if (req.as_list) {
      auto l = list_term_of(env, req.data.front());
      return l ? ok_tuple(env, *l) : error_tuple(env, l.err());
    }
    new_binary bin;
    if (!bin.alloc(in.size()))
      return error_tuple(env, kiln::errc::out_of_memory,
                         "cannot allocate a " + std::to_string(in.size_bytes()) + "-byte result binary");
    if (!in.empty()) std::memcpy(bin.span().data(), in.data(), in.size_bytes());
    return ok_tuple(env, bin.to_term(env));
  }

  std::size_t n = 0;
  for (const auto& a : req.args)
    if (a.what == kiln::arg::kind::array) n = a.array.size();
  // Results: binaries in host blocks (a list is encoded from them afterwards). A list result
  // needs no binary: it may take the decoded copy of an input (a list's or a Range's, which
  // nothing else reads), as the engine lets an output alias an array argument exactly; that
  // spares a block as long as the array, fresh memory where the pool has none free.
  std::vector<new_binary> bins(kern.outputs);
  std::vector<std::span<std::int64_t>> outs;
  std::vector<bool> taken(req.data.size(), false);
  for (auto& b : bins) {
    if (req.as_list) {
      std::size_t i = 0;
      while (i < req.data.size() && (taken[i] || !req.data[i].owned || req.data[i].storage.size() != n)) ++i;
      if (i < req.data.size()) {
        taken[i] = true;
        outs.push_back(req.data[i].storage.span());
        continue;
      }
    }
    if (!b.alloc(n))
      return error_tuple(env, kiln::errc::out_of_memory,
                         "cannot allocate a " + std::to_string(n * sizeof(std::int64_t)) + "-byte result");
    outs.push_back(b.span());
  }
  auto r = kiln::run(kern, req.args, outs, req.options);
  if (!r) return error_tuple(env, r.err());
  // Nobody waits for a stopped job's results: encoding a long list for it would be wasted work.
  if (stop.stop_requested()) return error_tuple(env, kiln::errc::cancelled, "the run was stopped before it finished");
  auto t1 = steady::now();
  std::vector<ERL_NIF_TERM> results;
  for (std::size_t j = 0; j < bins.size(); ++j)
    results.push_back(req.as_list ? list_term_spending(env, outs[j]) : bins[j].to_term(env));
  const double encode_s = seconds_since(t1);
  return enif_make_tuple3(env, atoms.ok_,
                          enif_make_list_from_array(env, results.data(), static_cast<unsigned>(results.size())),
                          stats_term(env, *r, decode_s, encode_s));
}

// Kiln's runner threads: one per job in flight, started as needed (up to max_runners; beyond it
// jobs wait their turn), kept for the next jobs. Never destroyed: a job may still run while the VM
// exits, and must not find its pool gone.
class runners {
 public:
  static runners& get() {
    static runners* r = new runners();  // deliberately never destroyed (see above)
    return *r;
  }

  void submit(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(m_);
    queue_.push_back(std::move(task));
    if (idle_ < queue_.size() && threads_ < max_runners) {
      ++threads_;
      std::thread([this] { loop(); }).detach();
    }
    cv_.notify_one();
  }

  // Runs `f` on a runner thread and waits for it (engine calls that must come from a runner,
  // such as the first probe, whose backend threads then inherit the runner's priority).
  template <class F>
  auto call(F&& f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::forward<F>(f));
    auto result = task.get_future();
    submit([&task] { task(); });
    return result.get();
  }

  long jobs() const { return jobs_.load(); }
  std::atomic<long> jobs_{0};  // jobs started and not yet replied

 private:
  static constexpr std::size_t max_runners = 64;

  void loop() {
    // The workers' priority, so that a VM's schedulers win the cores when they want them, and
    // threads the engine starts from here (PoCL's, CUDA's) inherit it.
    kiln::lower_thread_priority();
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(m_);
        ++idle_;
        cv_.wait(lock, [&] { return !queue_.empty(); });
        --idle_;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::size_t threads_ = 0;
  std::size_t idle_ = 0;
};

// Whether the engine has probed its devices. The probe runs on a runner thread, once: the
// threads that backends start while probing (PoCL's pool, the CUDA driver's) inherit its
// priority, and no normal scheduler waits for it.
std::atomic<bool> probed{false};

void probe() {
  if (probed.load(std::memory_order_acquire)) return;
  static std::once_flag once;
  std::call_once(once, [] {
    runners::get().call([] { (void)kiln::devices(); });
    probed.store(true, std::memory_order_release);
  });
}

// The NIF resource behind a job: how to stop it, and whom it answers.
struct job_resource {
  std::stop_source stop;
  ErlNifPid owner;
  ErlNifMonitor monitor;
  std::atomic<bool> monitored{false};
};
ErlNifResourceType* job_type = nullptr;

void job_dtor(ErlNifEnv*, void* obj) {
  if (exiting.load()) return;
  static_cast<job_resource*>(obj)->~job_resource();
}

// The caller died: nobody will read the job's results, so it stops.
void job_down(ErlNifEnv*, void* obj, ErlNifPid*, ErlNifMonitor*) { static_cast<job_resource*>(obj)->stop.request_stop(); }

// Starts `req` as a job answering the calling process: {:started, ref, job}.
ERL_NIF_TERM start_job(ErlNifEnv* env, std::shared_ptr<run_request> req, double decode_s) {
  void* mem = enif_alloc_resource(job_type, sizeof(job_resource));
  if (!mem) return error_tuple(env, kiln::errc::out_of_memory, "cannot allocate a job");
  auto* job = new (mem) job_resource();
  enif_self(env, &job->owner);
  if (enif_monitor_process(env, job, &job->owner, &job->monitor) == 0) job->monitored = true;
  else job->stop.request_stop();  // the caller is already gone
  req->options.stop = job->stop.get_token();
  ErlNifEnv* msg_env = enif_alloc_env();
  const ERL_NIF_TERM ref = enif_make_ref(env);
  const ERL_NIF_TERM reply_ref = enif_make_copy(msg_env, ref);
  enif_keep_resource(job);  // the runner's reference
  runners::get().jobs_.fetch_add(1);
  runners::get().submit([job, req = std::move(req), msg_env, reply_ref, decode_s]() mutable {
    ERL_NIF_TERM reply;
    try {
      reply = execute(msg_env, *req, decode_s);
    } catch (const std::bad_alloc&) {
      reply = error_tuple(msg_env, kiln::errc::out_of_memory, "out of host memory");
    } catch (const std::exception& e) {
      reply = error_tuple(msg_env, kiln::errc::internal, e.what());
    }
    req.reset();  // buffers unlocked and released, binaries let go, before the caller hears back
    if (job->monitored.exchange(false)) (void)enif_demonitor_process(nullptr, job, &job->monitor);
    // A dead owner's message is dropped by the VM.
    // Counted out before the reply, so that a caller holding it never still sees its job.
    runners::get().jobs_.fetch_sub(1);
    (void)enif_send(nullptr, &job->owner, msg_env, enif_make_tuple2(msg_env, reply_ref, reply));
    enif_free_env(msg_env);
    enif_release_resource(job);
  });
  ERL_NIF_TERM job_term = enif_make_resource(env, job);
  enif_release_resource(job);  // the term now holds the caller's reference
  return enif_make_tuple3(env, atoms.started_, ref, job_term);
}

// convert's long path (see convert_nif): the data decoded here, the identity as a job.
ERL_NIF_TERM convert_job(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  auto req = std::make_shared<run_request>();
  if (!get_bool(env, argv[1], req->as_list)) return enif_make_badarg(env);
  req->identity = true;
  req->data.resize(1);
  req->args.resize(1);
  const auto t0 = steady::now();
  if (auto e = decode_array_arg(env, argv[0], *req, 0)) return *e;
  return start_job(env, std::move(req), seconds_since(t0));
}

// Inline runs: at most this many elements, and at most this much work (elements x iterations x
// the kernel's words): well under a millisecond on one core, for the interpreter as for the map.
// Conversions (convert_nif) run inline up to the same length.
constexpr std::size_t inline_max_elements = 8192;
constexpr double inline_max_work = double(1 << 17);

// Whether the code holds a loop (whose trip count the arguments set, so its cost is not the
// code's length) or a word that is no operation (left for the job's validation to word).
bool has_loops(std::span<const std::int64_t> code) {
  for (std::size_t pc = 0; pc < code.size(); ++pc) {
    switch (static_cast<kiln::op>(code[pc])) {
#define KILN_OP_LENGTH(name, number, pops, operand) \
  case kiln::op::name:                              \
    if (kiln::op::name == kiln::op::loop_begin) return true; \
    pc += (operand);                                \
    break;
      KILN_KERNEL_OPS(KILN_OP_LENGTH)
#undef KILN_OP_LENGTH
      default: return true;
    }
  }
  return false;
}

bool runs_inline(const run_request& req, const request_shape& shape) {
  if (shape.any_buffer || req.has_into || shape.elements > inline_max_elements || has_loops(req.code)) return false;
  const auto& b = req.options.backend;
  if (!(b == "auto" || b == "cpu" || b == "scalar") || req.options.device != 0) return false;
  const double per_element = static_cast<double>(std::max<std::size_t>(req.code.size(), 1));
  const double work = static_cast<double>(shape.elements) * static_cast<double>(std::max<std::int64_t>(req.kern.iterations, 1)) * per_element;
  return work <= inline_max_work;
}

ERL_NIF_TERM kernel_run_dirty(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]);

// convert(data, as_list, as_job) -> {:ok, same elements as a list or a binary} | {:started, ref, job}:
// empty_call, the list/binary helpers and iota cross the boundary the way a run does, minus the
// run, and a run's shape decides where, as in kernel_run: small data converts at once on the
// caller's scheduler. Longer data converts on a dirty scheduler, at the VM's priority and beside
// no run; or, with as_job (empty_call, which stands for what a run pays around its computation),
// as a run's job does: data that needs decoding decoded on a dirty scheduler first, the reply
// {ref, {:ok, term}} encoded on Kiln's runner thread.
ERL_NIF_TERM convert_inline(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  bool as_list;
  if (!get_bool(env, argv[1], as_list)) return enif_make_badarg(env);
  return converted_term(env, argv[0], as_list);
}

ERL_NIF_TERM convert_nif(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
  bool as_job;
  if (!get_bool(env, argv[2], as_job)) return enif_make_badarg(env);
  const request_shape shape = shape_of(env, enif_make_list1(env, argv[0]), inline_max_elements);
  if (shape.elements <= inline_max_elements) return convert_inline(env, argc, argv);
  if (!as_job) return enif_schedule_nif(env, "convert", ERL_NIF_DIRTY_JOB_CPU_BOUND, guarded<convert_inline>, argc, argv);
  if (!shape.needs_decoding) return convert_job(env, argc, argv);
  return enif_schedule_nif(env, "convert", ERL_NIF_DIRTY_JOB_CPU_BOUND, guarded<convert_job>, argc, argv);
}

// kernel_run({code, arity, outputs, locals, iterations}, args, options)
//   -> {:ok, [result, ...], stats} | {:error, reason} | {:started, ref, job}: the one entry every
// kernel takes, the built-in map included. `code` is a binary of native-endian int64 words
// (kiln/kernel.hpp); each argument is an integer (a scalar), a buffer resource, or data as
// decode() takes it (an array). Over host data the results are lists or binaries
// (options.as_list); over buffers (every array a buffer) they are new buffers on the same device,
// or the buffers of options.into (a list of resources, one per output) written in place. A small
// run replies at once; any other replies {:started, ref, job} and sends {ref, reply} later.
ERL_NIF_TERM kernel_run_nif(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
  // The first call probes the devices (a CUDA driver's start takes a while): not here.
  if (!probed.load(std::memory_order_acquire))
    return enif_schedule_nif(env, "kernel_run", ERL_NIF_DIRTY_JOB_CPU_BOUND, guarded<kernel_run_dirty>, argc, argv);
  auto req = std::make_shared<run_request>();
  if (!parse_kernel(env, argv, *req)) return enif_make_badarg(env);
  const request_shape shape = shape_of(env, argv[1], inline_max_elements);
  if (runs_inline(*req, shape)) {
    const auto t0 = steady::now();
    if (req->options.backend == "auto") req->options.backend = "cpu";  // the same results, no device
    if (auto e = parse_args(env, argv[1], argv[2], *req, /*checked_by_run=*/true)) return *e;
    ERL_NIF_TERM reply = execute(env, *req, seconds_since(t0));
    const int percent = static_cast<int>(std::clamp(seconds_since(t0) * 1e5, 1.0, 100.0));
    (void)enif_consume_timeslice(env, percent);
    return reply;
  }
  // Decoding a list takes time in proportion to its length: that belongs on a dirty scheduler.
  if (shape.needs_decoding)
    return enif_schedule_nif(env, "kernel_run", ERL_NIF_DIRTY_JOB_CPU_BOUND, guarded<kernel_run_dirty>, argc, argv);
  if (auto e = parse_args(env, argv[1], argv[2], *req)) return *e;
  return start_job(env, std::move(req), 0);
}

// The dirty half of kernel_run: decodes lists and Ranges, then starts the job.
ERL_NIF_TERM kernel_run_dirty(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  probe();
  auto req = std::make_shared<run_request>();
  if (!parse_kernel(env, argv, *req)) return enif_make_badarg(env);
  const auto t0 = steady::now();
  if (auto e = parse_args(env, argv[1], argv[2], *req)) return *e;
  return start_job(env, std::move(req), seconds_since(t0));
}

// job_cancel(job) -> :ok: asks the job to stop (its reply then says :cancelled, unless it had
// finished).
ERL_NIF_TERM job_cancel_nif(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  void* p;
  if (!enif_get_resource(env, argv[0], job_type, &p)) return enif_make_badarg(env);
  static_cast<job_resource*>(p)->stop.request_stop();
  return atoms.ok_;
}

// jobs() -> jobs started and not yet replied (for tests of stopping).
ERL_NIF_TERM jobs_nif(ErlNifEnv* env, int, const ERL_NIF_TERM[]) { return enif_make_int64(env, runners::get().jobs()); }

// live_buffers() -> number of buffer resources not yet destroyed (for the tests of GC).
ERL_NIF_TERM live_buffers_nif(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
  return enif_make_int64(env, live_buffers.load());
}

// ---- registration -------------------------------------------------------------------------------

int open_types(ErlNifEnv* env, ErlNifResourceFlags flags) {
  buffer_type = enif_open_resource_type(env, nullptr, "kiln_buffer", buffer_dtor, flags, nullptr);
  host_block_type = enif_open_resource_type(env, nullptr, "kiln_host_block", host_block_dtor, flags, nullptr);
  ErlNifResourceTypeInit job_init{};
  job_init.dtor = job_dtor;
  job_init.down = job_down;
  job_type = enif_open_resource_type_x(env, "kiln_job", &job_init, flags, nullptr);
  return buffer_type && host_block_type && job_type ? 0 : 1;
}

// The VM ignores SIGCHLD, so the kernel reaps its children at once and waitpid() finds none.
// OpenCL on the CPU (PoCL) links each kernel it has not cached by running the linker and waiting
// for it: with SIGCHLD ignored that wait fails and PoCL aborts the whole VM. The default
// disposition (discard the signal, keep the child until it is waited for) lets PoCL wait. The
// VM's own port programs are children of its erl_child_setup process, not of this one, so none
// is left unreaped by the change.
void let_children_be_waited_for() {
  struct sigaction sa {};
  if (sigaction(SIGCHLD, nullptr, &sa) != 0) return;
  if (sa.sa_handler != SIG_IGN && (sa.sa_flags & SA_NOCLDWAIT) == 0) return;
  sa.sa_handler = SIG_DFL;
  sa.sa_flags &= ~SA_NOCLDWAIT;
  (void)sigaction(SIGCHLD, &sa, nullptr);
}

int load(ErlNifEnv* env, void**, ERL_NIF_TERM) {
  let_children_be_waited_for();
  make_atoms(env);
  return open_types(env, ERL_NIF_RT_CREATE);
}

int upgrade(ErlNifEnv* env, void**, void**, ERL_NIF_TERM) {
  make_atoms(env);
  return open_types(env, static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER));
}

constexpr unsigned cpu = ERL_NIF_DIRTY_JOB_CPU_BOUND;
constexpr unsigned io = ERL_NIF_DIRTY_JOB_IO_BOUND;

// kernel_run is a normal NIF that runs small work at once and hands the rest to Kiln's runner
// threads (see "kernel runs" above). The *_io twins run on dirty IO schedulers: Elixir picks
// them for GPU backends, whose transfers mostly wait on the device and should not hold one of
// the few dirty CPU schedulers.
ErlNifFunc nif_funcs[] = {
    {"convert", 3, guarded<convert_nif>, 0},
    {"concat", 1, guarded<concat_nif>, cpu},
    {"kernel_run", 3, guarded<kernel_run_nif>, 0},
    {"job_cancel", 1, guarded<job_cancel_nif>, 0},
    {"jobs", 0, guarded<jobs_nif>, 0},
    {"devices", 0, guarded<devices_nif>, cpu},
    {"buffer_upload", 3, guarded<buffer_upload_nif>, cpu},
    {"buffer_upload_io", 3, guarded<buffer_upload_nif>, io},
    {"buffer_download", 2, guarded<buffer_download_nif>, cpu},
    {"buffer_download_io", 2, guarded<buffer_download_nif>, io},
    {"live_buffers", 0, guarded<live_buffers_nif>, 0},
};

}  // namespace

ERL_NIF_INIT(Elixir.Kiln.Native, nif_funcs, load, nullptr, upgrade, nullptr)
