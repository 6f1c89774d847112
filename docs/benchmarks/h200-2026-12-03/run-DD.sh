#!/usr/bin/env bash
# DD on the H200 machine: the tree after DC and the review (lists cross with their length and are
# walked once; the usual options read in order): lists at 2^25 with a small and a large heap
# (bench/lists_split.exs), small calls from Elixir again (the crossover).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DD.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
ebin=$(ls -d elixir/_build/prod/lib/kiln/ebin)
for args in "33554432 0 5" "33554432 16777216 5"; do
  timeout 220 elixir -pa "$ebin" bench/lists_split.exs $args
done > "$out/lists_split.log" 2>&1
cat "$out/lists_split.log"
timeout 120 bench/run --no-build --crossover --crossover-n 1,2,4,8,16,64,256,1024 --out "$out/crossover" > "$out/crossover.log" 2>&1
sed -n '/| n |/,/^$/p' "$out/crossover.log" | head -14
