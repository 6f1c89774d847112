#!/usr/bin/env bash
# DC on the H200 machine: the tree after the small-call and list-encoding changes (lists encoded
# in place, a kernel's list result in its input's decoded copy, run/4's usual options checked in
# guards): small calls from Elixir (the crossover), then where a list call's time goes at 2^22
# and 2^25, with a small and a large heap (bench/lists_split.exs).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DC.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
ebin=$(ls -d elixir/_build/prod/lib/kiln/ebin)
timeout 120 bench/run --no-build --crossover --crossover-n 1,2,4,8,16,64,256,1024 --out "$out/crossover" > "$out/crossover.log" 2>&1
sed -n '/| n |/,/^$/p' "$out/crossover.log" | head -14
for args in "4194304 0 5" "4194304 16777216 5" "33554432 0 5" "33554432 16777216 3"; do
  timeout 200 elixir -pa "$ebin" bench/lists_split.exs $args
done > "$out/lists_split.log" 2>&1
cat "$out/lists_split.log"
