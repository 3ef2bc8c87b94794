#!/usr/bin/env bash
# Runs the whole test suite after the same set-up as the main job; the last line is "N passed, M failed".
#   ./test.sh          every test and the notebooks (what CI runs)
#   ./test.sh --fast   the fast tier: everything but the tests marked TestCategory("Slow") (end-to-end runs on real
#                      photos, sample programs, generated projects, multi-process downloads, full-size variants) and
#                      ("Soak") (memory-leak and fuzz loops), and the notebooks
# Other arguments go to `dotnet test` (e.g. --filter "FullyQualifiedName~Training").
set -uo pipefail
args=()
for a in "$@"; do
  if [ "$a" = "--fast" ]; then args+=(--filter "TestCategory!=Slow&TestCategory!=Soak"); else args+=("$a"); fi
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! ./tools/setup.sh; then
  echo "set-up or build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
dotnet test MLNetExt.sln -c Release --no-build -nologo ${args[@]+"${args[@]}"} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# VSTest summary lines: "Passed!  - Failed: 0, Passed: 42, Skipped: 0, Total: 42, ..." (one per test project)
read -r passed failed < <(grep -E '(Passed|Failed)! +- Failed: +[0-9]+, Passed: +[0-9]+' "$log" |
  sed -E 's/.*Failed: +([0-9]+), Passed: +([0-9]+).*/\2 \1/' | awk '{p+=$1; f+=$2} END {print p+0, f+0}')
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
# The whole suite also re-executes the notebooks (from clean kernels, one after another), each counted as a test.
if [ ${#args[@]} -eq 0 ]; then
  ./tools/run-notebooks.sh 2>&1 | tee "$log"
  nb_status=${PIPESTATUS[0]}
  read -r nb_passed nb_failed < <(sed -nE 's/^notebooks: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$log")
  nb_passed=${nb_passed:-0}
  nb_failed=${nb_failed:-0}
  if [ "$nb_status" -ne 0 ] && [ "$nb_failed" -eq 0 ]; then nb_failed=1; fi
  passed=$((passed + nb_passed))
  failed=$((failed + nb_failed))
  if [ "$nb_status" -ne 0 ]; then status=1; fi
fi
echo "$passed passed, $failed failed"
exit "$status"
