#!/usr/bin/env bash
# Issue 20, part 4, on a lent GPU machine (the `device` tool): builds the bridge against the machine's CUDA PyTorch,
# checks our engine on the GPU against the CPU, and measures the training step, the product's training path and eval
# inference of the smallest variant of each family against the official PyTorch models, eager, on the same GPU.
# bench/gpu/README.md says how to prepare the call (bench/gpu/pack.sh) and make it; the last lines printed are the
# table, and $OUT/ keeps every measurement (gpu-bench.jsonl) and the log.
#
# Environment (all optional): GPU_BENCH_DEVICE (cuda; cpu runs the whole script as a dry run on a machine without a
# GPU), GPU_BENCH_VARIANTS, GPU_BENCH_BATCH (64), GPU_BENCH_SIZE (224), GPU_BENCH_WARMUP (3), GPU_BENCH_STEPS (10),
# GPU_BENCH_THREADS (8: libtorch CPU threads and data-loader workers on both sides), GPU_BENCH_PRECISIONS (fp32,bf16),
# GPU_BENCH_CLASSES (10), GPU_BENCH_PYTHON (python3), GPU_BENCH_BUDGET_S (420: no variant starts after this many
# seconds, so the table is printed inside the device call's limit; the rest are reported as skipped).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="${OUT:-/tmp/gpu-bench-out}"
mkdir -p "$out"
exec > >(tee -a "$out/run.log") 2>&1

device="${GPU_BENCH_DEVICE:-cuda}"
variants="${GPU_BENCH_VARIANTS:-transxnet_t transnext_micro smt_t mixformer_b0}"
batch="${GPU_BENCH_BATCH:-64}" size="${GPU_BENCH_SIZE:-224}"
warmup="${GPU_BENCH_WARMUP:-3}" steps="${GPU_BENCH_STEPS:-10}" threads="${GPU_BENCH_THREADS:-8}"
precisions="${GPU_BENCH_PRECISIONS:-fp32,bf16}" classes="${GPU_BENCH_CLASSES:-10}" budget="${GPU_BENCH_BUDGET_S:-420}"
py="${GPU_BENCH_PYTHON:-python3}"
pack="$root/.gpu"
work="${TMPDIR:-/tmp}/mlnetext-gpu"
results="$out/gpu-bench.jsonl"
: > "$results"
started=$SECONDS
stage() { echo "== [$((SECONDS - started)) s] $*"; }
fail() { echo "error: $*"; exit 1; }

[ -f "$pack/trainbench.tar.xz" ] || fail "$pack/trainbench.tar.xz is missing: run bench/gpu/pack.sh on the build machine and carry .gpu"

stage "machine"
date -u
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
"$py" - "$device" <<'PY' || fail "$py cannot import torch"
import sys, torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"GPU available: {torch.cuda.is_available()}, matmul tf32: {torch.backends.cuda.matmul.allow_tf32}, "
      f"cudnn tf32: {torch.backends.cudnn.allow_tf32}, cudnn benchmark: {torch.backends.cudnn.benchmark}")
if sys.argv[1].startswith("cuda") and not torch.cuda.is_available():
    sys.exit("error: this machine's torch sees no GPU")
PY

stage "bridge: building against this machine's libtorch"
prefix="$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
torchlib="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
cmake_args=(-S src/Native -B "$work/native-build" -DCMAKE_BUILD_TYPE=Release -DMLNETEXT_NATIVE_OUT="$work/native")
[ -d "$prefix" ] && cmake_args+=(-DCMAKE_PREFIX_PATH="$prefix")   # Debian's libtorch is found without it
command -v ninja >/dev/null && cmake_args+=(-G Ninja)
cmake "${cmake_args[@]}" > "$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; fail "cmake could not configure the bridge"; }
cmake --build "$work/native-build" -j "$(nproc)" >> "$out/cmake.log" 2>&1 || { grep -m 20 -B2 -A8 'error' "$out/cmake.log"; fail "the bridge did not build"; }
bridge="$work/native/libmlnetext_native.so"
if [[ "$device" == cuda* ]]; then
  ldd "$bridge" | grep -q torch_cuda || fail "$bridge does not link libtorch_cuda (see src/Native/README.md)"
fi

stage "TrainBench: unpacking the self-contained build"
rm -rf "$work/trainbench" && mkdir -p "$work" && tar -C "$work" -xJf "$pack/trainbench.tar.xz" || fail "could not unpack $pack/trainbench.tar.xz"
export MLNETEXT_NATIVE="$bridge" LD_LIBRARY_PATH="$torchlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
export DOTNET_CLI_TELEMETRY_OPTOUT=1 PYTHONUNBUFFERED=1
# the official code, as pack.sh wrote it (tests/fixtures/mirror.py reads plain folders)
export TRANSXNET_MIRROR="$pack/official/transxnet" TRANSNEXT_MIRROR="$pack/official/transnext" \
       SMT_MIRROR="$pack/official/smt" MIXFORMER_MIRROR="$pack/official/mixformer"
tb="$work/trainbench/TrainBench"
common=(--batch "$batch" --size "$size" --warmup "$warmup" --steps "$steps" --threads "$threads" --device "$device" --classes "$classes")

# One line of JSON per measurement into $results; a failing side is reported and the run goes on.
csharp() { "$tb" --variant "$1" "${@:2}" "${common[@]}" 2> "$out/$1.csharp.err" | tee -a "$results" | cut -c1-160 \
             || { echo "C# failed for $1:"; tail -5 "$out/$1.csharp.err"; }; }
python() { "$py" bench/train_bench.py --family "${1%%_*}" --variant "$1" "${@:2}" "${common[@]}" --workers "$threads" \
             2> "$out/$1.python.err" | tee -a "$results" | cut -c1-160 \
             || { echo "Python failed for $1:"; tail -5 "$out/$1.python.err"; }; }

for v in $variants; do
  if (( SECONDS - started > budget )); then echo "skipped $v: past the ${budget} s budget (GPU_BENCH_BUDGET_S)"; continue; fi
  stage "$v"
  drop="$("$tb" --variant "$v" --mode describe 2>/dev/null | "$py" -c 'import json,sys; print(json.loads(sys.stdin.readline())["drop_path"])')" \
    || { echo "could not read the drop-path rate of $v"; continue; }
  csharp "$v" --mode check --precision fp32
  # alternate which side goes first from variant to variant
  if (( $(wc -w <<< "${variants%%$v*}") % 2 == 0 )); then
    csharp "$v" --mode model,infer,full --precision "$precisions"
    python "$v" --mode model,infer,full --precision "$precisions" --drop-path "$drop"
  else
    python "$v" --mode model,infer,full --precision "$precisions" --drop-path "$drop"
    csharp "$v" --mode model,infer,full --precision "$precisions"
  fi
done

stage "summary"
"$py" - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def get(v, side, path, prec):
    r = [x for x in rows if x["variant"] == v and x["side"] == side and x["path"] == path and x.get("precision") == prec]
    return r[0] if r else None
variants = list(dict.fromkeys(x["variant"] for x in rows))
if rows:
    r = rows[0]
    print(f"device {r.get('device')}, batch {r['batch']}, {r['size']} px, {r['warmup']} warm-up + {r['steps']} timed steps")
print("img/s, ours / official PyTorch eager (ratio); 'full' is our estimator's Fit against a DataLoader-fed loop")
cols = [("model", "fp32"), ("model", "bf16"), ("full", "fp32"), ("full", "bf16"), ("infer", "fp32"), ("infer", "bf16")]
print("| variant | " + " | ".join(f"{p} {q}" for p, q in cols) + " | GPU vs CPU (logits, loss, grad norm) |")
print("|---|" + "---:|" * len(cols) + "---|")
for v in variants:
    cells = []
    for p, q in cols:
        c, o = get(v, "csharp", p, q), get(v, "python", p, q)
        cells.append(f"{c['img_s']:.0f} / {o['img_s']:.0f} ({c['img_s'] / o['img_s']:.2f}x)" if c and o else
                     (f"{c['img_s']:.0f} / -" if c else (f"- / {o['img_s']:.0f}" if o else "-")))
    k = get(v, "csharp", "check", "fp32")
    check = f"{k['logits_rel_diff']:.1e}, {k['loss_rel_diff']:.1e}, {k['grad_norm_rel_diff']:.1e}" if k else "-"
    print(f"| {v} | " + " | ".join(cells) + f" | {check} |")
PY
stage "done"
