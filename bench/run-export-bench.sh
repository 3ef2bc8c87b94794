#!/usr/bin/env bash
# Export time of the smallest variant of each landed family (or the variants given): eager forward at batch 2 and 3
# vs the traced ONNX export; then serving latency (batch 1) and throughput (batch 8): ONNX Runtime vs our libtorch
# eager (ExportBench) and vs Python torch eager on the official model (bench/backbone_bench.py --mode forward).
# Usage: bench/run-export-bench.sh [--threads N] [--reps R] [--artifacts DIR] [variant ...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads=$(nproc); reps=3; variants=(); artifacts="$root/artifacts"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --artifacts) artifacts="$2"; shift 2 ;;
    *) variants+=("$1"); shift ;;
  esac
done
[ ${#variants[@]} -gt 0 ] || variants=(transxnet_t transnext_micro smt_t mixformer_b0)
dotnet build "$root/bench/ExportBench/ExportBench.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly -p:ArtifactsPath="$artifacts" >&2
for v in "${variants[@]}"; do
  MLNETEXT_THREADS="$threads" dotnet "$artifacts/bin/ExportBench/release/ExportBench.dll" "$v" --threads "$threads" --reps "$reps"
  for n in 1 8; do
    /usr/bin/python3 "$root/bench/backbone_bench.py" --family "${v%%_*}" --variant "$v" --mode forward --batch "$n" \
      --iters $([ "$n" = 1 ] && echo 10 || echo 3) --threads "$threads" 2> >(grep -v "If for" >&2)
  done
done
