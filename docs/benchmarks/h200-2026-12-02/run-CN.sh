#!/usr/bin/env bash
# CN on the H200 machine: where a process's first CUDA job spends its time (the engine traced by CN/first_job_trace.patch, a build of its own), and the responsiveness probe's repeated runs.
out=$1
here=docs/benchmarks/h200-2026-12-02
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
timeout 200 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
mkdir -p /tmp/trace && cp -r CMakeLists.txt cmake include src bench /tmp/trace/ && (cd /tmp/trace && patch -p1 < "$OLDPWD/$here/CN/first_job_trace.patch") > "$out/trace-build.log" 2>&1
(cd /tmp/trace && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_NIF=OFF && cmake --build build -j16 --target kiln) >> "$out/trace-build.log" 2>&1 || tail -20 "$out/trace-build.log"
{
  for n in 1 65536 1048576; do
    for i in 1 2; do echo "[n=$n]"; KILN_TRACE_FIRST=1 /tmp/trace/build/kiln run -b cuda --n $n --warmup 0 --repeat 2 2>&1 | grep -E "trace|time"; done
  done
  echo "[n=1048576 gpu only]"; KILN_TRACE_FIRST=1 /tmp/trace/build/kiln run -b cuda --n 1048576 --warmup 0 --repeat 1 --gpu-only 2>&1 | grep -E "trace|time"
  echo "[n=1048576 pinned]"; KILN_TRACE_FIRST=1 /tmp/trace/build/kiln run -b cuda --n 1048576 --warmup 0 --repeat 1 --pinned 2>&1 | grep -E "trace|time"
} > "$out/first_job.log" 2>&1
ebin=$(ls -d elixir/_build/*/lib/kiln/ebin | head -1)
probe=elixir/test/support/responsiveness_probe.exs
for m in opencl cuda cpu jobs16; do for i in 1 2 3; do echo "[$m]"; timeout 60 elixir -pa "$ebin" $probe $m; done; done > "$out/probe.log" 2>&1
cat "$out/first_job.log"
grep -E "ticks=|^\[" "$out/probe.log"
cd "$out" && tar czf CN.tar.gz --remove-files bench-build.log trace-build.log first_job.log probe.log
