#!/usr/bin/env bash
# DN on the H200 machine (DM's lease and build): kept results with the pool's background pinning
# on (the default) and off (KILN_PINNED_LIMIT=0), twice each, with the THP counters.
#   usage (project root, GPU machine, after source .device/setup.sh and run-DM.sh): docs/benchmarks/h200-2026-12-03/run-DN.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
for lim in default 0 default 0; do
  env=""; [ $lim = 0 ] && env="KILN_PINNED_LIMIT=0"
  echo "[pinned limit $lim]"
  env $env timeout 120 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out /tmp/kept-$lim > "$out/kept-$lim.log" 2>&1
  grep -E "^\[bench\] elixir\.(kept|dropped)" "$out/kept-$lim.log"
  grep -A6 "^| row | call 1" /tmp/kept-$lim/results.md
done
