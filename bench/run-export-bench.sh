#!/usr/bin/env bash
# Export time of the smallest variant of each landed family (or the variants given): eager forward at batch 2 and 3
# vs the traced ONNX export; then serving latency (batch 1) and throughput (batch 8): ONNX Runtime vs our libtorch
# eager (ExportBench), against torch.onnx's export of the official model with the same weights in the same ONNX
# Runtime, alternating runs (bench/torch_onnx_export.py; "ours_vs_torch_onnx" > 1 means ours is faster), and vs
# Python torch eager on the official model (bench/backbone_bench.py --mode forward). Needs the official code fetched
# (see tests/fixtures/<family>/reference.py).
# --reps R times the export R times; --serve-reps K runs each side K times at batch 1 (K/3, at least 3, at batch 8).
# Usage: bench/run-export-bench.sh [--threads N] [--reps R] [--serve-reps K] [--artifacts DIR] [variant ...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads=$(nproc); reps=3; serve_reps=10; variants=(); artifacts="$root/artifacts"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --serve-reps) serve_reps="$2"; shift 2 ;;
    --artifacts) artifacts="$2"; shift 2 ;;
    *) variants+=("$1"); shift ;;
  esac
done
[ ${#variants[@]} -gt 0 ] || variants=(transxnet_t transnext_micro smt_t mixformer_b0)
dotnet build "$root/bench/ExportBench/ExportBench.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly -p:ArtifactsPath="$artifacts" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for v in "${variants[@]}"; do
  # torch.onnx's export of the official code with the same weights, timed against ours in the same run
  bench=(dotnet "$artifacts/bin/ExportBench/release/ExportBench.dll" "$v")
  MLNETEXT_THREADS="$threads" "${bench[@]}" --save-weights "$work/$v.safetensors"
  compare=()
  if out=$(/usr/bin/python3 "$root/bench/torch_onnx_export.py" --family "${v%%_*}" --variant "$v" --weights "$work/$v.safetensors" \
             --out "$work/$v" 2> "$work/$v.log" | tail -1); then
    echo "$out"
    files=$(/usr/bin/python3 -c 'import json,sys; print(",".join(json.loads(sys.argv[1])["files"]))' "$out")
    compare=(--weights "$work/$v.safetensors" --torch-onnx "$files")
  else
    echo "{\"variant\": \"$v\", \"torch_onnx\": \"failed: $(grep -E 'Error|error' "$work/$v.log" | tail -1 | tr -d '"' | cut -c1-200)\"}"
  fi
  MLNETEXT_THREADS="$threads" "${bench[@]}" --threads "$threads" --reps "$reps" --serve-reps "$serve_reps" "${compare[@]}"
  for n in 1 8; do
    /usr/bin/python3 "$root/bench/backbone_bench.py" --family "${v%%_*}" --variant "$v" --mode forward --batch "$n" \
      --iters $([ "$n" = 1 ] && echo 10 || echo 3) --threads "$threads" 2> >(grep -v "If for" >&2)
  done
done
