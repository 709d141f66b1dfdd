#!/usr/bin/env bash
# Reproducible espsim benchmarks: installs the reference tools (dnsperf, dnsmasq, wrk, nginx),
# builds espsim and the load generator in release mode, raises the open-file limit and prints
# the markdown report on stdout (progress on stderr).
#
#   bash bench/run.sh                 # full run: 5 runs per measurement, medians
#   bash bench/run.sh --runs 3        # any espsim-bench flag is passed through (see --help)
#   bash bench/run.sh --quick         # tiny load, checks the tooling works
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in dnsperf:dnsperf dnsmasq:dnsmasq-base wrk:wrk nginx:nginx-light; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq >/dev/null
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null \
    || apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${need[@]/nginx-light/nginx}" >/dev/null
fi

cargo build --release --locked -p espsim -p espsim-bench >&2

# 1,000 idle connections need 2,000+ descriptors (client and server side).
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec target/release/espsim-bench --espsim target/release/espsim "$@"
