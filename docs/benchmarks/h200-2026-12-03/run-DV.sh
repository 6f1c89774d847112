#!/usr/bin/env bash
# DV on the H200 machine: the final tree (the first touch's worker pool built first, its fallback):
# the host-pool and CUDA suites, and kept results against dropped ones once.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DV.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
timeout 120 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out /tmp/kept > "$out/kept.log" 2>&1
grep -E "^\[bench\] elixir\.(kept|dropped)" "$out/kept.log"; grep -A6 "^| row | call 1" /tmp/kept/results.md
timeout 120 ctest --test-dir build -j8 -R "HostPool|HostMemory|Cuda|Conformance" --timeout 100 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
