// Error values for the Kiln API: every fallible call returns kiln::result<T> or kiln::status.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace kiln {

// What went wrong, coarse enough for a caller to branch on; the message says the rest.
enum class errc {
  invalid_argument,     // a parameter outside its documented domain (p, iterations, sizes)
  unknown_backend,      // a backend name Kiln does not know
  backend_unavailable,  // known, but not usable here (no driver, no device, not built)
  out_of_memory,        // host or device allocation failed
  device_error,         // a CUDA/OpenCL call failed; the message names the call
  arithmetic,           // a program divided by zero (the message names the element)
  cancelled,            // run_options::stop was requested before the run finished
  internal,             // a broken invariant inside Kiln
};

const char* errc_name(errc code) noexcept;

struct error {
  errc code;
  std::string message;
};

// The exception thrown by the throwing convenience wrappers (value_or_throw).
class kiln_error : public std::runtime_error {
 public:
  explicit kiln_error(error e) : std::runtime_error(e.message), error_(std::move(e)) {}
  const kiln::error& err() const noexcept { return error_; }

 private:
  kiln::error error_;
};

// A value or an error; a small stand-in for C++23 std::expected.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  result(error e) : v_(std::in_place_index<1>, std::move(e)) {}      // NOLINT: implicit by design

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

  const kiln::error& err() const { return std::get<1>(v_); }

  // The one boundary where an error value becomes an exception.
  T value_or_throw() && {
    if (!ok()) throw kiln_error(err());
    return std::get<0>(std::move(v_));
  }

 private:
  std::variant<T, error> v_;
};

// Success or an error.
class [[nodiscard]] status {
 public:
  status() = default;
  status(error e) : error_(std::move(e)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const kiln::error& err() const { return error_; }
  void throw_if_error() const {
    if (!ok_) throw kiln_error(error_);
  }

 private:
  error error_{errc::internal, {}};
  bool ok_ = true;
};

inline error make_error(errc code, std::string message) { return error{code, std::move(message)}; }

}  // namespace kiln

// Propagates a failed status/result from the enclosing function.
#define KILN_TRY(expr)                              \
  do {                                              \
    auto kiln_try_status_ = (expr);                 \
    if (!kiln_try_status_.ok()) return kiln_try_status_.err(); \
  } while (0)
