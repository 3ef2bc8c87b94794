#!/usr/bin/env bash
# Export time of the smallest variant of each landed family (or the variants given): eager forward at batch 2 and 3
# vs the traced ONNX export. Usage: bench/run-export-bench.sh [--threads N] [--reps R] [variant ...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads=$(nproc); reps=3; variants=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    *) variants+=("$1"); shift ;;
  esac
done
[ ${#variants[@]} -gt 0 ] || variants=(transxnet_t transnext_micro smt_t mixformer_b0)
dotnet build "$root/bench/ExportBench/ExportBench.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly >&2
for v in "${variants[@]}"; do
  dotnet "$root/artifacts/bin/ExportBench/release/ExportBench.dll" "$v" --threads "$threads" --reps "$reps"
done
