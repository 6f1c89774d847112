// Kiln's own definitions of the OpenCL 1.2 functions, each forwarding to the ICD loader opened with dlopen on first use.
#include "backends/opencl/opencl_library.hpp"

#include <dlfcn.h>

#include <string>
#include <type_traits>

#include "core/settings.hpp"

// cl.h's declarations, with those of 1.1 and 1.2 that later versions deprecate left undecorated:
// they are defined here, not called.
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#define CL_USE_DEPRECATED_OPENCL_1_1_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>

namespace kiln::detail {
namespace {

constexpr const char* debian_package = "ocl-icd-libopencl1";

// The library's entry points, typed from cl.h; all null unless every one was found.
struct opencl_api {
#define KILN_CL_FUNCTION(ret, name, params, args) decltype(&::name) name = nullptr;
#include "backends/opencl/opencl_functions.inc"
#undef KILN_CL_FUNCTION
  std::string failure;  // empty when the library is loaded
};

opencl_api load() {
  opencl_api r;
  const std::string& configured = current_settings().opencl_library;  // KILN_OPENCL_LIBRARY
  const bool from_env = !configured.empty();
  const std::string name = from_env ? configured : opencl_library_default;
  const std::string which = from_env ? "the OpenCL library " + name + " (KILN_OPENCL_LIBRARY)"
                                     : "OpenCL's ICD loader " + name;
  const std::string hint = std::string("install Debian's ") + debian_package +
                           ", and an ICD such as pocl-opencl-icd or a GPU vendor's driver";
  // RTLD_LOCAL: the library's symbols serve only the lookups below, never other code in the process.
  void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* why = dlerror();
    r.failure = which + " could not be loaded (" + hint + "): " + (why ? why : "unknown dlopen error");
    return r;
  }
  std::string missing;
  auto bind = [&](auto& fn, const char* symbol) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, symbol));
    if (!fn && missing.empty()) missing = symbol;
  };
#define KILN_CL_FUNCTION(ret, name, params, args) bind(r.name, #name);
#include "backends/opencl/opencl_functions.inc"
#undef KILN_CL_FUNCTION
  if (!missing.empty()) {
    // All or nothing: a partial table would fail at some later call instead of here, with the reason.
    dlclose(h);
    opencl_api none;
    none.failure = which + " lacks " + missing + ", an OpenCL 1.2 function: it is no ICD loader for OpenCL 1.2 (" +
                   hint + ")";
    return none;
  }
  return r;  // the library stays loaded for the life of the process
}

const opencl_api& library() {
  static const opencl_api a = load();
  return a;
}

// What a cl* function returns while the library is missing: CL_INVALID_OPERATION, or for a
// function returning a handle or pointer, null with that code in its errcode_ret (its last cl_int*
// parameter, where it has one). Only reached by calls made despite opencl_library_available().
template <class R, class... A>
R not_loaded([[maybe_unused]] A... args) {
  if constexpr (std::is_same_v<R, cl_int>) {
    return CL_INVALID_OPERATION;
  } else {
    static_assert(std::is_pointer_v<R>, "every OpenCL 1.2 function returns cl_int, a handle or a pointer");
    cl_int* errcode_ret = nullptr;
    auto take = [&](auto arg) {
      if constexpr (std::is_same_v<decltype(arg), cl_int*>) errcode_ret = arg;
    };
    (take(args), ...);
    if (errcode_ret) *errcode_ret = CL_INVALID_OPERATION;
    return nullptr;
  }
}

}  // namespace

status opencl_library_available() {
  const opencl_api& a = library();
  if (!a.failure.empty()) return make_error(errc::backend_unavailable, a.failure);
  return {};
}

}  // namespace kiln::detail

// Hidden: they serve Kiln's own calls (the backend's and opencl.hpp's) and are never exported, so
// that they cannot stand in for another library's OpenCL in the same process (the VM may load
// other NIFs that link libOpenCL), nor it for them.
#define KILN_CL_FUNCTION(ret, name, params, args)                                  \
  extern "C" __attribute__((visibility("hidden"))) ret CL_API_CALL name params { \
    const auto f = kiln::detail::library().name;                                   \
    return f ? f args : kiln::detail::not_loaded<ret> args;                        \
  }
#include "backends/opencl/opencl_functions.inc"
#undef KILN_CL_FUNCTION
