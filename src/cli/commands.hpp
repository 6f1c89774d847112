// The `kiln` subcommands, separated from argument parsing so each is a plain function.
#pragma once

#include <cstdint>
#include <string>

namespace kiln::cli {

struct run_args {
  std::string backend = "auto";
  int device = 0;
  std::int64_t n = 1 << 20;
  std::int64_t first = 1;  // the inputs are first .. first + n - 1
  std::int64_t iterations = 10;
  std::int64_t p = 6'700'417;
  std::int64_t mu = 22;
  std::size_t chunk = 0;
  int repeat = 3;
  int warmup = 1;
  bool resident = false;
  bool pinned = false;
  bool phases = false;
  bool gpu_only = false;  // run_options::host_share off
  bool json = false;
};

// Each returns the process exit code: 0 success, 1 runtime failure, 2 bad arguments.
int devices(bool json);
int run(const run_args& args);

}  // namespace kiln::cli
