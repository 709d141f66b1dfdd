#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer): builds every target in fuzz/, runs each for
# FUZZ_SECONDS (default 20: in CI the cold build is most of the time) and prints one line per
# target. Fails on any crash, hang or out-of-memory, and when a target could not be built or run.
#
#   scripts/fuzz.sh                      # every target, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh http_head dns_udp
#
# Seeds come from fuzz/corpus/TARGET (read-only here); what a run discovers goes to a temporary
# directory, so the checkout stays clean. A crash input is saved as fuzz/artifacts/TARGET/crash-*;
# replay it with `cargo +nightly fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-…`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
if ! [[ $seconds =~ ^[1-9][0-9]{0,4}$ ]]; then
  echo "FUZZ_SECONDS must be a whole number of seconds from 1 to 99999 (got '$seconds')" >&2
  exit 2
fi

# Tools, installed only when missing.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# No sanitizer: the code under test is safe Rust (`unsafe_code = "forbid"`), so AddressSanitizer
# would only halve the executions; panics, overflows (debug assertions are on), stack overflows
# and hangs are caught without it.
fuzz=(cargo +nightly fuzz)
flags=(--sanitizer none)

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <("${fuzz[@]}" list)
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no targets found" >&2
  exit 1
fi

echo "fuzz: building ${#targets[@]} targets"
"${fuzz[@]}" build "${flags[@]}"
# The build must use the committed lock file as it is.
if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- fuzz/Cargo.lock; then
  echo "fuzz: fuzz/Cargo.lock is out of date; run 'cargo +nightly fuzz build' and commit it" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
for target in "${targets[@]}"; do
  seeds="fuzz/corpus/$target"
  if [ ! -d "$seeds" ]; then
    summary+=("$(printf '%-18s FAILED: no seed corpus in %s' "$target" "$seeds")")
    failed+=("$target")
    continue
  fi
  mkdir -p "$work/$target" "fuzz/artifacts/$target"
  log="$work/$target.log"
  echo "fuzz: $target for ${seconds}s"
  status=0
  # -timeout: one input taking 20 s is a hang; -rss_limit_mb: a leak or huge allocation fails.
  "${fuzz[@]}" run "${flags[@]}" "$target" "$work/$target" "$seeds" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  corpus=$(find "$work/$target" -type f | wc -l)
  seeded=$(find "$seeds" -type f | wc -l)
  if [ "$status" -eq 0 ] && [ -n "$execs" ]; then
    summary+=("$(printf '%-18s ok      %10s execs  corpus %5s (%s seeds + %s new)' \
      "$target" "$execs" "$((seeded + corpus))" "$seeded" "$corpus")")
  else
    failed+=("$target")
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    # The panic message is on the line after "panicked at"; else libFuzzer's own verdict.
    reason=$(sed -n '/panicked at/{n;p;q}' "$log")
    if [ -z "$reason" ]; then
      reason=$(grep -m1 -oE 'ERROR: libFuzzer: .*|exited with signal.*' "$log" || true)
    fi
    summary+=("$(printf '%-18s FAILED  %10s execs  exit %s: %s  input: %s' \
      "$target" "${execs:-?}" "$status" "${reason:-see log}" "${artifact:-none}")")
    echo "---- $target: last 40 lines of the log ----"
    tail -n 40 "$log"
    echo "----"
  fi
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran without a crash"
