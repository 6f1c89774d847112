#!/usr/bin/env bash
# CI smoke test of the benchmark harness: bench/run at a tiny n must produce checked results, a table and a chart.
#
# Every row that ran must have returned the reference checksum; rows that could not run here
# (no GPU, no CuPy...) are allowed as long as they say why. Prints "N passed, N failed".
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# n = 4096 keeps every row in milliseconds; the time goes into the (incremental) builds.
"$root/bench/run" --n 4096 --repeat 1 --out "$tmp/out" >"$tmp/stdout.md" 2>"$tmp/stderr.log"
rc=$?
# The kernel-path rows (--kernels) at two small iteration counts, builds already done.
"$root/bench/run" --no-build --kernels --iterations-sweep 1,3 --rows 'sweep|bw' --n 4096 --repeat 1 \
  --out "$tmp/kernels" >"$tmp/kernels.md" 2>"$tmp/kernels.log"
krc=$?

py=$(command -v python3 || echo /usr/bin/python3)
"$py" - "$tmp/out" "$tmp/stdout.md" "$rc" "$tmp/kernels" "$krc" <<'PY'
import json, os, sys
import xml.etree.ElementTree as ET

out, stdout_md, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
kernels_out, krc = sys.argv[4], int(sys.argv[5])
passed, failed = 0, 0

def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}")

check(rc == 0, f"bench/run exit status {rc} (1: a row errored, 2: checksum mismatch)")
path = os.path.join(out, "results.json")
check(os.path.isfile(path), "results.json exists")
doc = {}
if os.path.isfile(path):
    with open(path) as f:
        doc = json.load(f)
rows = doc.get("rows", [])
check(doc.get("params", {}).get("n") == 4096, "results.json records n = 4096")
check(isinstance(doc.get("reference", {}).get("checksum"), int), "a reference checksum was computed")
ran = [r for r in rows if r.get("status") != "skipped"]
for r in ran:
    tag = r["name"] + (f"@{r['stages']}" if r.get("stages") else "")
    check(r.get("status") == "ok" and r.get("checksum_ok") is True,
          f"{tag}: status {r.get('status')}, checksum_ok {r.get('checksum_ok')} {r.get('reason', '')}")
for r in rows:
    if r.get("status") == "skipped":
        check(bool(r.get("reason")), f"{r['name']}: skipped without a reason")
# The rows that need nothing but this repository's own build and a stock toolchain must be there.
names = {r["name"] for r in rows if r.get("status") == "ok"}
for must in ("cpp.scalar", "cpp.cpu"):
    check(must in names, f"{must} ran")
check(not any(".sweep." in r["name"] or ".bw." in r["name"] for r in rows), "the default run has no --kernels rows")
md = os.path.join(out, "results.md")
check(os.path.isfile(md) and "| row |" in open(md).read(), "results.md exists with the rows table")
check(os.path.getsize(stdout_md) > 0, "the table was printed on stdout")
svg = os.path.join(out, "chart.svg")
try:
    root = ET.parse(svg).getroot()
    check(root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}rect")) > len(names) // 2,
          "chart.svg is an SVG with bars")
except (OSError, ET.ParseError) as e:
    check(False, f"chart.svg parses: {e}")
print(f"bench smoke: {len(ran)} rows ran, {len(rows) - len(ran)} skipped")

# --kernels: every sweep row that ran matched its own count's reference, no default row ran,
# and the report has the kernel section.
check(krc == 0, f"bench/run --kernels exit status {krc}")
kdoc = {}
kpath = os.path.join(kernels_out, "results.json")
if os.path.isfile(kpath):
    with open(kpath) as f:
        kdoc = json.load(f)
check(kdoc.get("params", {}).get("iterations_sweep") == [1, 3], "--kernels run records its sweep [1, 3]")
krows = kdoc.get("rows", [])
check(bool(krows) and all("sweep" in r["name"] or ".bw." in r["name"] for r in krows),
      "--rows 'sweep|bw' gave only kernel-path rows")
kran = [r for r in krows if r.get("status") != "skipped"]
for r in kran:
    check(r.get("status") == "ok" and r.get("checksum_ok") is True,
          f"{r['name']}: status {r.get('status')}, checksum_ok {r.get('checksum_ok')} {r.get('reason', '')}")
for r in krows:
    if r.get("status") == "skipped":
        check(bool(r.get("reason")), f"{r['name']}: skipped without a reason")
# Rows at 1 and 3 iterations checked against different references: the per-count reference is real.
exp = {r.get("iterations"): r.get("expected_checksum") for r in kran if r.get("iterations")}
if 1 in exp and 3 in exp:
    check(exp[1] != exp[3], "the sweep's references differ between 1 and 3 iterations")
if kran:
    kmd = os.path.join(kernels_out, "results.md")
    check(os.path.isfile(kmd) and "## Kernel path and peers" in open(kmd).read(), "results.md has the kernel section")
print(f"bench smoke --kernels: {len(kran)} rows ran, {len(krows) - len(kran)} skipped")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
status=$?
if ((status != 0)); then
  echo "--- bench/run stderr (tail) ---"
  tail -n 40 "$tmp/stderr.log"
  echo "--- bench/run --kernels stderr (tail) ---"
  tail -n 20 "$tmp/kernels.log"
fi
exit $status
