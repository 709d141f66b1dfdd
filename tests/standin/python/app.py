"""A stand-in app for the verdict matrix: what a careful Python team writes against the device.

Written from the docs only (docs/reference/protocol.md, docs/guides/ci.md), with asyncio and
`websockets` (the venv of scripts/install-test-clients.sh). It finds the device in
ESPSIM_WS_URL and behaves like a real app's connection manager:

- connect timeout (TCP + upgrade + `welcome`) of 2.5 s;
- exponential backoff with FULL jitter and a cap: the n-th retry waits U(0, min(4 s, 0.5 s x 2^(n-1)));
- `hello` as the first message; the session counts as up when `welcome` arrives;
- heartbeat with app-level messages: `{"type":"ping","id":N,"seq":N}` every 1 s; a `pong` must
  come back within 1 s, otherwise the link is declared dead, dropped and re-established;
- leaving (SIGTERM / SIGINT, or ESPSIM_DURATION_MS after start): close 1000, wait for the
  close handshake (at most 0.8 s), exit 0.

`--variant NAME` breaks exactly one of those rules (see VARIANTS). `--seed N` seeds the jitter
(default: random). What the app does is printed as JSON lines on stdout.
"""

import time

# The app's clock starts before its imports: ESPSIM_DURATION_MS counts from here.
START = time.monotonic()

import argparse  # noqa: E402 (after the clock on purpose)
import asyncio
import json
import os
import random
import signal
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

BASE_S = 0.5
CAP_S = 4.0
CONNECT_TIMEOUT_S = 2.5
HEARTBEAT_S = 1.0
PONG_TIMEOUT_S = 1.0
CLOSE_TIMEOUT_S = 0.8
# Longest a run may ask for by ESPSIM_DURATION_MS (the scenario format's own bound is 1 h).
MAX_DURATION_MS = 3_600_000

# Each bad variant changes one setting of the good app.
VARIANTS = {
    "good": {},
    "no-backoff": {"retry": "immediate"},  # retries at once (20 ms: a storm, not a busy loop)
    "constant-delay": {"retry": "constant"},  # every 1 s +- 20 %
    "no-cap": {"cap": None},  # doubling without a cap
    "no-jitter": {"jitter": False},  # deterministic doubling
    "no-heartbeat": {"heartbeat": False},
    "slow-detect": {"pong_timeout": 3 * PONG_TIMEOUT_S},  # gives up on a dead link 3x too late
    "no-close": {"close": False},  # leaves without a close frame
    "gives-up": {"give_up_after": 2},  # stops retrying after 2 failed attempts in a row
    "two-connections": {"connections": 2},  # opens a second socket once connected
    "no-hello": {"hello": False},  # never sends `hello`
    "no-timeout": {"connect_timeout": None},  # waits forever for a connect/upgrade/welcome
}

def log(event, **fields):
    line = {"at_ms": int((time.monotonic() - START) * 1000), "app": "standin-python", "event": event}
    line.update(fields)
    print(json.dumps(line), flush=True)


class Settings:
    def __init__(self, variant, seed):
        changes = VARIANTS[variant]
        self.variant = variant
        self.retry = changes.get("retry", "exponential")
        self.cap = changes.get("cap", CAP_S)
        self.jitter = changes.get("jitter", True)
        self.heartbeat = changes.get("heartbeat", True)
        self.pong_timeout = changes.get("pong_timeout", PONG_TIMEOUT_S)
        self.close = changes.get("close", True)
        self.give_up_after = changes.get("give_up_after")
        self.connections = changes.get("connections", 1)
        self.hello = changes.get("hello", True)
        self.connect_timeout = changes.get("connect_timeout", CONNECT_TIMEOUT_S)
        self.rng = random.Random(seed)

    def delay(self, step):
        """Seconds to wait before retry number `step` (>= 1) of a run of retries."""
        if self.retry == "immediate":
            return 0.02
        if self.retry == "constant":
            return self.rng.uniform(0.8, 1.2)
        ceiling = BASE_S * 2 ** min(step - 1, 30)
        if self.cap is not None:
            ceiling = min(self.cap, ceiling)
        return self.rng.uniform(0, ceiling) if self.jitter else ceiling


class Stop:
    """The app's one shutdown signal."""

    def __init__(self):
        self.event = asyncio.Event()

    async def sleep(self, seconds):
        """Sleeps `seconds`; True when stopped meanwhile."""
        try:
            await asyncio.wait_for(self.event.wait(), seconds)
            return True
        except TimeoutError:
            return False


async def open_session(url, settings, name, ids):
    """Connects, sends hello and waits for welcome, all within the connect timeout."""

    async def handshake():
        ws = await connect(url, open_timeout=None, ping_interval=None,
                           close_timeout=CLOSE_TIMEOUT_S, max_size=1 << 20)
        try:
            if not settings.hello:
                return ws
            await ws.send(json.dumps({"type": "hello", "id": next(ids), "client": name,
                                      "version": "1.0"}))
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "welcome":
                    log("ready", conn=name, device_id=msg.get("device_id"))
                    return ws
                if msg.get("type") == "error":
                    raise ConnectionError(f"device refused hello: {msg.get('code')}")
            raise ConnectionError("closed before welcome")
        except BaseException:
            ws.transport.abort()
            raise

    if settings.connect_timeout is None:
        return await handshake()
    return await asyncio.wait_for(handshake(), settings.connect_timeout)


async def run_session(ws, settings, stop, ids):
    """Serves one session until it ends; returns "stop" (time to leave) or why it was lost."""
    outstanding = {}  # seq -> monotonic time the ping left
    dead = asyncio.Event()

    async def reader():
        async for raw in ws:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            seq = msg.get("seq")
            if msg.get("type") == "pong" and isinstance(seq, int):
                # A pong answers its ping and every older one still waiting.
                for k in [k for k in outstanding if k <= seq]:
                    del outstanding[k]

    async def pinger():
        seq = 0
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            seq += 1
            outstanding[seq] = time.monotonic()
            await ws.send(json.dumps({"type": "ping", "id": next(ids), "seq": seq}))

    async def watchdog():
        while True:
            await asyncio.sleep(0.05)
            if outstanding and time.monotonic() - min(outstanding.values()) > settings.pong_timeout:
                dead.set()
                return

    tasks = {
        asyncio.ensure_future(reader()): "closed",
        asyncio.ensure_future(stop.event.wait()): "stop",
        asyncio.ensure_future(dead.wait()): "dead_link",
    }
    if settings.heartbeat:
        tasks[asyncio.ensure_future(pinger())] = "send_failed"
        tasks[asyncio.ensure_future(watchdog())] = "dead_link"
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    # Time to leave wins over anything that happened at the same moment.
    finished = min(done, key=lambda t: tasks[t] != "stop")
    why = tasks[finished]
    if why == "closed" and finished.exception() is None:
        why = f"closed by the device ({ws.close_code})"
    elif finished.exception() is not None:
        why = f"{why}: {type(finished.exception()).__name__}: {finished.exception()}"
    return why


async def leave(ws, settings):
    """Time to go: close 1000 and wait for the device's close frame (bounded)."""
    if not settings.close:
        log("leaving_without_close")
        os._exit(0)
    try:
        await asyncio.wait_for(ws.close(code=1000, reason="bye"), CLOSE_TIMEOUT_S + 0.2)
        log("closed", code=1000, device_code=ws.close_code)
    except (TimeoutError, WebSocketException, OSError) as e:
        log("close_failed", error=f"{type(e).__name__}: {e}")
        ws.transport.abort()


async def connection_manager(url, settings, stop, name, ids, on_ready=None):
    """Connects, serves, reconnects with backoff, until told to stop."""
    retries = 0  # backoff step: waits so far in this run of retries
    failed = 0  # failed attempts since the last session (what giving up counts)
    while not stop.event.is_set():
        log("attempt", conn=name, retries=retries)
        try:
            connecting = asyncio.ensure_future(open_session(url, settings, name, ids))
            stopping = asyncio.ensure_future(stop.event.wait())
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not connecting.done():
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
                return
            ws = connecting.result()
        except (OSError, TimeoutError, WebSocketException, ConnectionError, ValueError) as e:
            failed += 1
            retries += 1
            log("failed", conn=name, failed=failed, error=f"{type(e).__name__}: {e}")
            if settings.give_up_after is not None and failed >= settings.give_up_after:
                log("giving_up", conn=name, failed=failed)
                await stop.event.wait()
                return
            delay = settings.delay(retries)
            log("backoff", conn=name, retries=retries, delay_ms=int(delay * 1000))
            if await stop.sleep(delay):
                return
            continue
        retries = failed = 0
        if on_ready is not None:
            on_ready()
            on_ready = None
        why = await run_session(ws, settings, stop, ids)
        if why == "stop":
            await leave(ws, settings)
            return
        log("lost", conn=name, why=why)
        ws.transport.abort()
        # After a lost session the first retry waits the first backoff step.
        retries = 1
        delay = settings.delay(retries)
        log("backoff", conn=name, retries=retries, delay_ms=int(delay * 1000))
        if await stop.sleep(delay):
            return


def counter():
    n = 0
    while True:
        n += 1
        yield n


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="good", choices=sorted(VARIANTS))
    parser.add_argument("--seed", type=int, default=None, help="seeds the jitter (default: random)")
    args = parser.parse_args()
    url = os.environ.get("ESPSIM_WS_URL")
    if not url:
        print("standin-python: ESPSIM_WS_URL is not set (run me under `espsim test`)", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    settings = Settings(args.variant, seed)
    stop = Stop()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.event.set)
    duration = os.environ.get("ESPSIM_DURATION_MS")
    if duration:
        try:
            ms = int(duration)
        except ValueError:
            print(f"standin-python: ESPSIM_DURATION_MS is not a number: {duration!r}", file=sys.stderr)
            return 2
        if not 0 < ms <= MAX_DURATION_MS:
            print(f"standin-python: ESPSIM_DURATION_MS {ms} out of range (1..{MAX_DURATION_MS})",
                  file=sys.stderr)
            return 2
        loop.call_later(max(0.0, ms / 1000 - (time.monotonic() - START)), stop.event.set)
    log("start", url=url, variant=args.variant, seed=seed)
    ids = counter()
    managers = []

    def second_connection():
        log("opening_second_connection")
        managers.append(asyncio.ensure_future(
            connection_manager(url, settings, stop, "second", ids)))

    on_ready = second_connection if settings.connections == 2 else None
    await connection_manager(url, settings, stop, "main", ids, on_ready)
    await asyncio.gather(*managers)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
