#!/usr/bin/env bash
# MLNetExt loader benchmark: the C# DataLoader (bench/LoaderBench) against a torchvision + PIL DataLoader
# (bench/loader_bench.py) on the same images, with the same worker count, batch size and per-image work
# (decode + RandomResizedCrop 224 bilinear + horizontal flip + normalise to float32 NCHW), alternating the two
# sides in one run. Target: C# images/s >= 1.5x torchvision's.
#
#   bench/run-loader-bench.sh [--data DIR] [--workers N] [--rounds R] [--epochs E] [--batch B] [--size S] [--no-build]
#
# stdout: per-run lines, a summary table, and as the LAST line one JSON object. stderr: build output.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
DATA="$ROOT/../shared/data/hymenoptera"
NCPU="$(nproc)"
WORKERS="$NCPU"
ROUNDS=2
EPOCHS=3
BATCH=32
SIZE=224
BUILD=1
PYTHON="${LOADER_BENCH_PYTHON:-/usr/bin/python3}"
ARTIFACTS="${LOADER_BENCH_ARTIFACTS:-$ROOT/artifacts}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --epochs) EPOCHS="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[[ -d "$DATA" ]] || { echo "error: data folder $DATA not found (--data DIR)" >&2; exit 1; }
"$PYTHON" -c 'import torchvision' 2>/dev/null || { echo "error: $PYTHON cannot import torchvision (apt-get install python3-torchvision)" >&2; exit 1; }
if [[ $BUILD -eq 1 ]]; then
  echo "building LoaderBench (Release) into $ARTIFACTS ..." >&2
  dotnet build "$HERE/LoaderBench" -c Release -nologo -v q -p:ArtifactsPath="$ARTIFACTS" >&2
fi
EXE="$ARTIFACTS/bin/LoaderBench/release/LoaderBench"
[[ -x "$EXE" ]] || { echo "error: $EXE not found (build failed?)" >&2; exit 1; }
# one thread per worker on both sides: libtorch only builds the batch tensor in C#; torch workers use 1 thread
export MLNETEXT_THREADS=1 OMP_NUM_THREADS=1
OUT="$(mktemp -d /tmp/loader-bench.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
common=(--data "$DATA" --workers "$WORKERS" --batch "$BATCH" --size "$SIZE" --epochs "$EPOCHS")
run() {  # side round
  local f="$OUT/$1_$2.json"
  case "$1" in
    cs) "$EXE" "${common[@]}" >"$f" ;;
    csnodct) "$EXE" "${common[@]}" --no-dct >"$f" ;;
    py) "$PYTHON" "$HERE/loader_bench.py" "${common[@]}" >"$f" ;;
  esac
  echo "  $1 round $2: $(tail -1 "$f")"
}
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then run cs "$r"; run py "$r"; run csnodct "$r"
  else run py "$r"; run cs "$r"; run csnodct "$r"; fi
done
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
"$PYTHON" - "$OUT" "$WORKERS" "$LOAD_START" "$LOAD_END" "$NCPU" <<'PY'
import glob, json, os, statistics, sys
out, workers, ls, le, ncpu = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def runs(side):
    return [json.loads(open(p).read().strip().splitlines()[-1]) for p in sorted(glob.glob(os.path.join(out, f"{side}_*.json")))]
cs, py, nd = runs("cs"), runs("py"), runs("csnodct")
med = lambda rs: statistics.median(r["ips"] for r in rs)
ips_cs, ips_py, ips_nd = med(cs), med(py), med(nd)
ratio = ips_cs / ips_py
fmt_runs = lambda rs: ", ".join("%.1f" % r["ips"] for r in rs)
print("== MLNetExt loader benchmark ==")
print(f"images {cs[0]['dataset']} per epoch, {cs[0]['epochs']} timed epochs per run after warm-up, batch {cs[0]['batch']}, "
      f"size {cs[0]['size']}, workers {workers} (of {ncpu} cpus); torch {py[0]['torch']}, torchvision {py[0]['torchvision']}")
print(f"load average start {ls} / end {le}" + ("   WARNING: machine busy, figures are noisy" if max(float(ls.split()[0]), float(le.split()[0])) > ncpu else ""))
print(f"C# (DCT-scaled JPEG decode)   {ips_cs:8.1f} images/s  (runs: {fmt_runs(cs)})")
print(f"C# (full-size decode)         {ips_nd:8.1f} images/s  (runs: {fmt_runs(nd)})")
print(f"torchvision + PIL DataLoader  {ips_py:8.1f} images/s  (runs: {fmt_runs(py)})")
print(f"ratio C#/torchvision: {ratio:.2f}x (full-size decode: {ips_nd / ips_py:.2f}x); target >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'}")
print(json.dumps({"ips_cs": ips_cs, "ips_cs_full_decode": ips_nd, "ips_py": ips_py, "ratio": ratio,
                  "ratio_full_decode": ips_nd / ips_py, "target_met": ratio >= 1.5, "workers": workers,
                  "images_per_epoch": cs[0]["dataset"], "load_start": ls, "load_end": le}))
PY
