#!/usr/bin/env bash
# Executes every notebook in notebooks/ from a clean kernel, one after another (two .NET Interactive kernels at once
# collide on their HTTP port); a failing cell fails its notebook. Installs what it needs: Debian's jupyter-nbconvert
# and the .NET Interactive tool of the repository's tool manifest (dotnet-tools.json).
#   tools/run-notebooks.sh            execute into a temporary folder; the repository's notebooks stay as they are
#   tools/run-notebooks.sh --update   store the executed notebooks, outputs included, in notebooks/
# The last line is "notebooks: N passed, M failed"; the exit code is non-zero when one failed.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
update=0
[ "${1:-}" = "--update" ] && update=1

tools/install-debian-packages.sh jupyter-nbconvert
dotnet tool restore >/dev/null

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# the kernel spec, written here (jupyter kernelspec is not needed): C# through the manifest's dotnet-interactive
mkdir -p "$work/kernels/.net-csharp"
cat > "$work/kernels/.net-csharp/kernel.json" <<'JSON'
{"argv":["dotnet","tool","run","dotnet-interactive","--","jupyter","--default-kernel","csharp","--http-local-only","{connection_file}"],
 "display_name":".NET (C#)","language":"C#"}
JSON
export JUPYTER_PATH="$work" DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

passed=0
failed=0
for nb in notebooks/*.ipynb; do
  start=$(date +%s)
  if [ $update -eq 1 ]; then target=(--inplace); else target=(--output-dir "$work/out"); fi
  if jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
       --ExecutePreprocessor.kernel_name=.net-csharp "${target[@]}" "$nb" > "$work/log" 2>&1; then
    passed=$((passed + 1))
    echo "notebook $nb: ok in $(( $(date +%s) - start )) s"
  else
    failed=$((failed + 1))
    echo "notebook $nb: FAILED after $(( $(date +%s) - start )) s"
    grep -v "^info: \|^      " "$work/log" | tail -25
  fi
done
echo "notebooks: $passed passed, $failed failed"
[ $failed -eq 0 ]
