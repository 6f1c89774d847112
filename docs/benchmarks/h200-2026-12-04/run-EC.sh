#!/usr/bin/env bash
# EC on the H200 machine: the final tree after the review's fixes. kiln_kept_calls for cuda (back
# to back, 5 and 20 ms between calls) and cpu (5 ms), then the host-pool, settings, CUDA and
# conformance suites.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-EC.sh OUT
out=$1
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; git log --oneline -1 >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
{
  for run in "cuda 0" "cuda 5" "cuda 20" "cpu 5"; do
    set -- $run; timeout 30 build/kiln_kept_calls $1 33554432 8 $2 1
  done
} > "$out/kept_calls.log" 2>&1
cat "$out/kept_calls.log"
timeout 150 ctest --test-dir build -j8 -R "HostPool|HostMemory|Settings|Cuda|Conformance" --timeout 100 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
