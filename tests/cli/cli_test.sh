#!/usr/bin/env bash
# The `kiln` command end to end: checksums agree across backends, JSON is well formed, bad input exits non-zero.
set -u
kiln=$1
failures=0
check() { # name, condition result
  if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

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
  out=$("$kiln" run --backend "$b" --n 200000 --repeat 1 --gpu-only --json)
  [ "$(echo "$out" | field checksum)" = "$ref" ] && [ "$(echo "$out" | field host_elements)" = "0.0" ] &&
    [ "$(echo "$out" | field host_share)" = "False" ]
  check "$b --gpu-only: same checksum, nothing computed by the host" $?
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

echo "cli: $failures failed"
exit $((failures > 0))
