#!/usr/bin/env bash
# EG on the H200 machine: the final tree (the spares of stop 30, allocate_output reverted). Kept
# calls from C++ back to back, 20 ms apart and dropped, from an ordinary and from a pinned input;
# the Elixir kept, paced and dropped rows twice.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-EG.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; cat tree.txt >> "$out/device.txt" 2>/dev/null
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16 --target kiln kiln_kept_calls; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
{
  for input in ordinary pinned; do
    for run in "0 1" "20 1" "0 0"; do
      set -- $run; echo "== $input input, pause $1, keep $2"; timeout 30 build/kiln_kept_calls cuda 33554432 8 $1 $2 $input
    done
  done
} > "$out/kept_calls.log" 2>&1
cat "$out/kept_calls.log"
for i in 1 2; do
  timeout 200 bench/run --n 33554432 --rows 'elixir\.(kept|dropped|paced)\.' --out /tmp/kept$i > "$out/kept$i.log" 2>&1
  cp /tmp/kept$i/results.md "$out/kept$i-results.md" 2>/dev/null
  echo "== run $i"; grep -A8 "^| row | call 1" /tmp/kept$i/results.md
done
