#!/usr/bin/env python3
"""WebSocket through a proxy, with the standard library only (used by scripts/services/selftest.sh).

  ws_check.py serve PORT        an echo backend: answers HTTP with its port (and the request
                                body, if any), and a WebSocket
                                upgrade with 101, then echoes each text frame as "PORT:payload"
  ws_check.py client URL_PORT   upgrades through 127.0.0.1:URL_PORT, checks the 101 and the
                                Sec-WebSocket-Accept, sends one masked text frame and expects the
                                echo; prints the backend's answer; exits non-zero on any mismatch
"""
import base64
import hashlib
import os
import socket
import socketserver
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def read_exact(f, n):
    data = f.read(n)
    if len(data) != n:
        raise EOFError("connection closed")
    return data


def read_frame(f):
    b1, b2 = read_exact(f, 2)
    opcode, masked, n = b1 & 0x0F, b2 & 0x80, b2 & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(f, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(f, 8))[0]
    mask = read_exact(f, 4) if masked else None
    payload = bytearray(read_exact(f, n))
    if mask:
        for i in range(n):
            payload[i] ^= mask[i % 4]
    return opcode, bytes(payload)


def frame(payload: bytes, opcode=1, mask=False):
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        request = self.rfile.readline()
        headers = {}
        while True:
            line = self.rfile.readline().decode("latin-1").strip()
            if not line:
                break
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        port = self.server.server_address[1]
        if headers.get("upgrade", "").lower() != "websocket":
            n = int(headers.get("content-length", "0") or 0)
            sent = self.rfile.read(n).decode("latin-1") if n else ""
            body = (f"backend {port}" + (f" body={sent}" if sent else "") + "\n").encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            return
        key = headers["sec-websocket-key"].encode()
        self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n")
        self.wfile.flush()
        while True:
            try:
                opcode, payload = read_frame(self.rfile)
            except EOFError:
                return
            if opcode == 8:
                self.wfile.write(frame(b"", opcode=8))
                return
            self.wfile.write(frame(f"{port}:".encode() + payload))
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def client(port: int) -> int:
    key = base64.b64encode(os.urandom(16))
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
    f = s.makefile("rb")
    status = f.readline().decode().strip()
    headers = {}
    while True:
        line = f.readline().decode("latin-1").strip()
        if not line:
            break
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if not status.startswith("HTTP/1.1 101"):
        print(f"expected 101, got {status!r}", file=sys.stderr)
        return 1
    if headers.get("sec-websocket-accept", "").encode() != accept_key(key):
        print("bad Sec-WebSocket-Accept", file=sys.stderr)
        return 1
    msg = b"hello through the proxy " + os.urandom(4).hex().encode()
    s.sendall(frame(msg, mask=True))
    opcode, payload = read_frame(f)
    backend, _, echoed = payload.partition(b":")
    if opcode != 1 or echoed != msg:
        print(f"bad echo: opcode {opcode} payload {payload!r}", file=sys.stderr)
        return 1
    s.sendall(frame(b"", opcode=8, mask=True))
    print(f"websocket ok via backend {backend.decode()}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        with Server(("127.0.0.1", int(sys.argv[2])), Handler) as srv:
            srv.serve_forever()
    elif len(sys.argv) == 3 and sys.argv[1] == "client":
        sys.exit(client(int(sys.argv[2])))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
