#!/usr/bin/env bash
# EH (and EI, on the tree after the review) on the H200 machine: runs over several devices cut into slices of the one GPU (CUDA, and
# NVIDIA's OpenCL for resident runs counting from their slice's place): the CUDA, OpenCL, kernel
# and conformance suites, and compute-sanitizer's memcheck over the slices' and all devices' tests.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-EH.sh OUT
out=$1
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; cat tree.txt >> "$out/device.txt" 2>/dev/null
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 300 ctest --test-dir build -j8 -R "Cuda|OpenCL|Conformance|Kernel|Run\.|Gpu" --timeout 200 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
grep -E "Slices" "$out/ctest.log" | head -5
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$sanitizer" ]; then
  timeout 200 "$sanitizer" --tool memcheck build/tests/kiln_cuda_tests --gtest_filter='*Slices*:*AllDevices*' > "$out/memcheck.log" 2>&1
  tail -5 "$out/memcheck.log"
else
  echo "no compute-sanitizer" | tee "$out/memcheck.log"
fi
