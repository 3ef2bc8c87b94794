#!/usr/bin/env bash
# Backbone throughput: our C# model (bench/BackboneBench) against the official PyTorch implementation
# (bench/backbone_bench.py, built from the fetched official code by tests/fixtures/<family>/reference.py), in the
# same run, same machine and thread count, alternating the sides (C#,Py then Py,C# ...). See bench/README.md.
#
#   bench/run-backbone-bench.sh --variant NAME [--batch B] [--size S] [--iters K] [--rounds R] [--threads N]
#                               [--artifacts DIR] [--no-build]
#
# stdout: one JSON line per run, then a summary with the C#/Python ratios (higher is better for us).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VARIANT=transxnet_t; BATCH=8; SIZE=224; ITERS=5; ROUNDS=2; THREADS="$(nproc)"; BUILD=1
ARTIFACTS="${BACKBONE_BENCH_ARTIFACTS:-$ROOT/artifacts}"
PYTHON="${BACKBONE_BENCH_PYTHON:-/usr/bin/python3}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --variant) VARIANT="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --artifacts) ARTIFACTS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
FAMILY="${VARIANT%%_*}"
[[ -f "$ROOT/tests/fixtures/$FAMILY/reference.py" ]] || { echo "error: no Python reference for family '$FAMILY' (tests/fixtures/$FAMILY/reference.py)" >&2; exit 2; }
if [[ $BUILD -eq 1 ]]; then
  dotnet build "$HERE/BackboneBench" -c Release -nologo -v q -p:ArtifactsPath="$ARTIFACTS" >&2
fi
EXE="$ARTIFACTS/bin/BackboneBench/release/BackboneBench"
[[ -x "$EXE" ]] || { echo "error: $EXE not found (build failed?)" >&2; exit 1; }
COMMON=(--variant "$VARIANT" --batch "$BATCH" --size "$SIZE" --iters "$ITERS" --threads "$THREADS")
# Like with like: Python runs on the BLAS our engine loads.
source "$HERE/blas.sh"; read -r -a PY_ENV <<< "$(blas_env "$(engine_blas)")"
echo "BLAS (both sides): $(engine_blas)" >&2
RESULTS="$(mktemp)"; trap 'rm -f "$RESULTS"' EXIT
run_cs() { MLNETEXT_THREADS="$THREADS" "$EXE" "${COMMON[@]}" | tee -a "$RESULTS"; }
run_py() { "${PY_ENV[@]}" "$PYTHON" "$HERE/backbone_bench.py" --family "$FAMILY" "${COMMON[@]}" 2> >(grep -v "If for" >&2) | tee -a "$RESULTS"; }
for ((r = 0; r < ROUNDS; r++)); do
  if (( r % 2 == 0 )); then run_cs; run_py; else run_py; run_cs; fi
done
"$PYTHON" - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(side, key):
    return statistics.median(r[key] for r in rows if r["side"] == side)
r0 = rows[0]
print(f"\n{r0['variant']} at {r0['size']}x{r0['size']}, batch {r0['batch']}, {r0['threads']} threads (median of rounds)")
for key, what in (("forward_img_s", "eval forward"), ("train_img_s", "train step")):
    cs, py = med("csharp", key), med("python", key)
    print(f"  {what:13s} C# {cs:8.2f} img/s   PyTorch official {py:8.2f} img/s   ratio {cs / py:5.2f}x")
PY
