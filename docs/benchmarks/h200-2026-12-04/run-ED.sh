#!/usr/bin/env bash
# ED on the H200 machine: the final tree's kept, paced and dropped rows from Elixir once (each
# sequence row now starting from a pool without blocks of its size).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-ED.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; git log --oneline -1 >> "$out/device.txt"
timeout 170 bench/run --n 33554432 --rows 'elixir\.(kept|dropped|paced)\.' --out /tmp/kept > "$out/kept.log" 2>&1
grep -A8 "^| row | call 1" /tmp/kept/results.md
