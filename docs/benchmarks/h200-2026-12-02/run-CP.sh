#!/usr/bin/env bash
# CP on the H200 machine: the map's kernel in pairs against its floors, kernels into buffers in place, the CUDA suites.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-02/run-CP.sh OUT
out=$1
here=docs/benchmarks/h200-2026-12-02
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; git log -1 --format=%h >> "$out/device.txt" 2>/dev/null
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
(timeout 200 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || tail -20 "$out/bench-build.log") &
timeout 150 ctest --test-dir build -j8 -R "DeviceMemory|Cuda|Conformance" --timeout 100 > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*" "$out/ctest.log" | head -20
build/kiln_kernel_limits > "$out/limits.log" 2>&1; cat "$out/limits.log"
{
  for k in 10 100 1000; do
    for b in cuda opencl; do
      echo "[$b k=$k resident]"; timeout 60 build/kiln run -b $b --n 33554432 -k $k --resident --repeat 9 | grep -E "time|checksum"
    done
  done
  echo "[cuda k=10 end to end]"; timeout 60 build/kiln run -b cuda --n 33554432 --repeat 9 | grep -E "time|checksum"
} > "$out/backends.log" 2>&1
cat "$out/backends.log"
wait
(cd elixir && MIX_ENV=prod timeout 200 mix run ../$here/kernel_rows_into.exs 33554432 cuda opencl) > "$out/kernel_into.log" 2>&1
cat "$out/kernel_into.log" | tail -8
cd "$out" && tar czf CP.tar.gz --remove-files build.log ctest.log bench-build.log limits.log backends.log kernel_into.log
