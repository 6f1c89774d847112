#!/usr/bin/env bash
# DG on the H200 machine: DF's tree with the centred mu passed as a kernel parameter (read from
# the parameter bank in the loop instead of a register): kiln_kernel_limits and `kiln run --resident`.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DG.sh OUT
out=$1
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16 --target kiln kiln_kernel_limits; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
build/kiln_kernel_limits > "$out/limits.log" 2>&1; grep -E "wave|^map k = (10|100|1000) " "$out/limits.log"
{
  for k in 10 100 1000; do
    echo "[cuda k=$k resident]"; timeout 60 build/kiln run -b cuda --n 33554432 -k $k --resident --repeat 9 | grep -E "time|checksum"
  done
} > "$out/backends.log" 2>&1
cat "$out/backends.log"
