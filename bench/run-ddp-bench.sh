#!/usr/bin/env bash
# Data-parallel scaling on this machine: the same training (variant, size, global batch, epochs, seed) with one process
# and with N worker processes (`train --nproc N`), every process with 1 libtorch thread and 1 loader thread, so the
# ratio measures what the extra processes (and the gradient all-reduce between them) bring. Throughput is the images/s
# of the last epoch in metrics.json (the first includes start-up); wall time is the whole command.
# --sync-bn passes --sync-bn to both runs (synchronised BatchNorm; no effect on the single process).
# Usage: bench/run-ddp-bench.sh [--nproc N] [--variant V] [--image-size S] [--batch-size B] [--epochs E] [--data DIR] [--sync-bn]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nproc=2; extra=(); variant=mixformer_b0; size=128; batch=16; epochs=2; data="$root/../shared/data/hymenoptera"
while [ $# -gt 0 ]; do
  case "$1" in
    --nproc) nproc="$2"; shift 2 ;;
    --variant) variant="$2"; shift 2 ;;
    --image-size) size="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --sync-bn) extra+=(--sync-bn); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run() {  # $1 = processes
  local start end
  start=$(date +%s.%N)
  "$root/mlnetext" train --data "$data" --variant "$variant" --image-size "$size" --batch-size "$batch" --epochs "$epochs" \
    --threads 1 --workers 1 --nproc "$1" --seed 0 --output "$work/p$1" --plain --no-export ${extra[@]+"${extra[@]}"} > "$work/p$1.log" 2>&1
  end=$(date +%s.%N)
  /usr/bin/python3 - "$work/p$1/metrics.json" "$start" "$end" "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(json.dumps({"processes": int(sys.argv[4]), "wall_s": round(float(sys.argv[3]) - float(sys.argv[2]), 1),
                  "last_epoch_img_s": round(m["epochs"][-1]["images_per_second"], 2),
                  "val_top1": (m["epochs"][-1].get("val") or {}).get("top1")}))
PY
}
echo "{\"date\": \"$(date -u +%FT%TZ)\", \"cpus\": $(nproc), \"load\": \"$(cut -d' ' -f1 /proc/loadavg)\", \"variant\": \"$variant\", \"image_size\": $size, \"global_batch\": $batch, \"epochs\": $epochs, \"sync_bn\": $([ ${#extra[@]} -gt 0 ] && echo true || echo false)}"
one=$(run 1); echo "$one"
many=$(run "$nproc"); echo "$many"
/usr/bin/python3 -c 'import json,sys; a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2]); print(json.dumps({"throughput_ratio": round(b["last_epoch_img_s"]/a["last_epoch_img_s"],2), "wall_ratio": round(a["wall_s"]/b["wall_s"],2)}))' "$one" "$many"
