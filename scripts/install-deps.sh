#!/usr/bin/env bash
# Installs, through apt-get, the Debian packages that building, testing and benchmarking Kiln need (only the missing ones).
#   usage: scripts/install-deps.sh        (KILN_SKIP_APT=1 skips it, e.g. where packages come another way)
set -euo pipefail
[[ "${KILN_SKIP_APT:-0}" == 1 ]] && exit 0

packages=(
  g++ cmake make pkg-config                          # toolchain
  libgtest-dev googletest                            # C++ tests
  libcli11-dev nlohmann-json3-dev                    # the kiln command
  libhwy-dev                                         # run-time SIMD dispatch (cpu backend)
  ocl-icd-opencl-dev opencl-headers opencl-clhpp-headers pocl-opencl-icd clinfo  # OpenCL, PoCL on the CPU
  elixir erlang-dev erlang-tools                     # the Elixir front end and its NIF
  python3 python3-numpy                              # benchmark driver and the NumPy row
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "install-deps: missing ${missing[*]}, and there is no apt-get here; install them by hand" >&2
  exit 1
fi
sudo=()
[[ $(id -u) -ne 0 ]] && sudo=(sudo)
echo "install-deps: apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
