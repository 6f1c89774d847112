#!/usr/bin/env bash
# DE on the H200 machine: the ExUnit suites that take list results through the NIF's new paths
# (lists encoded in place, a kernel's list result in its input's copy, lists with their length),
# with CUDA and OpenCL (NVIDIA) present.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DE.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
cd elixir
MIX_ENV=test timeout 300 mix compile > "$out/mix-compile.log" 2>&1 || { tail -30 "$out/mix-compile.log"; exit 1; }
timeout 280 mix test test/api_test.exs test/errors_test.exs test/logistic_map_test.exs test/kernel_test.exs \
  test/kernel_language_test.exs test/kernel_buffer_test.exs > "$out/exunit.log" 2>&1
grep -E "tests,|failure|skipping|^\[ " "$out/exunit.log" | head -20
