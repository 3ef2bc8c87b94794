#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: installs the Debian packages MLNetExt needs when they are
# missing, then builds the native bridge (CMake) and the .NET solution in Release. Safe to run repeatedly.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# libtorch-dev: the engine; libopenblas0-pthread: fast BLAS (Debian's libtorch uses whatever provides
# libblas.so.3, and the reference BLAS is ~70x slower); libopenblas0-openmp: the OpenMP build, which the engine
# loads in preference (it shares libtorch's OpenMP threads; the system alternative is left alone);
# python3-torch: fixtures and benchmarks only.
# libturbojpeg0 libpng16-16 libwebp7 libgif7: image decoding (P/Invoke to their shared libraries);
# python3-torchvision: data fixtures and the loader benchmark; python3-onnx: the exporter's onnx.checker test;
# libgloo-dev: the headers of Gloo, the collective library of libtorch's c10d (distributed training).
packages=(libtorch-dev libgloo-dev libopenblas0-pthread libopenblas0-openmp cmake g++ python3-torch libturbojpeg0 libpng16-16 libwebp7 libgif7 python3-torchvision python3-onnx)
tools/install-debian-packages.sh "${packages[@]}"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup: the .NET SDK (dotnet, version 10) is required but not on PATH" >&2
  exit 1
fi

# ONNX Runtime and ML.NET come from NuGet with the solution's restore (Microsoft.ML.OnnxRuntime 1.32.0 for the native
# library): nothing to fetch here.

echo "setup: building the native bridge" >&2
cmake -S src/Native -B artifacts/native-build -DCMAKE_BUILD_TYPE=Release -DMLNETEXT_NATIVE_OUT="$root/artifacts/native" >/dev/null
cmake --build artifacts/native-build -j"$(nproc)" >/dev/null

echo "setup: building the solution (Release)" >&2
dotnet build MLNetExt.sln -c Release -nologo -v quiet -clp:ErrorsOnly
