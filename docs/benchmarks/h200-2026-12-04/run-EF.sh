#!/usr/bin/env bash
# EF on the H200 machine: kept results back to back from a pinned input (a direct run's input)
# into allocate_output blocks (pages mapped by the lanes) against touched ones, with dropped calls
# beside them; and `kiln run` from pageable memory on the tree and the tree before the change
# (base.tar), alternately, to see what whole-page lane ranges do to an ordinary staged run.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-EF.sh OUT BASE_TAR
out=$1
base_tar=$2
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; cat tree.txt >> "$out/device.txt" 2>/dev/null
rm -rf /tmp/base && mkdir -p /tmp/base && tar -xf "$base_tar" -C /tmp/base
{ cmake -S /tmp/base -B /tmp/base/build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 &&
  cmake --build /tmp/base/build -j6 --target kiln kiln_kept_calls; } > "$out/build-base.log" 2>&1 &
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j10 --target kiln kiln_kept_calls; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
wait
kc() { timeout 30 "$@"; }
{
  for round in 1 2; do
    echo "== round $round: pinned input, output"; kc build/kiln_kept_calls cuda 33554432 8 0 1 output pinned
    echo "== round $round: pinned input, touched"; kc build/kiln_kept_calls cuda 33554432 8 0 1 touched pinned
  done
  echo "== pinned input, dropped"; kc build/kiln_kept_calls cuda 33554432 8 0 0 output pinned
} > "$out/kept_calls.log" 2>&1
cat "$out/kept_calls.log"
{
  for round in 1 2 3; do
    for t in build /tmp/base/build; do
      for k in 10 100; do echo "== $t k = $k"; timeout 60 $t/kiln run -b cuda --n 33554432 --repeat 9 --iterations $k; done
    done
  done
} > "$out/kiln_run.log" 2>&1
grep -E "^==|median" "$out/kiln_run.log"
