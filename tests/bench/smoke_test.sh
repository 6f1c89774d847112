#!/usr/bin/env bash
# CI smoke test of the benchmark harness: bench/run at a tiny n must produce checked results, tables and charts.
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
# The scaling sweep at one small n and two counts (the kept rows at n = 4096), and the small-call
# crossover with few calls per point at three n.
"$root/bench/run" --no-build --sweep --sweep-n 10 --sweep-k 1,10 --n 4096 --repeat 1 \
  --out "$tmp/sweep" >"$tmp/sweep.md" 2>"$tmp/sweep.log"
src=$?
"$root/bench/run" --no-build --crossover --crossover-n 1,64,4096 --crossover-reps 5 \
  --out "$tmp/crossover" >"$tmp/crossover.md" 2>"$tmp/crossover.log"
crc=$?

py=$(command -v python3 || echo /usr/bin/python3)
"$py" - "$tmp/out" "$tmp/stdout.md" "$rc" "$tmp/kernels" "$krc" "$tmp/sweep" "$src" "$tmp/crossover" "$crc" <<'PY'
import json, os, sys
import xml.etree.ElementTree as ET

out, stdout_md, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
kernels_out, krc = sys.argv[4], int(sys.argv[5])
sweep_out, src, crossover_out, crc = sys.argv[6], int(sys.argv[7]), sys.argv[8], int(sys.argv[9])
SVG = "{http://www.w3.org/2000/svg}"
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

# The default run also has the lists rows and the kept/dropped rows (cpu at least), where Elixir is.
elixir_here = any(n.startswith("elixir.") for n in names)
for must in ("elixir.lists.reverse", "elixir.lists.empty_call", "elixir.lists.cpu", "elixir.lists.big_heap.cpu",
             "elixir.kept.cpu.binary", "elixir.dropped.cpu.binary", "elixir.paced.cpu.binary"):
    check(must in names or not elixir_here, f"{must} ran")
if "elixir.kept.cpu.binary" in names:
    kept = next(r for r in rows if r["name"] == "elixir.kept.cpu.binary")
    check(len(kept.get("call_s") or []) == 6 and kept.get("kept_alive") == 6, "the kept row timed 6 calls, 6 kept")
    check("## Lists both ways" in open(md).read() and "## Kept results" in open(md).read(),
          "results.md has the lists and kept sections")
if "elixir.paced.cpu.binary" in names:
    paced = next(r for r in rows if r["name"] == "elixir.paced.cpu.binary")
    check(len(paced.get("call_s") or []) == 6 and paced.get("kept_alive") == 6 and paced.get("pause_ms") == 20,
          "the paced row timed 6 calls, 6 kept, 20 ms apart")


def load(folder):
    p = os.path.join(folder, "results.json")
    if not os.path.isfile(p):
        return {}
    with open(p) as f:
        return json.load(f)


def ran_rows_ok(doc, what):
    rs = doc.get("rows", [])
    done = [r for r in rs if r.get("status") != "skipped"]
    for r in done:
        check(r.get("status") == "ok" and r.get("checksum_ok") is True,
              f"{what} {r['name']}: status {r.get('status')}, checksum_ok {r.get('checksum_ok')} {r.get('reason', '')}")
    for r in rs:
        if r.get("status") == "skipped":
            check(bool(r.get("reason")), f"{what} {r['name']}: skipped without a reason")
    return rs, done


def svg_lines(path, what):
    try:
        root = ET.parse(path).getroot()
        check(root.tag.endswith("svg") and len(root.findall(f".//{SVG}polyline")) >= 1, f"{what} is an SVG with lines")
    except (OSError, ET.ParseError) as e:
        check(False, f"{what} parses: {e}")


# --sweep: the sweep's rows at 2^10 and 1, 10 iterations, each checked against its own reference;
# cpu and auto ran everywhere, the GPU modes and CuPy/JAX where there are; the table and the chart.
check(src == 0, f"bench/run --sweep exit status {src}")
sdoc = load(sweep_out)
check((sdoc.get("params", {}).get("sweep") or {}).get("n_log2") == [10], "--sweep run records --sweep-n 10")
srows, sran = ran_rows_ok(sdoc, "--sweep")
sok = {r["name"] for r in sran}
for must in ("elixir.scale.n10.k1.auto.binary", "elixir.scale.n10.k1.cpu.binary", "elixir.scale.n10.k10.cpu.binary"):
    check(must in sok or not elixir_here, f"{must} ran")
check(all(r.get("n") == 1024 for r in sran if ".scale." in r["name"]), "the sweep's rows that ran say n = 1024")
check(not any(r["name"].startswith(("cpp.", "elixir.pure", "elixir.nif.")) for r in srows), "--sweep ran no default row")
exp = {r.get("iterations"): r.get("expected_checksum") for r in sran if ".scale." in r["name"]}
check((exp.get(1) is not None and exp.get(1) != exp.get(10)) or not elixir_here,
      "the sweep's references differ between 1 and 10 iterations")
smd = os.path.join(sweep_out, "results.md")
smd_text = open(smd).read() if os.path.isfile(smd) else ""
if sran:
    check("## Scaling sweep" in smd_text and "| 2^10 |" in smd_text and "### Auto against the best fixed choice" in smd_text,
          "results.md has the sweep table and the auto ratio")
    svg_lines(os.path.join(sweep_out, "sweep.svg"), "sweep.svg")
print(f"bench smoke --sweep: {len(sran)} rows ran, {len(srows) - len(sran)} skipped")

# --crossover: Kiln (auto, cpu) and pure Elixir at 1, 64, 4096, list and binary, checked; table,
# stated crossover and chart.
check(crc == 0, f"bench/run --crossover exit status {crc}")
cdoc = load(crossover_out)
crows, cran = ran_rows_ok(cdoc, "--crossover")
cok = {r["name"] for r in cran}
for n in (1, 64, 4096):
    for impl in ("auto", "cpu", "pure"):
        for shape in ("list", "binary"):
            check(f"elixir.crossover.n{n}.{impl}.{shape}" in cok or not elixir_here,
                  f"elixir.crossover.n{n}.{impl}.{shape} ran")
check(all(r.get("repeat") == 5 for r in cran), "each crossover point timed --crossover-reps 5 calls")
cmd = os.path.join(crossover_out, "results.md")
cmd_text = open(cmd).read() if os.path.isfile(cmd) else ""
if cran:
    check("## Small-call crossover" in cmd_text and "| 4,096 |" in cmd_text and "Kiln `auto` with a list" in cmd_text,
          "results.md has the crossover table and states the crossover")
    svg_lines(os.path.join(crossover_out, "crossover.svg"), "crossover.svg")
print(f"bench smoke --crossover: {len(cran)} rows ran, {len(crows) - len(cran)} skipped")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
status=$?
if ((status != 0)); then
  echo "--- bench/run stderr (tail) ---"
  tail -n 40 "$tmp/stderr.log"
  echo "--- bench/run --kernels stderr (tail) ---"
  tail -n 20 "$tmp/kernels.log"
  echo "--- bench/run --sweep stderr (tail) ---"
  tail -n 20 "$tmp/sweep.log"
  echo "--- bench/run --crossover stderr (tail) ---"
  tail -n 20 "$tmp/crossover.log"
fi
exit $status
