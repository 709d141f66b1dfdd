#!/usr/bin/env python3
"""A minimal app for the phone scenarios (stdlib only): opens the WebSocket at $ESPSIM_WS_URL
with a 5 s connect timeout, says "Connected to the device", closes with 1000 and waits for the
device's close frame. If it cannot, it tells the user so on stderr and exits 0 (it handled it).

  --bind-wifi  bind the socket to wlan0 first (SO_BINDTODEVICE: what Network.bindSocket(wifi)
               does on Android), so it leaves over the Wi-Fi whatever the default network is
  --silent     tell the user nothing (an app that just spins)
"""
import base64
import os
import socket
import struct
import sys
from urllib.parse import urlsplit

BIND = "--bind-wifi" in sys.argv
SILENT = "--silent" in sys.argv
CONNECT_TIMEOUT = 5.0


def tell(message, stream=sys.stdout):
    if not SILENT:
        print(message, file=stream, flush=True)


def read_frame(sock, buf):
    """Returns (opcode, payload, rest) of the next frame, reading more as needed."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("the device closed the connection")
            buf += chunk
    need(2)
    opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
    at = 2
    if length == 126:
        need(4)
        length, at = struct.unpack("!H", buf[2:4])[0], 4
    elif length == 127:
        need(10)
        length, at = struct.unpack("!Q", buf[2:10])[0], 10
    need(at + length)
    return opcode, buf[at:at + length], buf[at + length:]


def main():
    url = urlsplit(os.environ["ESPSIM_WS_URL"])
    host, port, path = url.hostname, url.port or 80, url.path or "/"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if BIND:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"wlan0")
    sock.settimeout(CONNECT_TIMEOUT)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("the device closed the connection during the handshake")
        head += chunk
    status, _, rest = head.partition(b"\r\n\r\n")
    if not status.startswith(b"HTTP/1.1 101"):
        raise OSError("the device refused the WebSocket: " + status.split(b"\r\n")[0].decode())
    tell("Connected to the device")
    mask = os.urandom(4)
    code = struct.pack("!H", 1000)
    sock.sendall(bytes([0x88, 0x80 | len(code)]) + mask
                 + bytes(b ^ mask[i % 4] for i, b in enumerate(code)))
    while True:
        opcode, _, rest = read_frame(sock, rest)
        if opcode == 0x8:
            break
    sock.close()


try:
    main()
except OSError as e:
    tell(f"Cannot reach the device: check that Wi-Fi is connected to the device's network ({e})",
         sys.stderr)
