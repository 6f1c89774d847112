#!/usr/bin/env bash
# DJ on the H200 machine: core/modmath.h's square form (v' = v^2 + e, 4 operations a step, its
# Montgomery step 3 multiply-adds) in the map kernels beyond 16 iterations. kiln_kernel_limits
# times every shape in both forms; `kiln run` resident and end to end on cuda, opencl and cpu at
# k = 10, 100, 1000 with the form and without it (KILN_SQUARE_FORM=0); auto against each fixed
# choice where the kernel got faster.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DJ.sh OUT
out=$1
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
build/kiln_kernel_limits > "$out/limits.log" 2>&1; grep -E "^map k = (10|100|1000) |FP64 fused|integer|copy|wave" "$out/limits.log"
{
  for form in 1 0; do
    for k in 10 100 1000; do
      for b in cuda opencl; do
        echo "[$b k=$k resident square=$form]"; KILN_SQUARE_FORM=$form timeout 60 build/kiln run -b $b --n 33554432 -k $k --resident --repeat 9 | grep -E "time|checksum"
      done
    done
    for b in cuda opencl cpu; do
      echo "[$b k=1000 end to end square=$form]"; KILN_SQUARE_FORM=$form timeout 60 build/kiln run -b $b --n 33554432 -k 1000 --repeat 5 | grep -E "time|checksum"
    done
  done
} > "$out/backends.log" 2>&1
cat "$out/backends.log"
{
  for nk in "1048576 100" "1048576 1000" "33554432 100" "33554432 1000"; do
    set -- $nk
    for cfg in "-b auto" "-b cuda" "-b cuda --gpu-only" "-b cpu"; do
      echo "[n=$1 k=$2 $cfg]"; timeout 90 build/kiln run $cfg --n $1 -k $2 --repeat 5 | grep -E "^(backend|time)"
    done
  done
} > "$out/auto.log" 2>&1
cat "$out/auto.log"
