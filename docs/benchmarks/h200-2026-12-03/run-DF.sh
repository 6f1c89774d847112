#!/usr/bin/env bash
# DF on the H200 machine: the pairs kernel in one wave of resident blocks for runs bound by the
# arithmetic (iterations >= 17). kiln_kernel_limits times the old grid ("pairs, 3 loads a
# thread, mixed") beside the new ("as the backend launches it"); `kiln run --resident` and the
# CUDA and conformance suites check and time the backend itself.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DF.sh OUT
out=$1
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
build/kiln_kernel_limits > "$out/limits.log" 2>&1; grep -E "wave|^map k = (100|1000) |FP64 fused|integer" "$out/limits.log"
{
  for k in 10 100 1000; do
    echo "[cuda k=$k resident]"; timeout 60 build/kiln run -b cuda --n 33554432 -k $k --resident --repeat 9 | grep -E "time|checksum"
  done
} > "$out/backends.log" 2>&1
cat "$out/backends.log"
timeout 240 ctest --test-dir build -j8 -R "DeviceMemory|Cuda|Conformance|MapJob" --timeout 200 > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
