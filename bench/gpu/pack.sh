#!/usr/bin/env bash
# Makes .gpu/, the folder a device call carries for bench/gpu/run.sh (see bench/gpu/README.md): TrainBench published
# self-contained for linux-x64 (the GPU machine has no .NET; its bridge is built there against its own libtorch),
# and the official model files the Python side builds from, read from the `fetch` tool's mirrors. .gitignore keeps
# .gpu/ out of the repository (the device tool carries only ignored paths; the official code is not ours to commit).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
pack="$root/.gpu"
mirrors="${MIRRORS:-/work/.mirror}"
limit_mb=48   # the device tool carries 64 MiB with the working tree (about 11 MB)

rm -rf "$pack"
mkdir -p "$pack"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "publishing TrainBench (self-contained, linux-x64)" >&2
dotnet publish bench/TrainBench -c Release -r linux-x64 --self-contained -nologo -v q -o "$tmp/trainbench" >&2
# Built against Debian's libtorch 1.13 and found through MLNETEXT_NATIVE anyway; run.sh builds the device's own.
rm -f "$tmp/trainbench/libmlnetext_native.so"
tar -C "$tmp" -cf - trainbench | xz -T0 -6 > "$pack/trainbench.tar.xz"

# family, mirror folder, files the reference builder reads (tests/fixtures/<family>/reference.py)
while read -r family repo files; do
  for f in ${files//,/ }; do
    mkdir -p "$pack/official/$family/$(dirname "$f")"
    git -C "$mirrors/$repo/repo" show "HEAD:$f" > "$pack/official/$family/$f" \
      || { echo "error: $f is not in $mirrors/$repo (fetch it with the fetch tool: see the family's reference.py)" >&2; exit 1; }
  done
done <<'EOF'
transxnet LMMMEng+TransXNet models/transxnet.py
transnext DaiShiResearch+TransNeXt classification/transnext.py,classification/attention_native.py
smt AFeng-x+SMT models/smt.py
mixformer juniorkowal+mixformer-lambdalayers models/mixformer_pytorch.py
EOF

mb=$(( $(du -sb "$pack" | cut -f1) / 1000000 ))
echo "$pack: $mb MB" >&2
if (( mb > limit_mb )); then
  echo "error: $pack is $mb MB; with the working tree it must stay under the device tool's 64 MiB (limit here $limit_mb MB)" >&2
  exit 1
fi
