// The `kiln` subcommands, separated from argument parsing so each is a plain function.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace kiln::cli {

// The largest --n (and --chunk: no chunk needs to exceed the largest array): two arrays of 2^34
// int64 already take 256 GiB.
inline constexpr std::int64_t max_elements = std::int64_t{1} << 34;

// `kiln run` as the command line gave it. Numbers stay text (nullopt: not given) so that run()
// parses each exactly, refusing what is not a decimal integer or lies outside the option's domain,
// where a conversion to the field's type would clamp or wrap it.
struct run_request {
  std::string backend = "auto";
  std::optional<std::string> device;  // an index or "all"; not given: device 0 (auto: its own choice)
  std::optional<std::string> n, first, iterations, p, mu, chunk, repeat, warmup;
  bool resident = false;
  bool pinned = false;
  bool phases = false;
  bool gpu_only = false;  // run_options::host_share off
  bool json = false;
};

// Each returns the process exit code: 0 success, 1 runtime failure, 2 bad arguments (then
// nothing has run).
int devices(bool json);
int run(const run_request& request);

}  // namespace kiln::cli
