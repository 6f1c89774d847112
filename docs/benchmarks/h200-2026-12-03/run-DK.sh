#!/usr/bin/env bash
# DK on the H200 machine: the staged lanes' paced host pieces (core/lanes.hpp share_pacing: a
# lane computes only what fits before its oldest chunk completes) against whole pieces (the old
# rule, KILN_EXPERIMENT_WHOLE_PIECES=1 in this tree only), the device alone and cpu, at the
# points where sharing cost time in DJ; then the CUDA, conformance and lanes suites.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DK.sh OUT
out=$1
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
{
  for nk in "33554432 10" "33554432 100" "33554432 1000" "268435456 10" "268435456 100" "4194304 100" "1048576 10"; do
    set -- $nk
    for cfg in "paced|-b cuda" "whole|-b cuda" "device|-b cuda --gpu-only" "cpu|-b cpu"; do
      label=${cfg%%|*}; args=${cfg#*|}
      env=""; [ "$label" = whole ] && env="KILN_EXPERIMENT_WHOLE_PIECES=1"
      echo "[n=$1 k=$2 $label: $args]"; env $env timeout 90 build/kiln run $args --n $1 -k $2 --repeat 9 | grep -E "^(time|host)"
    done
  done
} > "$out/share.log" 2>&1
cat "$out/share.log"
timeout 300 ctest --test-dir build -j8 -R "ModMath|Settings|FeedLane|SharePacing|DrivenPipeline|MapJob|DeviceMemory|Cuda|Conformance" --timeout 250 > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
