#!/usr/bin/env bash
# Replays the scenario library (scenarios/*.yaml) as CI does: every file with the built-in good
# client (every expectation must hold) and with each client profile in its `catches:` (exactly
# the named expectation must fail). Runs several at a time; the whole replay must stay under
# 5 minutes. Reports land in $ESPSIM_REPORT_DIR (default target/scenario-reports).
# Usage: scripts/replay-scenarios.sh [SCENARIO...]   (default: scenarios/*.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."

out="${ESPSIM_REPORT_DIR:-target/scenario-reports}"
mkdir -p "$out"
if [ "$#" -eq 0 ]; then
  set -- scenarios/*.yaml
fi

cargo build --locked -q -p espsim --bin espsim
bin="$(cargo metadata --locked --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/espsim"

timeout --kill-after=10 300 "$bin" test --check-catches --jobs "${ESPSIM_JOBS:-6}" \
  --junit "$out/catches.xml" --json "$out/catches.json" --events "$out/events.jsonl" "$@"
