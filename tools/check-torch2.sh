#!/usr/bin/env bash
# Builds the bridge against libtorch 2.x and runs the test suite on it, on this Debian 12 machine: a Debian 13
# (trixie) root made with debootstrap holds libtorch-dev 2.6 and its C++ runtime, the repository and .NET are bind-
# mounted into it. This is the API check for the GPU path (a CUDA PyTorch 2.x; src/Native/README.md) that costs no
# device time. Needs root, debootstrap and the Debian mirror; the root (~1.5 GB) stays in $TORCH2_ROOT for reruns.
# Usage: tools/check-torch2.sh [dotnet test arguments, e.g. --filter FullyQualifiedName~Distributed]
# Four tests pin libtorch 1.13 and fail on 2.x by design: RuntimeTests.ReportsVersionThreadsAndBlas (the version),
# RuntimeTests.DispatcherFillsDefaultsAndReturnsLists (a schema's text), MapperSchemaTests.
# TheFixtureAgreesWithTheLibtorchTheEngineLinks (the exporter's operator schemas, recorded from 1.13) and
# PackageTests.Pack_MakesOnePackage_AndItsReadmeProgramRunsInAFreshProject (the package carries the 1.13 bridge).
# Run `dotnet build MLNetExt.sln -c Release` first; do not build while it runs (the chroot reads the same artifacts/).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${TORCH2_ROOT:-/var/tmp/mlnetext-trixie}"
dotnet_dir="$(dirname "$(readlink -f "$(command -v dotnet)")")"
[ "$(id -u)" -eq 0 ] || { echo "error: tools/check-torch2.sh needs root (debootstrap, chroot, bind mounts)" >&2; exit 2; }

if [ ! -x "$target/usr/bin/g++" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  [ -d "$target/etc" ] || debootstrap --variant=minbase trixie "$target" http://deb.debian.org/debian >/dev/null
  cp /etc/resolv.conf "$target/etc/resolv.conf"
  chroot "$target" apt-get update -qq
  chroot "$target" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    libtorch-dev libgloo-dev cmake g++ make libopenblas0-openmp libturbojpeg0 libpng16-16t64 libwebp7 libgif7 >/dev/null
fi

# the same absolute paths inside, so the tests find ../shared and the build outputs where they were built
# (and this machine's certificates and NuGet cache, for the tests that restore packages)
mounts=(/proc /dev /etc/ssl/certs "$dotnet_dir" "$HOME/.nuget" "$repo" "$(dirname "$repo")/shared")
cleanup() {
  chroot "$target" dotnet build-server shutdown >/dev/null 2>&1 || true   # the package tests leave build servers
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "$target${mounts[i]}" 2>/dev/null || umount -l "$target${mounts[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
for m in "${mounts[@]}"; do
  [ -e "$m" ] || continue
  mkdir -p "$target$m"
  mountpoint -q "$target$m" || mount --bind "$m" "$target$m"
done
ln -sf "$dotnet_dir/dotnet" "$target/usr/bin/dotnet"

chroot "$target" /bin/sh -c "cmake -S '$repo/src/Native' -B /tmp/native-build -DCMAKE_BUILD_TYPE=Release \
  -DMLNETEXT_NATIVE_OUT=/tmp/native > /tmp/native-build.log 2>&1 && cmake --build /tmp/native-build -j \$(nproc) >> /tmp/native-build.log 2>&1" \
  || { grep -m 20 -A5 -i error "$target/tmp/native-build.log" >&2; echo "error: the bridge did not build against libtorch 2.x" >&2; exit 1; }
echo "bridge built against libtorch $(chroot "$target" dpkg-query -W -f='${Version}' libtorch-dev)"
chroot "$target" env MLNETEXT_NATIVE=/tmp/native/libmlnetext_native.so DOTNET_CLI_TELEMETRY_OPTOUT=1 \
  dotnet test "$repo/tests/MLNetExt.Tests" -c Release --no-build --blame-hang-timeout 4min "$@"
