#!/usr/bin/env bash
# DR on the H200 machine: the square form's single-precision lanes (kiln_pipe_mix's float shapes,
# kiln_kernel_limits, `kiln run` with KILN_FLOAT_LANES on and off) and kept results with fresh host
# blocks first touched on every worker (core/host_memory.cpp).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DR.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 90 build/kiln_pipe_mix > "$out/pipe_mix.log" 2>&1; grep -E "square k = 1000|alone|together" "$out/pipe_mix.log"
timeout 120 build/kiln_kernel_limits > "$out/limits.log" 2>&1; grep -E "^map k = (10|100|1000) .*(square|backend)|FP64 fused|copy" "$out/limits.log"
{
  for fl in 1 0; do
    for k in 100 1000; do
      echo "[cuda k=$k resident KILN_FLOAT_LANES=$fl]"; KILN_FLOAT_LANES=$fl timeout 60 build/kiln run -b cuda --n 33554432 -k $k --resident --repeat 9 | grep -E "time|checksum"
    done
    echo "[cuda k=1000 end to end KILN_FLOAT_LANES=$fl]"; KILN_FLOAT_LANES=$fl timeout 60 build/kiln run -b cuda --n 33554432 -k 1000 --repeat 5 | grep -E "time|checksum"
  done
} > "$out/backends.log" 2>&1
cat "$out/backends.log"
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
for i in 1 2; do
  timeout 120 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out /tmp/kept$i > "$out/kept$i.log" 2>&1
  grep -E "^\[bench\] elixir\.(kept|dropped)" "$out/kept$i.log"; grep -A6 "^| row | call 1" /tmp/kept$i/results.md
done
timeout 170 ctest --test-dir build -j8 -R "ModMath|Settings|HostPool|Cuda|Conformance" --timeout 150 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
