// Reads the engine's switches from the environment once (core/settings.hpp says what each is for).
#include "core/settings.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace kiln::detail {
namespace {

// A feature switch: on unless the variable is exactly "0" (so a typo never turns a feature off).
bool switch_on(const char* value) { return !(value && value[0] == '0' && value[1] == '\0'); }

// A non-negative decimal integer, or nothing for anything else (so a typo keeps the default).
bool read_count(const char* value, unsigned long long& out) {
  if (!value || value[0] < '0' || value[0] > '9') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long x = std::strtoull(value, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = x;
  return true;
}

}  // namespace

settings read_settings(const std::function<const char*(const char*)>& lookup) {
  settings s;
  s.narrow_transfers = switch_on(lookup("KILN_NARROW_TRANSFERS"));
  s.zero_copy = switch_on(lookup("KILN_ZERO_COPY"));
  s.square_form = switch_on(lookup("KILN_SQUARE_FORM"));
  s.huge_pages = switch_on(lookup("KILN_HUGE_PAGES"));
  s.spare_blocks = switch_on(lookup("KILN_SPARE_BLOCKS"));
  if (const char* v = lookup("KILN_OPENCL_PIPELINE")) {
    if (std::strcmp(v, "driven") == 0) s.opencl_pipeline = opencl_pipeline_mode::driven;
    if (std::strcmp(v, "lanes") == 0) s.opencl_pipeline = opencl_pipeline_mode::lanes;
  }
  if (const char* v = lookup("KILN_STAGING_LANES")) {
    const long lanes = std::atol(v);
    if (lanes >= 1 && lanes <= 64) s.staging_lanes = static_cast<std::size_t>(lanes);
  }
  if (const char* v = lookup("KILN_WORKER_NICE")) s.worker_nice = std::atoi(v);
  if (const char* v = lookup("KILN_OPENCL_LIBRARY")) s.opencl_library = v;
  if (unsigned long long ms = 0; read_count(lookup("KILN_DEVICE_POOL_IDLE_MS"), ms))
    s.device_pool_idle = std::chrono::milliseconds(std::min(ms, 1ull << 31));
  return s;
}

const settings& current_settings() {
  static const settings s = read_settings([](const char* name) -> const char* { return std::getenv(name); });
  return s;
}

}  // namespace kiln::detail
