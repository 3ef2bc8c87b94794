#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: installs the Debian packages MLNetExt needs when they are
# missing, then builds the native bridge (CMake) and the .NET solution in Release. Safe to run repeatedly.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# libtorch-dev: the engine; libopenblas0-pthread: fast BLAS (Debian's libtorch uses whatever provides
# libblas.so.3, and the reference BLAS is ~70x slower); python3-torch: fixtures and benchmarks only.
# libturbojpeg0 libpng16-16 libwebp7 libgif7: image decoding (P/Invoke to their shared libraries);
# python3-torchvision: data fixtures and the loader benchmark; python3-onnx: the exporter's onnx.checker test.
packages=(libtorch-dev libopenblas0-pthread cmake g++ python3-torch libturbojpeg0 libpng16-16 libwebp7 libgif7 python3-torchvision python3-onnx)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup: the .NET SDK (dotnet, version 10) is required but not on PATH" >&2
  exit 1
fi

# ONNX Runtime (issue 7): libonnxruntime.so.1 comes from npm's onnxruntime-node package (the official Linux x64
# build; no NuGet package is obtainable). Fetched once into a per-user cache, where MLNetExt finds it (after an
# explicit path, $MLNETEXT_ONNXRUNTIME and the application directory). Set MLNETEXT_SKIP_ONNXRUNTIME=1 to skip.
# A failure here is reported but does not stop the build: only the ONNX Runtime tests and verbs need the library,
# and they say where they looked for it.
ort_version=1.30.0
ort_cache="${XDG_CACHE_HOME:-$HOME/.cache}/mlnetext/onnxruntime/$ort_version"
fetch_onnxruntime() {
  if ! command -v npm >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if ! apt-cache show npm >/dev/null 2>&1; then
      echo "setup: npm is needed once to obtain ONNX Runtime $ort_version, and the Debian npm package is not available" >&2
      return 1
    fi
    echo "setup: installing npm (needed once to obtain ONNX Runtime $ort_version)" >&2
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null || return 1
  fi
  echo "setup: obtaining ONNX Runtime $ort_version (npm pack onnxruntime-node@$ort_version, ~113 MB, once)" >&2
  local tmp member=package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  tmp="$(mktemp -d)"
  if ! ( cd "$tmp" && npm pack --silent "onnxruntime-node@$ort_version" >npm.log 2>&1 ) ||
     ! tar -xzf "$tmp/onnxruntime-node-$ort_version.tgz" -C "$tmp" "$member" 2>>"$tmp/npm.log" || [ ! -s "$tmp/$member" ]; then
    tail -n 5 "$tmp/npm.log" >&2 || true
    rm -rf "$tmp"
    return 1
  fi
  mkdir -p "$ort_cache"
  # Copy under a temporary name, then rename: an interrupted set-up never leaves a truncated library behind.
  cp "$tmp/$member" "$ort_cache/libonnxruntime.so.1.part"
  mv "$ort_cache/libonnxruntime.so.1.part" "$ort_cache/libonnxruntime.so.1"
  rm -rf "$tmp"
}
if [ "${MLNETEXT_SKIP_ONNXRUNTIME:-0}" != "1" ] && [ ! -f "$ort_cache/libonnxruntime.so.1" ]; then
  fetch_onnxruntime || echo "setup: WARNING: could not obtain ONNX Runtime $ort_version; the ONNX Runtime tests and run-onnx will fail until $ort_cache/libonnxruntime.so.1 exists (or MLNETEXT_ONNXRUNTIME names one)" >&2
fi

echo "setup: building the native bridge" >&2
cmake -S src/Native -B artifacts/native-build -DCMAKE_BUILD_TYPE=Release -DMLNETEXT_NATIVE_OUT="$root/artifacts/native" >/dev/null
cmake --build artifacts/native-build -j"$(nproc)" >/dev/null

echo "setup: building the solution (Release)" >&2
dotnet build MLNetExt.sln -c Release -nologo -v quiet -clp:ErrorsOnly
