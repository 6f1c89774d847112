#!/usr/bin/env bash
# DL on the H200 machine: auto against each fixed choice over n = 2^10..2^28 and k = 1..1000 (CY's
# sweep, with 2^28 at every k) after the square form and the paced host pieces; paced against
# whole pieces (KILN_EXPERIMENT_WHOLE_PIECES=1, this tree only) where the device bounds a shared run.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DL.sh OUT
out=$1
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
{
  for n in 1024 65536 1048576 33554432 268435456; do
    for k in 1 10 100 1000; do
      for cfg in "-b auto" "-b cuda" "-b cuda --gpu-only" "-b cpu"; do
        r=$(timeout 90 build/kiln run $cfg --n $n -k $k --repeat 5)
        t=$(echo "$r" | awk '/^time/ {print $2}'); h=$(echo "$r" | awk '/^host/ {print $3, $8}')
        echo "n=$n k=$k $cfg: $t s${h:+ host $h}"
      done
    done
  done
} > "$out/auto.log" 2>&1
cat "$out/auto.log"
{
  for nk in "268435456 1000" "268435456 300" "67108864 300"; do
    set -- $nk
    for label in paced whole paced whole; do
      env=""; [ $label = whole ] && env="KILN_EXPERIMENT_WHOLE_PIECES=1"
      r=$(env $env timeout 90 build/kiln run -b cuda --n $1 -k $2 --repeat 5)
      echo "n=$1 k=$2 $label: $(echo "$r" | awk '/^time/ {print $2}') s, host $(echo "$r" | awk '/^host/ {print $3, $8}')"
    done
    echo "n=$1 k=$2 device: $(timeout 90 build/kiln run -b cuda --gpu-only --n $1 -k $2 --repeat 5 | awk '/^time/ {print $2}') s"
  done
} > "$out/pacing.log" 2>&1
cat "$out/pacing.log"
