#!/usr/bin/env bash
# DM on the H200 machine: the final tree's CUDA suites; auto at DL's misses with more repeats;
# kept results with huge pages for fresh host blocks and without (KILN_HUGE_PAGES=0), with the
# kernel's THP counters around each; then the benchmark's main table at 2^25.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DM.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 200 ctest --test-dir build -j8 -R "FeedLane|SharePacing|MapJob|DeviceMemory|Cuda|Conformance" --timeout 150 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
{
  for nk in "1024 10" "1024 100" "65536 10" "1048576 1000"; do
    set -- $nk
    for round in 1 2; do
      for cfg in "-b auto" "-b cuda" "-b cuda --gpu-only" "-b cpu"; do
        t=$(timeout 90 build/kiln run $cfg --n $1 -k $2 --repeat 41 --warmup 5 | awk '/^time/ {print $2}')
        echo "n=$1 k=$2 round $round $cfg: $t s"
      done
    done
  done
} > "$out/auto.log" 2>&1
cat "$out/auto.log"
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
thp() { grep -E "^(thp_fault_alloc|thp_fault_fallback|compact_stall|compact_fail|compact_success) " /proc/vmstat | tr '\n' ' '; echo; }
{
  cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag
  for hp in 1 0 1 0; do
    echo "[KILN_HUGE_PAGES=$hp] before: $(thp)"
    KILN_HUGE_PAGES=$hp timeout 120 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out "$out/kept$hp" | grep -E "^\[bench\] elixir\.(kept|dropped)"
    echo "[KILN_HUGE_PAGES=$hp] after: $(thp)"
  done
} > "$out/kept.log" 2>&1
cat "$out/kept.log"
