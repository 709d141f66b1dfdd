#!/usr/bin/env python3
"""A lamp, as an espsim device process (protocol v1, docs/reference/device-process.md).

WebSocket: {"cmd":"status"} -> {"on":false,"clients":1}
           {"cmd":"set","on":true} -> {"ok":true,"on":true}, and {"event":"changed","on":true}
           to every other session.
HTTP:      GET /api/status -> {"on":false,"clients":1}; anything else -> 404.
Standard library only. Debug output goes to stderr (espsim logs it), never to stdout.
"""
import json
import sys

on = False          # RAM state: forgotten on reboot
sessions = set()


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def status():
    return {"on": on, "clients": len(sessions)}


def on_message(session, text):
    global on
    try:
        msg = json.loads(text)
        cmd = msg["cmd"]
    except (ValueError, KeyError, TypeError):
        out({"type": "send", "to": session, "json": {"error": "bad request"}, "label": "error"})
        return
    if cmd == "status":
        out({"type": "send", "to": session, "json": status(), "label": "status"})
    elif cmd == "set" and isinstance(msg.get("on"), bool):
        on = msg["on"]
        out({"type": "send", "to": session, "json": {"ok": True, "on": on}, "label": "ack"})
        out({"type": "send", "to": "all", "except": session,
             "json": {"event": "changed", "on": on}, "label": "changed"})
    else:
        out({"type": "send", "to": session, "json": {"error": "unknown cmd"}, "label": "error"})


def on_http(req):
    if req["method"] == "GET" and req["path"] == "/api/status":
        out({"type": "http_response", "id": req["id"], "status": 200, "json": status()})
    else:
        out({"type": "http_response", "id": req["id"], "status": 404,
             "headers": {"Content-Type": "text/plain"}, "body_text": "not found"})


def main():
    global on
    for line in sys.stdin:
        msg = json.loads(line)
        kind = msg["type"]
        if kind == "hello":
            if msg["version"] != 1:
                print(f"unsupported protocol version {msg['version']}", file=sys.stderr)
                sys.exit(1)
            out({"type": "ready"})
            out({"type": "log", "message": "python lamp ready"})
        elif kind == "session_opened":
            sessions.add(msg["session"])
        elif kind == "session_closed":
            sessions.discard(msg["session"])
        elif kind == "message" and "text" in msg:
            on_message(msg["session"], msg["text"])
        elif kind == "http_request":
            on_http(msg)
        elif kind == "reboot":
            on = False
            sessions.clear()
        # Anything else (binary messages, newer message types): ignored.


if __name__ == "__main__":
    main()
