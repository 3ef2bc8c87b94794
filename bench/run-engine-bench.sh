#!/usr/bin/env bash
# MLNetExt engine benchmark: C# (bench/EngineBench) against Python torch (bench/engine_bench.py), measured in the
# same run, on the same machine and thread count, alternating the two sides. See bench/README.md.
#
#   bench/run-engine-bench.sh [--threads N] [--artifacts DIR] [--op-rounds R] [--train-rounds R]
#                             [--iters K] [--reps R] [--warmup W] [--steps S] [--batch B] [--size P] [--no-build]
#
# stdout: a summary, the results table, and as the LAST line one JSON object with every figure.
# stderr: build output and one progress line per run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"

THREADS="$(nproc)"
ARTIFACTS="${ENGINE_BENCH_ARTIFACTS:-$ROOT/artifacts}"
PYTHON="${ENGINE_BENCH_PYTHON:-/usr/bin/python3}"   # Debian's python3 carries torch 1.13
OP_ROUNDS=3        # op test: C#,Py, Py,C#, C#,Py (ABBA order cancels linear drift)
TRAIN_ROUNDS=2     # training: C#,Py, Py,C#
ITERS=100000       # adds per sample
REPS=5             # samples per process and variant
WARMUP=2           # training warm-up steps per process
STEPS=5            # timed training steps per process
BATCH=16
SIZE=224
BUILD=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --artifacts) ARTIFACTS="$2"; shift 2 ;;
    --op-rounds) OP_ROUNDS="$2"; shift 2 ;;
    --train-rounds) TRAIN_ROUNDS="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

if (( SIZE % 56 != 0 )); then
  echo "error: --size must be a multiple of 56 (stride-4 stem, 7x7 attention windows, stride-2 downsampling)" >&2
  exit 2
fi
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "error: $PYTHON cannot import torch (use Debian's /usr/bin/python3, or set ENGINE_BENCH_PYTHON)" >&2
  exit 1
fi

if [[ $BUILD -eq 1 ]]; then
  echo "building EngineBench (Release) into $ARTIFACTS ..." >&2
  dotnet build "$HERE/EngineBench" -c Release -nologo -v q -p:ArtifactsPath="$ARTIFACTS" >&2
fi
EXE="$ARTIFACTS/bin/EngineBench/release/EngineBench"
[[ -x "$EXE" ]] || { echo "error: $EXE not found (build failed?)" >&2; exit 1; }

# The same thread count everywhere: libtorch's intra-op pool (MLNETEXT_THREADS / --threads for C#,
# torch.set_num_threads for Python, both via --threads), OpenMP and OpenBLAS's own pthread pool.
export MLNETEXT_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
# Like with like: Python runs on the BLAS our engine loads.
source "$HERE/blas.sh"; read -r -a PY_ENV <<< "$(blas_env "$(engine_blas)")"
echo "BLAS (both sides): $(engine_blas)" >&2

OUT="$(mktemp -d /tmp/engine-bench.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

run_side() {  # side mode tag args...
  local side="$1" mode="$2" tag="$3"; shift 3
  local out="$OUT/${side}_${mode}_${tag}.json" err="$OUT/${side}_${mode}_${tag}.err"
  local t0=$SECONDS
  if [[ "$side" == cs ]]; then
    "$EXE" "$mode" --threads "$THREADS" "$@" >"$out" 2>"$err" || { cat "$err" >&2; echo "error: C# $mode run failed" >&2; exit 1; }
  else
    "${PY_ENV[@]}" "$PYTHON" "$HERE/engine_bench.py" "$mode" --threads "$THREADS" "$@" >"$out" 2>"$err" || { cat "$err" >&2; echo "error: Python $mode run failed" >&2; exit 1; }
  fi
  grep -v '^\s*$' "$err" | sed "s/^/  [$side] /" >&2 || true
  "$PYTHON" - "$out" "$side" "$mode" "$tag" "$((SECONDS - t0))" >&2 <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
side, mode, tag, secs = sys.argv[2:]
if mode == "ops":
    print(f"  {mode} #{tag} {side}: add {r['add_us']:.3f} us/op, add+grad {r['add_grad_us']:.3f} us/op ({secs}s)")
else:
    print(f"  {mode} #{tag} {side}: median step {r['step_s']:.3f}s = {r['ips']:.2f} img/s, loss {r['loss']:.6f} ({secs}s)")
EOF
}

op_args=(--iters "$ITERS" --reps "$REPS")
train_args=(--warmup "$WARMUP" --steps "$STEPS" --batch "$BATCH" --size "$SIZE")

echo "threads=$THREADS, load average at start: $LOAD_START" >&2
for ((r = 1; r <= OP_ROUNDS; r++)); do
  if ((r % 2)); then run_side cs ops "$r" "${op_args[@]}"; run_side py ops "$r" "${op_args[@]}"
  else run_side py ops "$r" "${op_args[@]}"; run_side cs ops "$r" "${op_args[@]}"; fi
done
for ((r = 1; r <= TRAIN_ROUNDS; r++)); do
  if ((r % 2)); then run_side cs train "$r" "${train_args[@]}"; run_side py train "$r" "${train_args[@]}"
  else run_side py train "$r" "${train_args[@]}"; run_side cs train "$r" "${train_args[@]}"; fi
done
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

"$PYTHON" - "$OUT" "$THREADS" "$LOAD_START" "$LOAD_END" "$(nproc)" <<'EOF'
import glob, json, os, statistics, sys

out, threads, load_start, load_end, ncpu = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])

def load(side, mode):
    runs = []
    for p in sorted(glob.glob(os.path.join(out, f"{side}_{mode}_*.json"))):
        runs.append(json.loads(open(p).read().strip().splitlines()[-1]))
    return runs

def pooled(runs, key):
    return [v for r in runs for v in r[key]]

def med(xs):
    return statistics.median(xs) if xs else float("nan")

cs_ops, py_ops, cs_tr, py_tr = load("cs", "ops"), load("py", "ops"), load("cs", "train"), load("py", "train")

add_cs, add_py = med(pooled(cs_ops, "add_us_samples")), med(pooled(py_ops, "add_us_samples"))
addg_cs, addg_py = med(pooled(cs_ops, "add_grad_us_samples")), med(pooled(py_ops, "add_grad_us_samples"))
native = med([r["native_call_us"] for r in cs_ops])
native_g = med([r["native_call_grad_us"] for r in cs_ops])
scoped = med([r["add_scoped_us"] for r in cs_ops])
floor = med([r["pinvoke_floor_us"] for r in cs_ops])

batch = cs_tr[0]["batch"]
step_cs, step_py = med(pooled(cs_tr, "step_s_samples")), med(pooled(py_tr, "step_s_samples"))
ips_cs, ips_py = batch / step_cs, batch / step_py
# memory: worst C# run (growth over the timed steps, after warm-up)
rss_growth_cs = max(r["rss_after_mb"] - r["rss_before_mb"] for r in cs_tr)
rss_growth_py = max(r["rss_after_mb"] - r["rss_before_mb"] for r in py_tr)
# the same after malloc_trim(0) on both ends: free heap pages returned, so (nearly) live memory only
rss_trim_cs = max(r["rss_after_trim_mb"] - r["rss_before_trim_mb"] for r in cs_tr)
rss_trim_py = max(r["rss_after_trim_mb"] - r["rss_before_trim_mb"] for r in py_tr)
peak_cs, peak_py = med([r["rss_peak_mb"] for r in cs_tr]), med([r["rss_peak_mb"] for r in py_tr])
live_growth = max(r["live_after"] - r["live_before"] for r in cs_tr)
live_growth_gc = max(r["live_after_gc"] - r["live_before"] for r in cs_tr)
loss_cs, loss_py = cs_tr[0]["loss"], py_tr[0]["loss"]
first_cs, first_py = cs_tr[0]["first_loss"], py_tr[0]["first_loss"]

def phase(runs, name):
    return med([r["phase_s"][name] for r in runs if name in r["phase_s"]])

RSS_TARGET_MB = 64
rows = [
    ("add, no grad (us/op)", add_cs, add_py, add_cs / add_py, "<= 1.0", add_cs / add_py <= 1.0),
    ("add, inputs require grad (us/op)", addg_cs, addg_py, addg_cs / addg_py, "<= 1.0", addg_cs / addg_py <= 1.0),
    (f"train step, batch {batch} (images/s)", ips_cs, ips_py, ips_cs / ips_py, ">= 1.0", ips_cs / ips_py >= 1.0),
    ("train step, median (s)", step_cs, step_py, step_cs / step_py, "", None),
    ("RSS growth over timed steps, raw (MB)", rss_growth_cs, rss_growth_py, None, "(info)", None),
    ("RSS growth, after malloc_trim (MB)", rss_trim_cs, rss_trim_py, None, f"<= {RSS_TARGET_MB} (C#)", rss_trim_cs <= RSS_TARGET_MB),
    ("Tensor.LiveCount growth", live_growth, None, None, "= 0", live_growth == 0),
]

def fmt(v):
    if v is None: return "-"
    if isinstance(v, int): return str(v)
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"

cs0 = cs_tr[0]
print("== MLNetExt engine benchmark ==")
print(f"threads {threads} (of {ncpu} cpus), torch {cs0['torch']} (python: {py_tr[0]['torch']}), .NET {cs0['dotnet']}, BLAS {cs0['blas']}")
print(f"load average start {load_start} / end {load_end}" + ("   WARNING: machine busy (1-min load > cpus), figures are noisy" if max(float(load_start.split()[0]), float(load_end.split()[0])) > ncpu else ""))
print(f"op test: {len(cs_ops)}+{len(py_ops)} processes x {cs_ops[0]['iters']} adds x {len(cs_ops[0]['add_us_samples'])} samples; "
      f"training: {len(cs_tr)}+{len(py_tr)} processes x {cs0['steps']} timed steps after {cs0['warmup']} warm-up, {batch}x3x{cs0['size']}x{cs0['size']} float32")
print(f"C# add breakdown: raw bridge call (dispatcher + boxing + handle) {native:.3f} us, managed Tensor wrapper + dispose {add_cs - native:.3f} us, "
      f"inside a TensorScope {scoped:.3f} us, P/Invoke floor {floor:.3f} us; with grad: bridge {native_g:.3f} us")
print("phases (median s)    " + "  ".join(f"{n}: C# {phase(cs_tr, n):.3f} / Py {phase(py_tr, n):.3f}" for n in ("forward", "backward", "optimizer_step", "zero_grad"))
      + f"  scope_dispose: C# {phase(cs_tr, 'scope_dispose'):.3f}")
print(f"same network check: first loss C# {first_cs:.6f} / Py {first_py:.6f}; last loss C# {loss_cs:.6f} / Py {loss_py:.6f}; params {cs0['params']} / {py_tr[0]['params']}")
print(f"C# RSS (MB): start {cs0['rss_start_mb']:.0f}, after warm-up {cs0['rss_before_mb']:.0f} (trimmed {cs0['rss_before_trim_mb']:.0f}), "
      f"after timed steps {cs0['rss_after_mb']:.0f} (trimmed {cs0['rss_after_trim_mb']:.0f}); "
      f"Python: start {py_tr[0]['rss_start_mb']:.0f}, after warm-up {py_tr[0]['rss_before_mb']:.0f} (trimmed {py_tr[0]['rss_before_trim_mb']:.0f}), "
      f"after {py_tr[0]['rss_after_mb']:.0f} (trimmed {py_tr[0]['rss_after_trim_mb']:.0f}); "
      f"LiveCount {cs0['live_before']} -> {cs0['live_after']} (after GC {cs0['live_after_gc']})")
print(f"peak RSS (VmHWM, median of runs, MB): C# {peak_cs:.0f} / Python {peak_py:.0f}")
print()
header = ("metric", "C#", "Python", "ratio", "target", "met")
table = [header] + [(m, fmt(c), fmt(p), fmt(r), t, "-" if ok is None else ("yes" if ok else "NO")) for m, c, p, r, t, ok in rows]
widths = [max(len(row[k]) for row in table) for k in range(len(header))]
for i, row in enumerate(table):
    print(" | ".join(cell.ljust(widths[k]) for k, cell in enumerate(row)))
    if i == 0:
        print("-+-".join("-" * w for w in widths))
print()
summary = {
    "add_us_cs": add_cs, "add_us_py": add_py, "add_ratio": add_cs / add_py,
    "add_grad_us_cs": addg_cs, "add_grad_us_py": addg_py, "add_grad_ratio": addg_cs / addg_py,
    "train_ips_cs": ips_cs, "train_ips_py": ips_py, "train_ratio": ips_cs / ips_py,
    "train_step_s_cs": step_cs, "train_step_s_py": step_py,
    "rss_growth_mb": rss_growth_cs, "rss_growth_mb_py": rss_growth_py,
    "rss_growth_trim_mb": rss_trim_cs, "rss_growth_trim_mb_py": rss_trim_py,
    "rss_before_mb": cs0["rss_before_mb"], "rss_after_mb": cs0["rss_after_mb"],
    "rss_before_trim_mb": cs0["rss_before_trim_mb"], "rss_after_trim_mb": cs0["rss_after_trim_mb"],
    "rss_peak_mb_cs": peak_cs, "rss_peak_mb_py": peak_py,
    "live_tensor_growth": live_growth, "live_tensor_growth_after_gc": live_growth_gc,
    "live_before": cs0["live_before"], "live_after": cs0["live_after"],
    "native_call_us": native, "native_call_grad_us": native_g, "wrapper_us": add_cs - native,
    "add_scoped_us": scoped, "pinvoke_floor_us": floor,
    "phases_cs": {n: phase(cs_tr, n) for n in ("forward", "backward", "optimizer_step", "zero_grad", "scope_dispose")},
    "phases_py": {n: phase(py_tr, n) for n in ("forward", "backward", "optimizer_step", "zero_grad")},
    "loss_cs": loss_cs, "loss_py": loss_py, "first_loss_cs": first_cs, "first_loss_py": first_py,
    "targets_met": all(ok for *_, ok in rows if ok is not None),
    "threads": threads, "torch": cs0["torch"], "torch_py": py_tr[0]["torch"], "blas": cs0["blas"], "dotnet": cs0["dotnet"],
    "batch": batch, "size": cs0["size"], "steps_per_run": cs0["steps"], "train_runs_per_side": len(cs_tr),
    "op_runs_per_side": len(cs_ops), "load_start": load_start, "load_end": load_end,
}
print(json.dumps(summary))
EOF
