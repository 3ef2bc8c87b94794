#!/usr/bin/env bash
# INT8 (or, with --precision fp16, float16) against float32 exports of the smallest variant of each family (or the variants given), in ONNX Runtime with
# the same session options, alternating run by run: latency (batch 1), throughput (batch 8), size, and top-1 agreement
# over the hymenoptera photos (bench/QuantBench). --model FILE.safetensors measures a trained model instead (its
# accuracy too when the photos' folders are its classes).
# --calibrate DIR makes the INT8 model static (convolutions calibrated on the images under DIR, e.g. the hymenoptera
# training photos; the agreement is measured on --images, the validation photos by default).
# --spin: intra-op threads spinning, as ONNX Runtime, OnnxImageScorer and ML.NET's ApplyOnnxModel run by default (the
# models then alternate in blocks, not run by run; see QuantBench).
# Usage: bench/run-quant-bench.sh [--precision int8|fp16] [--calibrate DIR] [--threads N] [--reps R] [--images DIR] [--model FILE] [--spin] [variant ...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads=$(nproc); reps=20; precision=int8; variants=(); images="$root/../shared/data/hymenoptera/val"; model=""; calibrate=(); spin=()
while [ $# -gt 0 ]; do
  case "$1" in
    --precision) precision="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --images) images="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --calibrate) calibrate=(--calibrate "$2"); shift 2 ;;
    --spin) spin=(--spin); shift ;;
    *) variants+=("$1"); shift ;;
  esac
done
dotnet build "$root/bench/QuantBench/QuantBench.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly >&2
bench=(dotnet "$root/artifacts/bin/QuantBench/release/QuantBench.dll")
photos=(); [ -d "$images" ] && photos=(--images "$images")
if [ -n "$model" ]; then
  MLNETEXT_THREADS="$threads" "${bench[@]}" --model "$model" --precision "$precision" --threads "$threads" --reps "$reps" "${photos[@]}" "${calibrate[@]}" "${spin[@]}"
  exit
fi
[ ${#variants[@]} -gt 0 ] || variants=(transxnet_t transnext_micro smt_t mixformer_b0)
for v in "${variants[@]}"; do
  MLNETEXT_THREADS="$threads" "${bench[@]}" "$v" --precision "$precision" --threads "$threads" --reps "$reps" "${photos[@]}" "${calibrate[@]}" "${spin[@]}"
done
