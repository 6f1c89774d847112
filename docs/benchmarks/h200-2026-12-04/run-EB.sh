#!/usr/bin/env bash
# EB on the H200 machine: back-to-back kept CUDA calls (kiln_kept_calls, pause 0) under temporary
# switches of the spares' machinery (EB/switches.diff on top of 8adff89, not in the tree): no wake
# at a run's end, slower polls, no renewal of a request not begun, no background pins; calls 3-8
# as alloc_ms/total_ms, every variant twice.
#   usage (project root with EB/switches.diff applied, GPU machine, after source .device/setup.sh,
#   OUT set): bash docs/benchmarks/h200-2026-12-04/run-EB.sh
export KILN_SKIP_APT=1
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16 --target kiln_kept_calls; } > $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
for rep in 1 2; do
for v in "KILN_SPARE_BLOCKS=0" "KILN_SPARE_BLOCKS=1" "KILN_X_NOWAKE=1" "KILN_X_POLL=100" "KILN_X_NOWAKE=1 KILN_X_POLL=1000" "KILN_X_NORENEW=1" "KILN_PINNED_LIMIT=0" "KILN_SPARE_BLOCKS=0 KILN_PINNED_LIMIT=0"; do
  echo "== $v"; env $v timeout 30 build/kiln_kept_calls cuda 33554432 8 0 1 | awk 'NR>2 && $1>=3 {printf "%s/%s ", $2, $4} END {print ""}'
done
done 2>&1 | tee $OUT/x.log
