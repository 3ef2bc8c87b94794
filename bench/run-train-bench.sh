#!/usr/bin/env bash
# Training throughput (images/s): our trainer (bench/TrainBench: ImageClassificationEstimator.Fit, plus the bare step
# on pre-made tensors and the data loader alone) against a PyTorch training loop over the OFFICIAL model
# (bench/train_bench.py, built from the fetched official code by tests/fixtures/<family>/reference.py), in the same
# run, same machine and thread count, alternating the sides (C#,Py then Py,C# ...). See bench/README.md.
#
#   bench/run-train-bench.sh [--variants a,b,c] [--batch 16] [--size 224] [--steps K] [--warmup W] [--rounds R]
#                            [--threads N] [--classes C] [--py-workers N] [--py-modes model,full]
#                            [--py-flush-denormal] [--py-blas system|openmp] [--cs-blas openmp|system]
#                            [--profile DIR] [--artifacts DIR] [--no-build]
#
# --profile DIR: both sides also write the operator profile of their timed steps on tensors (libtorch's profiler:
# TrainBench --profile, torch.autograd.profiler), DIR/<variant>.<side>.tsv, and the summary lists the operators with
# the largest self time side by side. Profiling slows both sides; take speeds from runs without it.
#
# BLAS: libtorch takes whatever provides libblas.so.3. Python gets the system's alternative (Debian's default is the
# pthread build of OpenBLAS) unless --py-blas openmp puts the OpenMP build first on its library path; our engine loads
# the OpenMP build when installed (MLNETEXT_BLAS, set by --cs-blas). Each JSON line names the BLAS its process mapped.
#
# stdout: one JSON line per measurement, then a summary table with the ratios C#/Python (higher is better for us).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VARIANTS=transxnet_t,transnext_micro,smt_t,mixformer_b0; BATCH=16; SIZE=224; STEPS=4; WARMUP=1; ROUNDS=1
THREADS="$(nproc)"; CLASSES=10; PY_WORKERS=""; PY_MODES=model,full; PY_EXTRA=(); BUILD=1; PY_BLAS=system; CS_BLAS=openmp; PROFILE=""
ARTIFACTS="${TRAIN_BENCH_ARTIFACTS:-$ROOT/artifacts}"
PYTHON="${TRAIN_BENCH_PYTHON:-/usr/bin/python3}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --variants) VARIANTS="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --classes) CLASSES="$2"; shift 2 ;;
    --py-flush-denormal) PY_EXTRA+=(--flush-denormal); shift ;;
    --py-modes) PY_MODES="$2"; shift 2 ;;
    --py-workers) PY_WORKERS="$2"; shift 2 ;;
    --py-blas) PY_BLAS="$2"; shift 2 ;;
    --cs-blas) CS_BLAS="$2"; shift 2 ;;
    --profile) PROFILE="$2"; shift 2 ;;
    --artifacts) ARTIFACTS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$BATCH" "$SIZE" "$STEPS" "$WARMUP" "$ROUNDS" "$THREADS" "$CLASSES"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "error: batch, size, steps, warmup, rounds, threads and classes must be positive integers; got '$n'" >&2; exit 2; }
done
source "$HERE/blas.sh"
blas_env "$CS_BLAS" >/dev/null || exit 2
PY_ENV_LINE="$(blas_env "$PY_BLAS")" || exit 2
read -r -a PY_ENV <<< "$PY_ENV_LINE"
export MLNETEXT_BLAS="$CS_BLAS"
IFS=, read -r -a VARIANT_LIST <<< "$VARIANTS"
for v in "${VARIANT_LIST[@]}"; do
  f="${v%%_*}"
  [[ -f "$ROOT/tests/fixtures/$f/reference.py" ]] || { echo "error: no Python reference for family '$f' of variant '$v' (tests/fixtures/$f/reference.py)" >&2; exit 2; }
done
if [[ $BUILD -eq 1 ]]; then
  nice dotnet build "$HERE/TrainBench" -c Release -nologo -v q -p:ArtifactsPath="$ARTIFACTS" >&2
fi
EXE="$ARTIFACTS/bin/TrainBench/release/TrainBench"
[[ -x "$EXE" ]] || { echo "error: $EXE not found (build failed?)" >&2; exit 1; }
export MLNETEXT_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
COMMON=(--batch "$BATCH" --size "$SIZE" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --classes "$CLASSES")
RESULTS="$(mktemp)"; trap 'rm -f "$RESULTS"' EXIT
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"; START="$(date -u +%FT%TZ)"; T0=$SECONDS
# the processor and its vector extensions (which kernels libtorch and OpenBLAS pick; the figures depend on them)
processor() {
  local name flags
  name="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1 || true)"
  flags="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | tr ' ' '\n' | grep -xE 'avx2|avx512f|avx512_bf16|amx_bf16' | tr '\n' ' ' || true)"
  echo "${name:-?} (${flags% })"
}
PROCESSOR="$(processor)"
echo "start $START, load average $LOAD_START, $(nproc) cpus, threads $THREADS, processor $PROCESSOR" >&2
if [[ -n "$PROFILE" ]]; then mkdir -p "$PROFILE"; PROFILE="$(cd "$PROFILE" && pwd)"; fi
profile_args() { [[ -n "$PROFILE" ]] && echo "--profile $PROFILE/$1.$2.tsv"; }
run_cs() { "$EXE" --variant "$1" --mode full,model,loader "${COMMON[@]}" $(profile_args "$1" csharp) | tee -a "$RESULTS"; }
run_py() {
  local workers=(); [[ -n "$PY_WORKERS" ]] && workers=(--workers "$PY_WORKERS")
  "${PY_ENV[@]}" "$PYTHON" "$HERE/train_bench.py" --family "${1%%_*}" --variant "$1" --drop-path "$2" --mode "$PY_MODES" "${COMMON[@]}" "${workers[@]}" "${PY_EXTRA[@]}" $(profile_args "$1" python) \
    2> >(grep -v "If for" >&2) | grep --line-buffered -v "^If for" | tee -a "$RESULTS"
}
for v in "${VARIANT_LIST[@]}"; do
  # The drop-path rate our trainer uses for the variant; the Python model gets the same.
  DP="$("$EXE" --variant "$v" --mode describe | "$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.readline())["drop_path"])')"
  for ((r = 0; r < ROUNDS; r++)); do
    echo "[$(date -u +%T)] $v round $((r + 1))/$ROUNDS, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    if (( r % 2 == 0 )); then run_cs "$v"; run_py "$v" "$DP"; else run_py "$v" "$DP"; run_cs "$v"; fi
  done
done
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n "$PROFILE" ]]; then
  for v in "${VARIANT_LIST[@]}"; do
    "$PYTHON" - "$PROFILE/$v.csharp.tsv" "$PROFILE/$v.python.tsv" "$v" "$STEPS" <<'PY'
import csv, os, sys
def load(path):
    if not os.path.exists(path):   # e.g. Python ran only its full path
        return {}
    with open(path) as f:
        return {r["name"]: r for r in csv.DictReader(f, delimiter="\t")}
cs, py, variant, steps = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ms = lambda side, n, key="self_us": float(side[n][key]) / 1000 / steps if n in side else 0.0
calls = lambda side, n: int(side[n]["calls"]) // steps if n in side else 0
aten = lambda side: sum(ms(side, n) for n in side if n.startswith("aten::"))
print(f"\n{variant}: operator self time per step (ms), largest first; all aten:: operators C# {aten(cs):.0f} ms, Python {aten(py):.0f} ms")
print("| operator | C# ms | calls | Python ms | calls |")
print("|---|---:|---:|---:|---:|")
names = sorted(set(cs) | set(py), key=lambda n: -max(ms(cs, n), ms(py, n)))
for n in names[:25]:
    print(f"| {n} | {ms(cs, n):.1f} | {calls(cs, n)} | {ms(py, n):.1f} | {calls(py, n)} |")
PY
  done
fi
"$PYTHON" - "$RESULTS" "$START" "$LOAD_START" "$LOAD_END" "$((SECONDS - T0))" "$(nproc)" "$PROCESSOR" <<'PY'
import json, statistics, sys
path, start, load_start, load_end, seconds, cpus, processor = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.startswith("{")]
def med(variant, side, key):
    vals = [r["img_s"] for r in rows if r["variant"] == variant and r["side"] == side and r["path"] == key]
    return statistics.median(vals) if vals else None
def f(x):
    return f"{x:7.2f}" if x is not None else "     --"
def ratio(a, b):
    return f"{a / b:5.2f}x" if a and b else "    --"
r0 = rows[0]
print(f"\nTraining throughput, images/s: {r0['size']}x{r0['size']}, batch {r0['batch']}, {r0['threads']} threads, "
      f"{r0['warmup']} warm-up + {r0['steps']} timed steps, median of rounds; {start}, {seconds} s, "
      f"load average {load_start} at start, {load_end} at end ({cpus} cpus, {processor})")
for side in ("csharp", "python"):
    print(f"BLAS {side}: " + "; ".join(sorted({r.get("blas", "unknown") for r in rows if r["side"] == side})))
print("| variant | C# Fit (full path) | PyTorch + DataLoader | ratio | C# step on tensors | PyTorch step on tensors | ratio | C# loader alone | CPU use C#/Py (step on tensors) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
variants = list(dict.fromkeys(r["variant"] for r in rows))
for v in variants:
    cf, pf, cm, pm, cl = med(v, "csharp", "full"), med(v, "python", "full"), med(v, "csharp", "model"), med(v, "python", "model"), med(v, "csharp", "loader")
    util = lambda side: statistics.median(r.get("cpu_util", float("nan")) for r in rows if r["variant"] == v and r["side"] == side and r["path"] == "model")
    print(f"| {v} | {f(cf)} | {f(pf)} | {ratio(cf, pf)} | {f(cm)} | {f(pm)} | {ratio(cm, pm)} | {f(cl)} | {util('csharp'):.2f}/{util('python'):.2f} |")
print("CPU use = process CPU seconds / wall seconds / threads over the timed steps (1.00: the run had the cores to itself).")
# On a shared machine the wall-clock figures mostly measure how much CPU each process got. Images per CPU-second
# (times threads) estimates the throughput with the cores to itself; both sides count their own process only, so
# it compares like with like for the step on tensors (not for PyTorch's DataLoader, whose workers are processes).
def norm(variant, side, key):
    vals = [r["img_s"] / r["cpu_util"] for r in rows if r["variant"] == variant and r["side"] == side and r["path"] == key and r.get("cpu_util")]
    return statistics.median(vals) if vals else None
print("\nCPU-normalised (img/s ÷ CPU use): | variant | C# Fit | C# step on tensors | PyTorch step on tensors | ratio |")
for v in variants:
    cf, cm, pm = norm(v, "csharp", "full"), norm(v, "csharp", "model"), norm(v, "python", "model")
    print(f"| {v} | {f(cf)} | {f(cm)} | {f(pm)} | {ratio(cm, pm)} |")
PY
