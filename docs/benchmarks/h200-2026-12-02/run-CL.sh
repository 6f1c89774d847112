#!/usr/bin/env bash
# CL on the H200 machine: where a first CUDA job's time goes, what fresh result memory costs to touch, which threads run beside the ticker on OpenCL, and the price of nice 19.
out=$1
here=docs/benchmarks/h200-2026-12-02
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
timeout 240 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
{
  cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag
  g++ -O2 -std=c++20 -pthread $here/CL/fresh_memory.cpp -o /tmp/fresh_memory && timeout 60 /tmp/fresh_memory
} > "$out/fresh_memory.log" 2>&1
{
  nvcc -std=c++17 -O2 -arch=sm_90 $here/CL/cuda_first_job.cu -o /tmp/cuda_first_job && for i in 1 2; do timeout 30 /tmp/cuda_first_job; done
} > "$out/cuda_first_job.log" 2>&1
ebin=$(ls -d elixir/_build/*/lib/kiln/ebin | head -1)
export KILN_CACHE_DIR=$(mktemp -d)
{
  elixir -pa "$ebin" $here/cold_start.exs
  for v in "" "KILN_STAGING_LANES=2" "CUDA_MODULE_LOADING=EAGER" "KILN_ZERO_COPY=0"; do
    for i in 1 2; do echo "[$v]"; env $v elixir -pa "$ebin" $here/cold_start.exs; done
  done
} > "$out/cold_start.log" 2>&1
probe=elixir/test/support/responsiveness_probe.exs
for m in opencl cuda cpu; do
  for i in 1 2 3; do echo "[$m]"; KILN_PROBE_THREADS=1 timeout 60 elixir -pa "$ebin" $probe $m; done
done > "$out/threads.log" 2>&1
rows='elixir\.dropped\.'
timeout 100 bench/run --no-build --n 33554432 --rows "$rows" --out "$out/nice19" > "$out/nice19.log" 2>&1
KILN_WORKER_NICE=0 timeout 100 bench/run --no-build --n 33554432 --rows "$rows" --out "$out/nice0" > "$out/nice0.log" 2>&1
grep -h "\[bench\] elixir" "$out/nice19.log" "$out/nice0.log"
cat "$out/fresh_memory.log" "$out/cuda_first_job.log" "$out/cold_start.log"
grep -h "ticks=\|^\[" "$out/threads.log" | grep -v "^thread" | head -40
cd "$out" && tar czf CL.tar.gz --remove-files bench-build.log fresh_memory.log cuda_first_job.log cold_start.log threads.log nice19.log nice0.log nice19 nice0
