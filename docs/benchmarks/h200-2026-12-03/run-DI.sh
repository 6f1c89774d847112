#!/usr/bin/env bash
# DI on the H200 machine: the final tree: lists at 2^25 with a small heap once more (the map on
# CUDA was on its 1.3x bound in DC and DD), and the kept / dropped rows (6 calls on one binary).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DI.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
timeout 240 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
ebin=$(ls -d elixir/_build/prod/lib/kiln/ebin)
timeout 150 elixir -pa "$ebin" bench/lists_split.exs 33554432 0 5 > "$out/lists_split.log" 2>&1
cat "$out/lists_split.log"
timeout 120 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out "$out/kept" > "$out/kept.log" 2>&1
grep -E "^\[bench\] elixir\.(kept|dropped)" "$out/kept.log"
