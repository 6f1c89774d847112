#!/usr/bin/env bash
# DH on the H200 machine: kiln_kernel_limits with one-wave grids for the mixed pairs kernels of
# 1, 2 and 3 pairs a thread beside their covering grids (DF's tree otherwise).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DH.sh OUT
out=$1
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16 --target kiln_kernel_limits; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
for i in 1 2; do build/kiln_kernel_limits; done > "$out/limits.log" 2>&1; grep -E "^map k = (100|1000) .*mixed|launches" "$out/limits.log"
