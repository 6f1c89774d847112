#!/usr/bin/env bash
# DP on the H200 machine (DO's tree): kept results with the workers at the default niceness (19)
# and at the caller's (KILN_WORKER_NICE=0), alternately.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DP.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
for nice in 19 0 19 0; do
  echo "[KILN_WORKER_NICE=$nice]"
  KILN_WORKER_NICE=$nice timeout 120 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out /tmp/kept$nice > "$out/kept-nice$nice.log" 2>&1
  grep -A6 "^| row | call 1" /tmp/kept$nice/results.md
done
