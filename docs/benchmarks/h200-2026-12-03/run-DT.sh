#!/usr/bin/env bash
# DT on the H200 machine, the second call on the final tree (after run-DS.sh, same lease): kept
# results against dropped ones twice, the same for CuPy and torch (kept_peers.py), and small calls
# against pure Elixir (the crossover).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DT.sh OUT
out=$1
here=docs/benchmarks/h200-2026-12-03
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
for i in 1 2; do
  timeout 120 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out /tmp/kept$i > "$out/kept$i.log" 2>&1
  grep -E "^\[bench\] elixir\.(kept|dropped)" "$out/kept$i.log"; grep -A6 "^| row | call 1" /tmp/kept$i/results.md
done
timeout 120 python3 $here/kept_peers.py > "$out/kept_peers.log" 2>&1; cat "$out/kept_peers.log"
timeout 150 bench/run --no-build --crossover --crossover-n 1,2,4,16,256,4096,65536 --out /tmp/crossover > "$out/crossover.log" 2>&1
sed -n '/| n |/,/^$/p' "$out/crossover.log" | head -14
