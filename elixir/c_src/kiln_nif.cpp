// Erlang NIF glue for Kiln.Native: decodes terms, calls the kiln:: C++ API, encodes the results.
//
// Every function that touches a large input or runs the engine is registered as a dirty NIF
// (CPU-bound, or IO-bound for GPU waits), so nothing long runs on a normal scheduler. C++
// exceptions never cross into the VM: `guarded` turns them into {:error, {kind, message}}.
#include <erl_nif.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <exception>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/kiln.hpp"

namespace {

using steady = std::chrono::steady_clock;

double seconds_since(steady::time_point t0) { return std::chrono::duration<double>(steady::now() - t0).count(); }

// ---- terms ---------------------------------------------------------------------------------

ERL_NIF_TERM atom(ErlNifEnv* env, const char* name) { return enif_make_atom(env, name); }

ERL_NIF_TERM string_term(ErlNifEnv* env, std::string_view s) {
  ERL_NIF_TERM t;
  unsigned char* p = enif_make_new_binary(env, s.size(), &t);
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return t;
}

ERL_NIF_TERM ok_tuple(ErlNifEnv* env, ERL_NIF_TERM value) { return enif_make_tuple2(env, atom(env, "ok"), value); }

// {:error, {kind, message}}: kind is the errc name, so Elixir can branch on it.
ERL_NIF_TERM error_tuple(ErlNifEnv* env, kiln::errc code, std::string_view message) {
  return enif_make_tuple2(env, atom(env, "error"),
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

bool get_bool(ErlNifEnv* env, ERL_NIF_TERM t, bool& out) {
  if (enif_is_identical(t, atom(env, "true"))) return out = true, true;
  if (enif_is_identical(t, atom(env, "false"))) return out = false, true;
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

// Accepts a binary of native-endian int64, a proper list of integers, or {:iota, first, step,
// count} (how Kiln.LogisticMap passes a Range, so that no list is built for it).
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
  if (enif_get_list_length(env, term, &length)) {
    KILN_TRY(out.adopt(length));
    ERL_NIF_TERM head, tail = term;
    for (std::size_t i = 0; enif_get_list_cell(env, tail, &head, &tail); ++i) {
      std::int64_t v;
      if (!get_i64(env, head, v)) {
        out.bad_element.emplace(i, head);
        return invalid("element at index " + std::to_string(i) + " is not an int64");
      }
      out.storage.data()[i] = v;
    }
    return {};
  }

  int arity;
  const ERL_NIF_TERM* tuple;
  std::int64_t first, step;
  ErlNifUInt64 count;
  if (enif_get_tuple(env, term, &arity, &tuple) && arity == 4 && enif_is_identical(tuple[0], atom(env, "iota")) &&
      get_i64(env, tuple[1], first) && get_i64(env, tuple[2], step) && enif_get_uint64(env, tuple[3], &count)) {
    if (count > SIZE_MAX / sizeof(std::int64_t))
      return kiln::make_error(kiln::errc::out_of_memory, std::to_string(count) + " elements do not fit in memory");
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
  return enif_make_tuple2(env, atom(env, "error"), enif_make_tuple_from_array(env, detail, 4));
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

ERL_NIF_TERM list_term(ErlNifEnv* env, std::span<const std::int64_t> values) {
  // Built from the back with cons cells: no temporary array of n terms.
  ERL_NIF_TERM list = enif_make_list(env, 0);
  for (std::size_t i = values.size(); i-- > 0;)
    list = enif_make_list_cell(env, enif_make_int64(env, static_cast<ErlNifSInt64>(values[i])), list);
  return list;
}

// What a transform produced: the result term (or the error tuple) and where the time went.
struct outcome {
  bool ok = false;
  ERL_NIF_TERM term{};
  kiln::run_stats stats;
  double decode_s = 0;
  double encode_s = 0;
};

// Decodes `data`, applies `body(in, out)` (nullptr: the identity) and encodes the result as a list
// or a binary. The input binary is never written: results go to a fresh binary or to a copy.
template <class Body>
outcome transform(ErlNifEnv* env, ERL_NIF_TERM data, bool as_list, const Body* body) {
  outcome o;
  auto t0 = steady::now();
  int64_data in;
  if (auto s = decode(env, data, in); !s) {
    o.term = decode_error(env, s, in);
    return o;
  }
  o.decode_s = seconds_since(t0);
  const std::size_t n = in.view.size();

  // Where results go when they cannot go straight into the output binary.
  std::vector<std::int64_t> scratch;
  auto scratch_out = [&]() -> std::span<std::int64_t> {
    if (in.owned) return in.storage.span();  // the copy is ours: the engine may work in place
    scratch.resize(n);
    return scratch;
  };
  auto compute = [&](std::span<std::int64_t> out) -> bool {
    auto r = (*body)(in.view, out);
    if (!r) {
      o.term = error_tuple(env, r.err());
      return false;
    }
    o.stats = std::move(r).value();
    return true;
  };

  if (as_list) {
    std::span<const std::int64_t> values = in.view;
    if (body) {
      auto out = scratch_out();
      if (!compute(out)) return o;
      values = out;
    }
    auto t1 = steady::now();
    o.term = list_term(env, values);
    o.encode_s = seconds_since(t1);
  } else {
    auto t1 = steady::now();
    new_binary bin;
    if (!bin.alloc(n)) {
      o.term = error_tuple(env, kiln::errc::out_of_memory,
                           "cannot allocate a " + std::to_string(n * sizeof(std::int64_t)) + "-byte result binary");
      return o;
    }
    if (!body) {
      if (n) std::memcpy(bin.span().data(), in.view.data(), n * sizeof(std::int64_t));
    }
    o.encode_s = seconds_since(t1);
    if (body && !compute(bin.span())) return o;
    o.term = bin.to_term(env);
  }
  o.ok = true;
  return o;
}

ERL_NIF_TERM stats_term(ErlNifEnv* env, const kiln::run_stats& s, double decode_s, double encode_s) {
  ERL_NIF_TERM keys[] = {atom(env, "backend"),  atom(env, "device"),           atom(env, "host_to_device_s"),
                         atom(env, "kernel_s"), atom(env, "device_to_host_s"), atom(env, "total_s"),
                         atom(env, "chunks"),   atom(env, "host_elements"),    atom(env, "decode_s"),
                         atom(env, "encode_s")};
  ERL_NIF_TERM values[] = {atom(env, s.backend.c_str()),
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

// {:ok, result, stats} from running `body` over the decoded data, or the error tuple.
template <class Body>
ERL_NIF_TERM run_reply(ErlNifEnv* env, ERL_NIF_TERM data, bool as_list, const Body& body) {
  outcome o = transform(env, data, as_list, &body);
  if (!o.ok) return o.term;
  return enif_make_tuple3(env, atom(env, "ok"), o.term, stats_term(env, o.stats, o.decode_s, o.encode_s));
}

// convert(data, as_list) -> {:ok, same elements as a list or a binary}: empty_call, the
// list/binary helpers and iota all cross the boundary the same way a run does, minus the run.
ERL_NIF_TERM convert_nif(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  bool as_list;
  if (!get_bool(env, argv[1], as_list)) return enif_make_badarg(env);
  using identity = kiln::result<kiln::run_stats>(std::span<const std::int64_t>, std::span<std::int64_t>);
  outcome o = transform<identity>(env, argv[0], as_list, nullptr);
  return o.ok ? ok_tuple(env, o.term) : o.term;
}

// Reads a map's atom-keyed field; false when it is missing.
bool map_field(ErlNifEnv* env, ERL_NIF_TERM map, const char* key, ERL_NIF_TERM& out) {
  return enif_get_map_value(env, map, atom(env, key), &out);
}

// The options map of kernel_run: %{backend:, device:, chunk_size:, phase_times:, host_share:, as_list:}.
bool get_kernel_options(ErlNifEnv* env, ERL_NIF_TERM map, kiln::run_options& options, bool& as_list) {
  ERL_NIF_TERM backend, device, chunk, phases, share, list;
  if (!enif_is_map(env, map) || !map_field(env, map, "backend", backend) || !map_field(env, map, "device", device) ||
      !map_field(env, map, "chunk_size", chunk) || !map_field(env, map, "phase_times", phases) ||
      !map_field(env, map, "host_share", share) || !map_field(env, map, "as_list", list))
    return false;
  return get_run_options(env, backend, device, chunk, options) && get_bool(env, phases, options.phase_times) &&
         get_bool(env, share, options.host_share) && get_bool(env, list, as_list);
}

// concat(binaries) -> {:ok, binary} | {:error, {kind, message}}: the parts' int64 elements one
// after another in one binary, copied on every core into a host block (Kiln.Cluster joins its
// nodes' results with it: a plain iolist_to_binary of 256 MiB takes one core 50 ms).
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
  std::vector<ERL_NIF_TERM> maps;
  for (const auto& d : kiln::devices()) {
    ERL_NIF_TERM keys[] = {atom(env, "backend"),  atom(env, "index"),         atom(env, "name"),
                           atom(env, "platform"), atom(env, "compute_units"), atom(env, "memory_bytes"),
                           atom(env, "gpu"),      atom(env, "available"),     atom(env, "reason")};
    ERL_NIF_TERM values[] = {atom(env, kiln::backend_name(d.backend)),
                             enif_make_int(env, d.index),
                             string_term(env, d.name),
                             string_term(env, d.platform),
                             enif_make_int(env, d.compute_units),
                             enif_make_uint64(env, d.memory_bytes),
                             atom(env, d.gpu ? "true" : "false"),
                             atom(env, d.available ? "true" : "false"),
                             d.reason.empty() ? atom(env, "nil") : string_term(env, d.reason)};
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
                           atom(env, kiln::backend_name(dev.backend)), string_term(env, dev.name)};
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
  ERL_NIF_TERM fields[] = {atom(env, "ok"), f[1], f[2], f[3], f[4]};
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
  std::vector<std::int64_t> scratch;
  if (as_list) scratch.resize(n);
  std::span<std::int64_t> out = as_list ? std::span<std::int64_t>(scratch) : bin.span();
  if (auto s = res->buffer->download(out); !s) return error_tuple(env, s.err());
  return ok_tuple(env, as_list ? list_term(env, out) : bin.to_term(env));
}

// kernel_run({code, arity, outputs, locals, iterations}, args, options)
//   -> {:ok, [result, ...], stats} | {:error, reason}: the one entry every kernel takes, the
// built-in map included. `code` is a binary of native-endian int64 words (kiln/kernel.hpp); each
// argument is an integer (a scalar), a buffer resource, or data as decode() takes it (an array).
// Over host data the results are lists or binaries (options.as_list); over buffers (every array
// a buffer) they are new buffers on the same device, or the buffers of options.into (a list of
// resources, one per output) written in place.
ERL_NIF_TERM kernel_run_nif(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  int arity = 0;
  const ERL_NIF_TERM* k = nullptr;
  ErlNifBinary code_bin;
  kiln::kernel kern;
  ErlNifUInt64 args_n, outputs_n, locals_n;
  kiln::run_options options;
  bool as_list = false;
  if (!enif_get_tuple(env, argv[0], &arity, &k) || arity != 5 || !enif_inspect_binary(env, k[0], &code_bin) ||
      code_bin.size % sizeof(std::int64_t) != 0 || !enif_get_uint64(env, k[1], &args_n) ||
      !enif_get_uint64(env, k[2], &outputs_n) || !enif_get_uint64(env, k[3], &locals_n) ||
      !get_i64(env, k[4], kern.iterations) || !get_kernel_options(env, argv[2], options, as_list))
    return enif_make_badarg(env);
  // The code binary may be a sub-binary at any byte: copy it into aligned words.
  std::vector<std::int64_t> code(code_bin.size / sizeof(std::int64_t));
  if (!code.empty()) std::memcpy(code.data(), code_bin.data, code_bin.size);
  kern.code = code;
  kern.arity = static_cast<std::size_t>(args_n);
  kern.outputs = static_cast<std::size_t>(outputs_n);
  kern.locals = static_cast<std::size_t>(locals_n);
  if (kern.outputs > kiln::kernel_max_outputs) return error_tuple(env, invalid("too many kernel outputs"));

  unsigned count = 0;
  if (!enif_get_list_length(env, argv[1], &count)) return enif_make_badarg(env);
  if (count > kiln::kernel_max_args) return error_tuple(env, invalid("too many kernel arguments"));
  auto t0 = steady::now();
  std::vector<int64_data> data(count);
  std::vector<kiln::arg> args(count);
  std::vector<buffer_resource*> buffers;  // every buffer the run touches, arguments and outputs
  bool host_arrays = false;
  ERL_NIF_TERM list = argv[1], head;
  for (unsigned i = 0; enif_get_list_cell(env, list, &head, &list); ++i) {
    buffer_resource* res = nullptr;
    if (enif_is_number(env, head)) {
      std::int64_t v;
      if (!get_i64(env, head, v)) return error_tuple(env, invalid("argument " + std::to_string(i) + " does not fit in int64"));
      args[i] = kiln::arg::of_scalar(v);
    } else if (get_buffer(env, head, res)) {
      buffers.push_back(res);
      args[i] = kiln::arg::of_buffer(*res->buffer);
    } else if (enif_is_ref(env, head)) {
      return enif_make_badarg(env);  // a reference that is no buffer: Elixir names it
    } else {
      if (auto s = decode(env, head, data[i]); !s) return decode_error(env, s, data[i]);
      args[i] = kiln::arg::of_array(data[i].view);
      host_arrays = true;
    }
  }
  ERL_NIF_TERM into;
  const bool has_into = map_field(env, argv[2], "into", into) && !enif_is_identical(into, atom(env, "nil"));
  std::vector<buffer_resource*> into_buffers;
  if (has_into) {
    ERL_NIF_TERM l = into, h;
    buffer_resource* res = nullptr;
    while (enif_get_list_cell(env, l, &h, &l)) {
      if (!get_buffer(env, h, res)) return enif_make_badarg(env);
      into_buffers.push_back(res);
    }
  }
  // Fail before allocating results when the kernel is wrong for these arguments or the backend is.
  if (auto s = kiln::validate(kern, args); !s) return error_tuple(env, s.err());

  if (!buffers.empty() || has_into) {
    if (host_arrays)
      return error_tuple(env, invalid("a kernel runs over buffers or over host data, not both: upload every array "
                                      "with Kiln.Buffer.upload/2 first, or download the buffers"));
    if (buffers.empty()) return error_tuple(env, invalid("into: needs a kernel over buffers"));
    // One call on a buffer at a time: every buffer involved is locked, in address order.
    std::vector<buffer_resource*> all = buffers;
    all.insert(all.end(), into_buffers.begin(), into_buffers.end());
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    std::vector<std::unique_lock<std::mutex>> locks;
    for (auto* b : all) locks.emplace_back(b->mutex);
    const kiln::device_buffer& first = *buffers.front()->buffer;
    std::vector<buffer_resource*> out_res;
    std::vector<kiln::device_buffer*> outs;
    std::vector<ERL_NIF_TERM> results;
    if (has_into) {
      if (into_buffers.size() != kern.outputs)
        return error_tuple(env, invalid("into: gives " + std::to_string(into_buffers.size()) + " buffer(s) for " +
                                        std::to_string(kern.outputs) + " output(s)"));
      for (auto* b : into_buffers) outs.push_back(&*b->buffer), out_res.push_back(b);
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
    auto r = kiln::run(kern, args, outs);
    locks.clear();
    for (auto* res : out_res) {
      results.push_back(buffer_term(env, res));
      if (!has_into) enif_release_resource(res);  // the terms now own the new buffers
    }
    if (!r) return error_tuple(env, r.err());
    return enif_make_tuple3(env, atom(env, "ok"),
                            enif_make_list_from_array(env, results.data(), static_cast<unsigned>(results.size())),
                            stats_term(env, *r, 0, 0));
  }

  if (auto d = kiln::resolve(options); !d) return error_tuple(env, d.err());
  std::size_t n = 0;
  for (const auto& a : args)
    if (a.what == kiln::arg::kind::array) n = a.array.size();
  const double decode_s = seconds_since(t0);

  // Results: binaries in host blocks (a list is encoded from them afterwards).
  std::vector<new_binary> bins(kern.outputs);
  std::vector<std::span<std::int64_t>> outs;
  for (auto& b : bins) {
    if (!b.alloc(n))
      return error_tuple(env, kiln::errc::out_of_memory,
                         "cannot allocate a " + std::to_string(n * sizeof(std::int64_t)) + "-byte result");
    outs.push_back(b.span());
  }
  auto r = kiln::run(kern, args, outs, options);
  if (!r) return error_tuple(env, r.err());
  auto t1 = steady::now();
  std::vector<ERL_NIF_TERM> results;
  for (std::size_t j = 0; j < bins.size(); ++j)
    results.push_back(as_list ? list_term(env, outs[j]) : bins[j].to_term(env));
  const double encode_s = seconds_since(t1);
  return enif_make_tuple3(env, atom(env, "ok"),
                          enif_make_list_from_array(env, results.data(), static_cast<unsigned>(results.size())),
                          stats_term(env, *r, decode_s, encode_s));
}

// live_buffers() -> number of buffer resources not yet destroyed (for the tests of GC).
ERL_NIF_TERM live_buffers_nif(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
  return enif_make_int64(env, live_buffers.load());
}

// ---- registration -------------------------------------------------------------------------------

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

int open_types(ErlNifEnv* env, ErlNifResourceFlags flags) {
  buffer_type = enif_open_resource_type(env, nullptr, "kiln_buffer", buffer_dtor, flags, nullptr);
  host_block_type = enif_open_resource_type(env, nullptr, "kiln_host_block", host_block_dtor, flags, nullptr);
  return buffer_type && host_block_type ? 0 : 1;
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
  return open_types(env, ERL_NIF_RT_CREATE);
}

int upgrade(ErlNifEnv* env, void**, void**, ERL_NIF_TERM) {
  return open_types(env, static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER));
}

constexpr unsigned cpu = ERL_NIF_DIRTY_JOB_CPU_BOUND;
constexpr unsigned io = ERL_NIF_DIRTY_JOB_IO_BOUND;

// The *_io twins run on dirty IO schedulers: Elixir picks them for GPU backends, whose calls
// mostly wait on the device and should not hold one of the few dirty CPU schedulers.
ErlNifFunc nif_funcs[] = {
    {"convert", 2, guarded<convert_nif>, cpu},
    {"concat", 1, guarded<concat_nif>, cpu},
    {"kernel_run", 3, guarded<kernel_run_nif>, cpu},
    {"kernel_run_io", 3, guarded<kernel_run_nif>, io},
    {"devices", 0, guarded<devices_nif>, cpu},
    {"buffer_upload", 3, guarded<buffer_upload_nif>, cpu},
    {"buffer_upload_io", 3, guarded<buffer_upload_nif>, io},
    {"buffer_download", 2, guarded<buffer_download_nif>, cpu},
    {"buffer_download_io", 2, guarded<buffer_download_nif>, io},
    {"live_buffers", 0, guarded<live_buffers_nif>, 0},
};

}  // namespace

ERL_NIF_INIT(Elixir.Kiln.Native, nif_funcs, load, nullptr, upgrade, nullptr)
