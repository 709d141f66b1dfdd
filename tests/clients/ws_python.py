"""Python `websockets` (asyncio client) against a device URL; prints ONE JSON line of what it saw.

usage: ws_python.py URL MODE [LIMIT_SECONDS] [OPEN_TIMEOUT_SECONDS]
  session    open, send hello, wait for welcome, app ping -> pong, close 1000
  hold       open, send hello, then read until the connection ends (or LIMIT)
  keepalive  like hold, with a fast keepalive (ping every 0.5 s, pong timeout 1 s, close timeout 1 s)
OPEN_TIMEOUT_SECONDS is `open_timeout` (default 5 here; the library's default is 10).
The line: {"client","version","opened","received":[types],"close_code","close_reason",
"error":{"type","message","cause":[...]} | null,"ended_by","elapsed_ms"}.
"""

import asyncio
import json
import sys
import time

import websockets
from websockets.asyncio.client import connect


def describe(exc):
    causes = []
    inner = exc.__cause__ or exc.__context__
    while inner is not None and len(causes) < 5:
        causes.append(f"{type(inner).__name__}: {inner}")
        inner = inner.__cause__ or inner.__context__
    return {"type": type(exc).__name__, "message": str(exc), "cause": causes}


async def main(url, mode, limit, open_timeout):
    out = {
        "client": "python-websockets",
        "version": websockets.__version__,
        "opened": False,
        "received": [],
        "close_code": None,
        "close_reason": None,
        "error": None,
        "ended_by": None,
    }
    options = {"open_timeout": open_timeout, "close_timeout": 1}
    if mode == "keepalive":
        options.update(ping_interval=0.5, ping_timeout=1)
    ws = None
    try:
        try:
            ws = await connect(url, **options)
        except TimeoutError as exc:
            # The library's own open_timeout, not this script's LIMIT: report it as an error.
            out["ended_by"] = "error"
            out["error"] = describe(exc)
            return out
        out["opened"] = True
        await ws.send(json.dumps({"type": "hello", "client": "python-websockets", "version": "1"}))
        deadline = time.monotonic() + limit
        if mode == "session":
            welcome = json.loads(await asyncio.wait_for(ws.recv(), limit))
            out["received"].append(welcome.get("type"))
            await ws.send(json.dumps({"type": "ping", "seq": 1}))
            for _ in range(20):
                msg = json.loads(await asyncio.wait_for(ws.recv(), limit))
                out["received"].append(msg.get("type"))
                if msg.get("type") == "pong":
                    break
            await ws.close(1000, "done")
            out["ended_by"] = "client"
        else:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    out["ended_by"] = "limit"
                    break
                msg = await asyncio.wait_for(ws.recv(), left)
                try:
                    out["received"].append(json.loads(msg).get("type"))
                except (ValueError, AttributeError):
                    out["received"].append("<non-json>")
    except asyncio.TimeoutError:
        out["ended_by"] = "limit"
    except websockets.exceptions.ConnectionClosed as exc:
        out["ended_by"] = "server_or_network"
        out["error"] = describe(exc)
    except Exception as exc:  # noqa: BLE001 - the point is to report whatever the client raises
        out["ended_by"] = "error"
        out["error"] = describe(exc)
    if ws is not None:
        # Read before our own close (at the limit the connection is still open: both null).
        out["close_code"] = ws.close_code
        out["close_reason"] = ws.close_reason
        if out["ended_by"] == "limit":
            await ws.close(1000, "limit")
    return out


if __name__ == "__main__":
    url, mode = sys.argv[1], sys.argv[2]
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    open_timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
    started = time.monotonic()
    result = asyncio.run(main(url, mode, limit, open_timeout))
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    print(json.dumps(result), flush=True)
