#!/usr/bin/env bash
# The verdict matrix: replays the scenario library against two independent stand-in apps
# (tests/standin/python/app.py on `websockets`, tests/standin/node/app.js on `ws`) in a good
# variant and in variants that each break one rule, and checks every verdict against
# tests/standin/matrix.yaml: a good variant passes every scenario, a bad variant fails exactly
# the expectations listed for it. Exit 1 on any wrong verdict, on any run that could not run, or
# when a rule judged in the library is broken by no variant; 2 on a usage or spec error.
#
# Usage: scripts/verdict-matrix.sh [--reps N] [--jobs N]
#   --reps N   repeat every run N times (default: the spec's `reps:` per variant)
#   --jobs N   runs at once (default 10: the runs mostly wait on timers, not on the CPU)
# Needs the stand-ins' clients: bash scripts/install-test-clients.sh (Python venv, Node ws).
# Every run's report, log and exit status land in $ESPSIM_MATRIX_DIR (default
# target/verdict-matrix); each run is bounded by `timeout` (its scenario's duration + 30 s).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1

if [ "${1:-}" = "--run-one" ]; then
  # One job line from the plan: ID <TAB> TIMEOUT_S <TAB> SCENARIO <TAB> COMMAND.
  IFS=$'\t' read -r id limit scenario command <<<"$2"
  read -r -a argv <<<"$command"
  out="$3"
  rc=0
  timeout --kill-after=10 "$limit" "$4" test --json "$out/$id.json" "$scenario" -- "${argv[@]}" \
    >"$out/$id.out" 2>"$out/$id.log" || rc=$?
  echo "$rc" >"$out/$id.rc"
  printf '[verdict-matrix] %-60s exit %s\n' "$id" "$rc" >&2
  exit 0
fi

reps=()
jobs=10
while [ "$#" -gt 0 ]; do
  case "$1" in
    --reps) [ "$#" -ge 2 ] || { echo "--reps needs a value" >&2; exit 2; }; reps=(--reps "$2"); shift 2 ;;
    --jobs)
      [ "$#" -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]?$ ]] || { echo "--jobs needs 1-99" >&2; exit 2; }
      jobs="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

python=.venv/bin/python
[ -x "$python" ] || python=python3
for need in "$python" node timeout xargs; do
  command -v "$need" >/dev/null 2>&1 || { echo "verdict matrix: $need is missing (run scripts/install-test-clients.sh)" >&2; exit 1; }
done
# The stand-ins need their clients: a missing one would make every run of it fail, loudly.
.venv/bin/python -c 'import websockets' 2>/dev/null \
  || { echo "verdict matrix: .venv has no websockets (run scripts/install-test-clients.sh)" >&2; exit 1; }
[ -f tests/clients/node_modules/ws/package.json ] \
  || { echo "verdict matrix: tests/clients/node_modules/ws is missing (run scripts/install-test-clients.sh)" >&2; exit 1; }

cargo build --locked -q -p espsim --bin espsim
bin="$(cargo metadata --locked --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/espsim"

out="${ESPSIM_MATRIX_DIR:-target/verdict-matrix}"
rm -rf "$out"
mkdir -p "$out"
"$python" tests/standin/matrix.py plan tests/standin/matrix.yaml scenarios "$out" "${reps[@]}" >"$out/jobs.txt"
total=$(wc -l <"$out/jobs.txt")
echo "verdict matrix: $total runs, $jobs at a time (reports in $out)"

started=$(date +%s)
# Every job line becomes one `--run-one` call; xargs waits for all of them.
xargs -d '\n' -P "$jobs" -I{} bash "$0" --run-one {} "$out" "$bin" <"$out/jobs.txt"
wall=$(( $(date +%s) - started ))

status=0
"$python" tests/standin/matrix.py judge "$out" || status=$?
printf 'verdict matrix: wall time %dm%02ds for %s runs (%s at a time)\n' $((wall / 60)) $((wall % 60)) "$total" "$jobs"
exit "$status"
