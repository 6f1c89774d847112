#!/usr/bin/env bash
# The `kiln` command end to end: checksums agree across backends, JSON is well formed, bad input exits non-zero.
set -u
kiln=$1
failures=0
check() { # name, condition result
  if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
errfile=$(mktemp)
trap 'rm -f "$errfile"' EXIT
refused() { # name, message fragment, run's arguments: exit 2, the message on stderr, nothing on stdout
  local name=$1 fragment=$2 out rc
  shift 2
  out=$(timeout 120 "$kiln" run "$@" 2>"$errfile"); rc=$?  # a regression that runs must not hang the suite
  [ $rc -eq 2 ] && [ -z "$out" ] && grep -qF -- "$fragment" "$errfile"
  check "$name" $?
}

out=$("$kiln" run --backend scalar --n 3 --p 61 --mu 22 --repeat 1 --json)
[ "$(echo "$out" | field checksum)" = "90" ]; check "seed values 28+25+37 = 90" $?
for key in backend device n iterations p mu seconds checksum chunks host_elements host_share; do
  echo "$out" | python3 -c "import json,sys; sys.exit(0 if '$key' in json.load(sys.stdin) else 1)"; check "run --json has $key" $?
done

ref=$("$kiln" run --backend scalar --n 200000 --repeat 1 --warmup 0 --json | field checksum)
devices=$("$kiln" devices --json)
for b in cpu opencl cuda auto; do
  avail=$(echo "$devices" | python3 -c "import json,sys; print(any(d['available'] for d in json.load(sys.stdin) if d['backend']=='$b' or '$b'=='auto'))")
  if [ "$avail" != "True" ]; then echo "skip $b: unavailable"; continue; fi
  got=$("$kiln" run --backend "$b" --n 200000 --repeat 1 --json | field checksum)
  [ "$got" = "$ref" ]; check "$b checksum equals scalar ($ref)" $?
  got=$("$kiln" run --backend "$b" --n 200000 --repeat 1 --resident --json | field checksum)
  [ "$got" = "$ref" ]; check "$b --resident checksum equals scalar" $?
  # --gpu-only belongs to the GPU backends; auto is held to the backend it resolves to here.
  resolved=$("$kiln" run --backend "$b" --n 1 --repeat 1 --warmup 0 --json | field backend)
  if [ "$resolved" = opencl ] || [ "$resolved" = cuda ]; then
    out=$("$kiln" run --backend "$b" --n 200000 --repeat 1 --gpu-only --json)
    [ "$(echo "$out" | field checksum)" = "$ref" ] && [ "$(echo "$out" | field host_elements)" = "0.0" ] &&
      [ "$(echo "$out" | field host_share)" = "False" ]
    check "$b --gpu-only: same checksum, nothing computed by the host" $?
  else
    refused "$b ($resolved) refuses --gpu-only" "--gpu-only applies to GPU backends (opencl, cuda), not $resolved" \
      --backend "$b" --n 200000 --gpu-only
  fi
  [ "$b" = auto ] && continue
  usable=$(echo "$devices" | python3 -c "import json,sys; print(sum(d['available'] for d in json.load(sys.stdin) if d['backend']=='$b'))")
  out=$("$kiln" run --backend "$b" --device all --n 200000 --repeat 1 --json 2>&1); rc=$?
  if [ "$b" = opencl ] && [ "$usable" -gt 1 ]; then
    [ $rc -ne 0 ] && echo "$out" | grep -q "only the cuda backend spreads"
    check "$b --device all with $usable devices is refused" $?
  else
    [ $rc -eq 0 ] && [ "$(echo "$out" | field checksum)" = "$ref" ]
    check "$b --device all ($usable usable): checksum equals scalar" $?
    if [ "$usable" -gt 1 ]; then
      [ "$(echo "$out" | field device | grep -o ' + ' | wc -l)" -eq $((usable - 1)) ]
      check "$b --device all names its $usable devices" $?
    fi
  fi
done
# --first: inputs beyond 32 bits (they cross a GPU's bus at full width); every backend agrees.
wide_ref=$("$kiln" run --backend scalar --n 70000 --first 4294967000 --repeat 1 --warmup 0 --json | field checksum)
[ "$wide_ref" != "$ref" ]; check "--first changes the inputs" $?
for b in cpu opencl cuda; do
  avail=$(echo "$devices" | python3 -c "import json,sys; print(any(d['available'] for d in json.load(sys.stdin) if d['backend']=='$b'))")
  [ "$avail" = "True" ] || continue
  got=$("$kiln" run --backend "$b" --n 70000 --first 4294967000 --repeat 1 --json | field checksum)
  [ "$got" = "$wide_ref" ]; check "$b --first 4294967000 checksum equals scalar" $?
done
out=$("$kiln" run --backend scalar --n 2 --first -3 --p 61 --repeat 1 --warmup 0 --json)
[ "$(echo "$out" | field first)" = "-3" ]; check "run --json has first" $?
err=$("$kiln" run --backend scalar --n 10 --first 9223372036854775800 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$err" | grep -q "past the largest int64"; check "--first whose inputs overflow int64 is rejected" $?
err=$("$kiln" run --backend cpu --device all --resident --n 10 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$err" | grep -q "lives on one device"; check "--resident --device all is refused" $?
err=$("$kiln" run --device 1x --n 10 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$err" | grep -q "device index (0, 1, ...) or all"; check "a device that is neither an index nor all is rejected" $?

echo "$devices" | python3 -c "import json,sys; ds=json.load(sys.stdin); sys.exit(0 if {'scalar','cpu','opencl','cuda'} <= {d['backend'] for d in ds} else 1)"
check "devices --json lists every backend" $?
"$kiln" devices | grep -q "^cpu"; check "devices prints a table" $?

err=$("$kiln" run --p 0 --n 3 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$err" | grep -q "p must be in 1..4294967295"; check "p = 0 is rejected with exit 2" $?
err=$("$kiln" run --p 4294967296 --n 3 2>&1); rc=$?
[ $rc -eq 2 ]; check "p = 2^32 is rejected" $?
err=$("$kiln" run --bogus 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$err" | grep -qi "bogus"; check "unknown flag names the flag" $?
err=$("$kiln" run --backend tpu 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$err" | grep -q "tpu"; check "unknown backend is rejected" $?
err=$("$kiln" run --n -4 2>&1); rc=$?
[ $rc -ne 0 ]; check "negative n is rejected" $?
"$kiln" >/dev/null 2>&1; [ $? -ne 0 ]; check "no subcommand exits non-zero" $?

# ---- numbers are parsed exactly: no clamping, no wrapping, no partial parses -----------------------
int64_range="-9223372036854775808..9223372036854775807"
for v in abc 4.5 1e3 0x10 " 5" "5 " 1_000 --; do
  refused "--n \"$v\" is not a number" "--n \"$v\" is not a number: --n takes a decimal integer in 0..17179869184" \
    --backend scalar --n="$v"
done
refused "--n \"\" is not a number" "--n \"\" is not a number" --backend scalar --n ""
refused "--mu abc is not a number" "--mu \"abc\" is not a number" --backend scalar --mu abc
refused "--p x is not a number" "--p \"x\" is not a number" --backend scalar --p x
refused "--iterations ten is not a number" "--iterations \"ten\" is not a number" --backend scalar --iterations ten
refused "--first 1.5 is not a number" "--first \"1.5\" is not a number" --backend scalar --first 1.5
refused "--chunk 1k is not a number" "--chunk \"1k\" is not a number" --backend cpu --chunk 1k
refused "--repeat many is not a number" "--repeat \"many\" is not a number" --backend scalar --repeat many
refused "--warmup 1.0 is not a number" "--warmup \"1.0\" is not a number" --backend scalar --warmup 1.0
refused "--mu beyond int64 is refused, not clamped" "--mu must be in $int64_range (int64), got 99999999999999999999" \
  --backend scalar --n 3 --mu 99999999999999999999
refused "--mu = INT64_MAX + 1 is refused" "--mu must be in $int64_range" --backend scalar --n 3 --mu 9223372036854775808
refused "--mu = INT64_MIN - 1 is refused" "--mu must be in $int64_range" --backend scalar --n 3 --mu=-9223372036854775809
refused "--first below int64 is refused, not clamped" \
  "--first must be in $int64_range (int64), got -99999999999999999999" --backend scalar --n 3 --first=-99999999999999999999
refused "--first beyond int64 is refused" "--first must be in $int64_range" --backend scalar --n 1 --first 9223372036854775808
refused "p = 2^32 names the range" "--p must be in 1..4294967295 (2^32 - 1), got 4294967296" --backend scalar --p 4294967296
refused "p = -1 is refused" "--p must be in 1..4294967295" --backend scalar --p=-1
refused "p beyond int64 is refused" "--p must be in 1..4294967295" --backend scalar --p 99999999999999999999
refused "--iterations -1 is refused" "--iterations must be in 0..9223372036854775807, got -1" --backend scalar --iterations=-1
refused "--iterations beyond int64 is refused" "--iterations must be in 0..9223372036854775807" \
  --backend scalar --iterations 9223372036854775808
refused "--n -4 names the range" "--n must be in 0..17179869184 (2^34), got -4" --backend scalar --n=-4
refused "--n 2^34 + 1 is refused" "--n must be in 0..17179869184" --backend scalar --n 17179869185
refused "--n beyond int64 is refused" "--n must be in 0..17179869184" --backend scalar --n 99999999999999999999
refused "--chunk -1 is refused" "--chunk must be in 0..17179869184 (2^34), got -1" --backend cpu --chunk=-1
refused "--chunk 2^64 is refused" "--chunk must be in 0..17179869184" --backend cpu --chunk 18446744073709551616
refused "--repeat 0 is refused" "--repeat must be in 1..2147483647, got 0" --backend scalar --repeat 0
refused "--repeat 2^31 is refused" "--repeat must be in 1..2147483647" --backend scalar --repeat 2147483648
refused "--warmup -1 is refused" "--warmup must be in 0..2147483647, got -1" --backend scalar --warmup=-1
refused "--device -1 is refused" "--device must be a device index (0, 1, ...) or all, got -1" --backend scalar --device=-1
refused "--device 2^31 is refused" "--device must be a device index (0, 1, ...) or all" --backend scalar --device 2147483648
refused "--first + n - 1 past int64 names --first's range for that n" \
  "with that --n, --first must be in -9223372036854775808..9223372036854775798" --backend scalar --n 10 --first 9223372036854775799
# The edges of each domain run, with exactly the values given: the checksum is Elixir's map, computed
# here with Python's unbounded integers (rem takes the dividend's sign).
elixir_sum() { # first n iterations p mu
  python3 -c "
import sys
first, n, k, p, mu = map(int, sys.argv[1:])
rem = lambda a, b: abs(a) % b * (1 if a >= 0 else -1)
def f(x):
    for _ in range(k): x = rem(mu * x * (x + 1), p)
    return x
print(sum(f(x) for x in range(first, first + n)))" "$@"
}
for b in scalar cpu; do
  out=$("$kiln" run --backend $b --n 10 --first 9223372036854775798 --iterations 3 --p 4294967295 \
    --mu=-9223372036854775808 --repeat 1 --warmup 0 --json)
  [ "$(echo "$out" | field first)" = 9223372036854775798 ] && [ "$(echo "$out" | field mu)" = -9223372036854775808 ] &&
    [ "$(echo "$out" | field checksum)" = "$(elixir_sum 9223372036854775798 10 3 4294967295 -9223372036854775808)" ]
  check "$b runs the last 10 int64 inputs with mu = INT64_MIN, p = 2^32 - 1, exactly" $?
  out=$("$kiln" run --backend $b --n 5 --first=-9223372036854775808 --iterations 2 --p 1000003 \
    --mu 9223372036854775807 --repeat 1 --warmup 0 --json)
  [ "$(echo "$out" | field first)" = -9223372036854775808 ] &&
    [ "$(echo "$out" | field checksum)" = "$(elixir_sum -9223372036854775808 5 2 1000003 9223372036854775807)" ]
  check "$b runs from INT64_MIN with mu = INT64_MAX, exactly" $?
done
out=$("$kiln" run --backend scalar --n +3 --p +61 --mu +22 --repeat 1 --json)
[ "$(echo "$out" | field checksum)" = 90 ] && [ "$(echo "$out" | field n)" = 3 ]
check "a leading + is accepted (--n +3 --p +61 --mu +22: 90)" $?
out=$("$kiln" run --backend scalar --n 4 --iterations 0 --first 7 --repeat 1 --warmup 0 --json)
[ "$(echo "$out" | field checksum)" = 34 ]; check "--iterations 0 returns the inputs (7+8+9+10 = 34)" $?

# ---- options the backend would not honour are refused by name ------------------------------------
for b in scalar cpu; do
  refused "$b refuses --gpu-only" "--gpu-only applies to GPU backends (opencl, cuda), not $b" --backend $b --gpu-only
  refused "$b refuses --phases" "--phases applies to GPU backends (opencl, cuda), not $b" --backend $b --phases
done
refused "scalar refuses --chunk" "--chunk applies to the cpu, opencl and cuda backends, not scalar" \
  --backend scalar --chunk 1000
refused "scalar refuses --chunk 0 too" "--chunk applies to the cpu, opencl and cuda backends, not scalar" \
  --backend scalar --chunk 0
"$kiln" run --backend scalar --gpu-only --phases --chunk 8 --n 3 >/dev/null 2>"$errfile"; rc=$?
[ $rc -eq 2 ] && [ "$(grep -c "applies to" "$errfile")" -eq 3 ]; check "every inapplicable option is named, not just the first" $?
out=$("$kiln" run --backend cpu --n 200000 --chunk 1000 --repeat 1 --warmup 0 --json)
[ "$(echo "$out" | field checksum)" = "$ref" ] && [ "$(echo "$out" | field chunks)" = 200 ]
check "cpu honours --chunk 1000 (200 chunks of 200000, same checksum)" $?
out=$("$kiln" run --backend cpu --n 200000 --pinned --repeat 1 --warmup 0 --json)
[ "$(echo "$out" | field checksum)" = "$ref" ] && [ "$(echo "$out" | field pinned)" = True ]
check "cpu --pinned runs (Kiln's host blocks), same checksum" $?
for b in scalar cpu; do
  refused "$b refuses --pinned with --resident" "--pinned does not apply with --resident" --backend $b --resident --pinned
done
refused "cpu refuses --chunk with --resident" "--chunk does not apply with --resident" --backend cpu --resident --chunk 64
auto_backend=$("$kiln" run --backend auto --n 1 --repeat 1 --warmup 0 --json | field backend)
auto_gpu=$([ "$auto_backend" = opencl ] || [ "$auto_backend" = cuda ] && echo yes || echo no)
if [ $auto_gpu = no ]; then
  refused "auto ($auto_backend) refuses --phases, saying what it chose" \
    "--phases applies to GPU backends (opencl, cuda), not $auto_backend (what --backend auto chose)" --backend auto --phases
fi
for b in opencl cuda; do
  avail=$(echo "$devices" | python3 -c "import json,sys; print(any(d['available'] for d in json.load(sys.stdin) if d['backend']=='$b'))")
  [ "$avail" = "True" ] || continue
  refused "$b refuses --gpu-only with --resident" "--gpu-only does not apply with --resident" --backend $b --resident --gpu-only
  refused "$b refuses --phases with --resident" "--phases does not apply with --resident" --backend $b --resident --phases
  refused "$b refuses --chunk with --resident" "--chunk does not apply with --resident" --backend $b --resident --chunk 64
  out=$("$kiln" run --backend $b --n 200000 --chunk 1000 --gpu-only --phases --repeat 1 --json)
  [ "$(echo "$out" | field checksum)" = "$ref" ] && [ "$(echo "$out" | field phases)" = True ]
  check "$b takes --chunk, --gpu-only and --phases together, same checksum" $?
  if [ $b = opencl ]; then
    [ "$(echo "$out" | field chunks)" = 200 ]; check "opencl honours --chunk 1000 (200 chunks)" $?
  fi
done

# ---- --device against the chosen backend's devices -----------------------------------------------
for b in scalar cpu opencl; do
  count=$(echo "$devices" | python3 -c "import json,sys; print(sum(d['backend']=='$b' for d in json.load(sys.stdin)))")
  avail=$(echo "$devices" | python3 -c "import json,sys; print(any(d['available'] for d in json.load(sys.stdin) if d['backend']=='$b'))")
  [ "$avail" = "True" ] || continue
  refused "$b --device $count (one past its devices) is refused" \
    "--device must be in 0..$((count - 1)) or all for the $b backend" --backend $b --device $count
done
auto_count=$(echo "$devices" | python3 -c "import json,sys; print(sum(d['backend']=='$auto_backend' for d in json.load(sys.stdin)))")
refused "auto --device $auto_count is checked against $auto_backend, the backend auto chose" \
  "--device must be in 0..$((auto_count - 1)) or all for the $auto_backend backend" --backend auto --device "$auto_count"
out=$("$kiln" run --backend auto --device 0 --n 3 --p 61 --repeat 1 --json)
[ "$(echo "$out" | field backend)" = "$auto_backend" ] && [ "$(echo "$out" | field checksum)" = 90 ]
check "auto --device 0 runs on $auto_backend's device 0" $?
out=$("$kiln" run --backend auto --device all --n 200000 --repeat 1 --json)
[ "$(echo "$out" | field backend)" = "$auto_backend" ] && [ "$(echo "$out" | field checksum)" = "$ref" ]
check "auto --device all runs on $auto_backend, same checksum" $?
for b in scalar cpu opencl cuda; do
  avail=$(echo "$devices" | python3 -c "import json,sys; print(any(d['available'] for d in json.load(sys.stdin) if d['backend']=='$b'))")
  [ "$avail" = "True" ] || continue
  for mode in "" --resident; do
    out=$("$kiln" run --backend $b --n 0 $mode --repeat 1 --json)
    [ $? -eq 0 ] && [ "$(echo "$out" | field checksum)" = 0 ] && [ "$(echo "$out" | field n)" = 0 ]
    check "$b --n 0 ${mode:-end to end} runs over nothing" $?
  done
done
cuda_avail=$(echo "$devices" | python3 -c "import json,sys; print(any(d['available'] for d in json.load(sys.stdin) if d['backend']=='cuda'))")
if [ "$cuda_avail" != True ]; then
  out=$("$kiln" run --backend cuda --device 7 --n 3 2>"$errfile"); rc=$?
  [ $rc -eq 1 ] && [ -z "$out" ] && grep -q "backend cuda is unavailable" "$errfile"
  check "an unavailable backend says so before any --device range" $?
fi

echo "cli: $failures failed"
exit $((failures > 0))
