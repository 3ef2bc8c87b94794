#!/usr/bin/env bash
# ML.NET scoring of a trained model's model.zip against MLNetExt's own scorer (model.onnx), on the same images:
# framing (mean absolute pixel difference, top-1 agreement) and speed (PredictionEngine, batch Transform, MLNetExt's
# batched ONNX Runtime scorer). Without --model it first fine-tunes the demo's small SMT on the hymenoptera photos
# at 224 (kept in artifacts/mlnet-bench-model-SIZE, reused on later runs).
# Usage: bench/run-mlnet-bench.sh [--model DIR] [--data DIR] [--image-size S] [--epochs N] [--images N] [--rounds R] [--artifacts DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="$root/../shared/data/hymenoptera"; model=""; size=224; epochs=30; images=64; rounds=3; artifacts="$root/artifacts"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --image-size) size="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --images) images="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --artifacts) artifacts="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
val="$data"; [ -d "$data/val" ] && val="$data/val"
if [ -z "$model" ]; then
  model="$artifacts/mlnet-bench-model-$size"
  if [ ! -f "$model/model.zip" ]; then
    config="$(mktemp)"
    trap 'rm -f "$config"' EXIT
    # the demo's small SMT (official constructor arguments), trained from scratch: no pretrained weights offline
    echo '{"embed_dims": [32, 64, 128, 256], "ca_num_heads": [4, 4, 4, -1], "sa_num_heads": [-1, -1, 8, 16], "mlp_ratios": [4, 4, 4, 2], "qkv_bias": true, "depths": [1, 1, 2, 1], "ca_attentions": [1, 1, 1, 0], "head_conv": 3, "expand_ratio": 2}' > "$config"
    "$root/mlnetext" train --data "$data" --arch smt --config "$config" --image-size "$size" --epochs "$epochs" --batch-size 32 \
      --output "$model" --plain >&2
  fi
fi
dotnet build "$root/bench/MLNetBench/MLNetBench.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly -p:ArtifactsPath="$artifacts" >&2
bench="$artifacts/bin/MLNetBench/release/MLNetBench.dll"
dotnet "$bench" agreement --model "$model" --data "$val"
dotnet "$bench" speed --model "$model" --data "$val" --images "$images" --rounds "$rounds"
