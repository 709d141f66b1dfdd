"""Python `websockets` plays a scripted conversation with a device; prints ONE JSON line.

usage: conversation_python.py URL SCRIPT_JSON
SCRIPT_JSON is a list of steps, run in order, each with "conn" (a connection index, default 0):
  {"open": true}            open connection `conn` (5 s open timeout)
  {"open": "/path"}         ... on another path of the same host
  "subprotocols": [...]     (with "open") offer these; records {"conn","subprotocol"}
  {"text": "..."}           send a text message
  {"hex": "a501"}           send a binary message
  {"recv": N}               receive N messages (5 s each)
  {"recv_close": true}      read until the device closes; record the close code and reason
The line: {"client","received":[{"conn","text"|"hex"} | {"conn","close_code","close_reason"}],
"error": null | "<type>: <message>"}.
"""

import asyncio
import json
import sys
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

WAIT = 5


async def main(url, script):
    out = {"client": "python-websockets", "received": [], "error": None}
    conns = {}
    try:
        for step in script:
            i = step.get("conn", 0)
            if "open" in step:
                target = url
                if isinstance(step["open"], str):
                    target = urlunsplit(urlsplit(url)._replace(path=step["open"]))
                offered = step.get("subprotocols")
                conns[i] = await connect(target, open_timeout=WAIT, subprotocols=offered)
                if offered is not None:
                    out["received"].append({"conn": i, "subprotocol": conns[i].subprotocol})
            elif "text" in step:
                await conns[i].send(step["text"])
            elif "hex" in step:
                await conns[i].send(bytes.fromhex(step["hex"]))
            elif "recv" in step:
                for _ in range(step["recv"]):
                    message = await asyncio.wait_for(conns[i].recv(), WAIT)
                    if isinstance(message, bytes):
                        out["received"].append({"conn": i, "hex": message.hex()})
                    else:
                        out["received"].append({"conn": i, "text": message})
            elif "recv_close" in step:
                try:
                    while True:
                        await asyncio.wait_for(conns[i].recv(), WAIT)
                except ConnectionClosed as closed:
                    frame = closed.rcvd
                    out["received"].append({
                        "conn": i,
                        "close_code": frame.code if frame else None,
                        "close_reason": frame.reason if frame else None,
                    })
    except Exception as exc:  # report what the app would see, whatever it is
        out["error"] = f"{type(exc).__name__}: {exc}"
    for ws in conns.values():
        await ws.close()
    print(json.dumps(out), flush=True)


asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
