#!/usr/bin/env bash
# ED on the H200 machine: results kept back to back into blocks from host_memory::allocate_output
# (fresh pages mapped by the CUDA lanes' own writes, whole 2 MiB pages a lane) against blocks
# mapped before the call (`touched`; and the tree before the change, from base.tar), the same with
# the drains' stores cached instead of non-temporal (ED-drain-cached.diff, not in the tree), ordinary
# staged runs (`kiln run`) on each tree, and the suites touched (part 1); the Elixir kept, paced and
# dropped rows (part 2).
#   usage (project root, GPU machine, after source .device/setup.sh):
#     docs/benchmarks/h200-2026-12-04/run-ED.sh OUT 1 [BASE_TAR]   or   ... OUT 2
out=$1
part=${2:-1}
base_tar=${3:-}
here=docs/benchmarks/h200-2026-12-04
export KILN_SKIP_APT=1
if [ "$part" = 2 ]; then
  export KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
  timeout 280 bench/run --n 33554432 --rows 'elixir\.(kept|dropped|paced)\.' --out /tmp/kept > "$out/kept.log" 2>&1
  cp /tmp/kept/results.md "$out/kept-results.md" 2>/dev/null
  grep -A8 "^| row | call 1" /tmp/kept/results.md
  exit 0
fi
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; cat tree.txt >> "$out/device.txt" 2>/dev/null
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
# The other two trees, built side by side: the one before the change and the cached drains.
rm -rf /tmp/base /tmp/alt && mkdir -p /tmp/base /tmp/alt
[ -n "$base_tar" ] && tar -xf "$base_tar" -C /tmp/base
tar --exclude=./build --exclude=./.device --exclude=./elixir/_build -cf - . | tar -xf - -C /tmp/alt
(cd /tmp/alt && patch -p1 < $here/ED-drain-cached.diff) > "$out/build-alt.log" 2>&1
for t in /tmp/base /tmp/alt; do
  [ -f $t/CMakeLists.txt ] || continue
  { cmake -S $t -B $t/build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 &&
    cmake --build $t/build -j8 --target kiln kiln_kept_calls; } >> "$out/build-$(basename $t).log" 2>&1 &
done
wait
kc() { timeout 30 "$@"; }
{
  for round in 1 2; do
    echo "== round $round: tree"; kc build/kiln_kept_calls cuda 33554432 8 0 1 output
    echo "== round $round: tree, touched"; kc build/kiln_kept_calls cuda 33554432 8 0 1 touched
    echo "== round $round: cached drains"; kc /tmp/alt/build/kiln_kept_calls cuda 33554432 8 0 1 output
    echo "== round $round: base tree"; kc /tmp/base/build/kiln_kept_calls cuda 33554432 8 0 1
  done
  echo "== tree, 20 ms"; kc build/kiln_kept_calls cuda 33554432 8 20 1 output
  echo "== tree, dropped"; kc build/kiln_kept_calls cuda 33554432 8 0 0 output
  echo "== tree, cpu"; kc build/kiln_kept_calls cpu 33554432 8 0 1 output
  echo "== tree, cpu, touched"; kc build/kiln_kept_calls cpu 33554432 8 0 1 touched
} > "$out/kept_calls.log" 2>&1
cat "$out/kept_calls.log"
{
  for t in build /tmp/base/build /tmp/alt/build; do
    [ -x $t/kiln ] || continue
    for k in 10 1000; do echo "== $t k = $k"; timeout 60 $t/kiln run -b cuda --n 33554432 --repeat 9 --iterations $k; done
  done
} > "$out/kiln_run.log" 2>&1
grep -E "^==|median" "$out/kiln_run.log" | head -24
timeout 170 ctest --test-dir build -j8 -R "HostPool|HostMemory|Settings|Cuda|Conformance|Run\.|FeedLane|LaneShare" --timeout 120 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
