#!/usr/bin/env python3
"""Latency of history reads while something else loads the server.

    python3 bench/rest_probe.py --url http://127.0.0.1:5000 --users-file users.txt \\
        [--duration 6] [--interval-ms 50] [--delay 0] [--write | --mark-read | --users-list]

Takes the first two users of a chat-bench users file (`<_id> <token>` lines, as
`chat-bench dm --users-file` writes them), and as the first one, on one keep-alive connection,
reads the conversation with the second (`GET /api/messages/<id>`, the newest page) every
interval for `duration` seconds, after `delay` seconds. With --write it updates the first
user's bio instead (`PUT /api/v1/auth/update-profile`, a synchronous store write). With
--users-list it reads the first user's users list instead (`GET /api/messages/users`: every
user with presence, and the conversation summaries: last message, unread count). With
--mark-read it sends `markRead` {peerId: second, upTo: ffff...} with an ack over a Socket.IO
WebSocket instead (the read position a chat client moves, clamped by the server to the newest
message; the ack waits for the store's write). Prints the latency percentiles and one
line `RESULT {json}`; exits 1 on a response other than 200. Run it next to a `chat-bench dm`
run against the same server (docs/PERFORMANCE.md, "Sixteenth session", point 5).
"""
import argparse
import base64
import http.client
import json
import os
import socket
import struct
import sys
import time
import urllib.parse


class SocketIO:
    """Just enough of a Socket.IO v4 client over a WebSocket (stdlib only): connect with a token,
    answer pings, emit an event with an ack and wait for that ack."""

    def __init__(self, host, port, token):
        self.sock = socket.create_connection((host, port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\nCookie: token={token}\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            sys.exit(f"rest_probe: WebSocket upgrade refused: {head[:200]!r}")
        if not self.read().startswith("0"):
            sys.exit("rest_probe: no Engine.IO open packet")
        self.send("40")
        reply = self.read()
        if not reply.startswith("40"):
            sys.exit(f"rest_probe: Socket.IO connect refused: {reply[:200]}")
        self.next_ack = 0

    def _recv(self):
        b = self.sock.recv(65536)
        if not b:
            sys.exit("rest_probe: the server closed the WebSocket")
        return b

    def _take(self, n):
        while len(self.buf) < n:
            self.buf += self._recv()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text):
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else struct.pack("!BH", 0x80 | 126, n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def read(self):
        """The next text message; answers pings (Engine.IO "2") on the way."""
        while True:
            b0, b1 = self._take(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8))[0]
            payload = self._take(n).decode()
            if b0 & 0x0F == 0x8:
                sys.exit("rest_probe: the server closed the WebSocket")
            if b0 & 0x0F != 0x1:
                continue
            if payload == "2":
                self.send("3")
                continue
            return payload

    def call(self, event, data):
        """Emits `event` with an ack; returns the ack's arguments (events on the way skipped)."""
        ack = self.next_ack
        self.next_ack += 1
        self.send(f"42{ack}" + json.dumps([event, data], separators=(",", ":")))
        prefix = f"43{ack}"
        while True:
            p = self.read()
            if p.startswith(prefix) and p[len(prefix):len(prefix) + 1] == "[":
                return json.loads(p[len(prefix):])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--users-file", required=True)
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--interval-ms", type=float, default=50.0)
    ap.add_argument("--delay", type=float, default=0.0)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--mark-read", action="store_true")
    mode.add_argument("--users-list", action="store_true")
    a = ap.parse_args()

    users = [l.split() for l in open(a.users_file) if l.strip() and not l.startswith("#")]
    if len(users) < 2:
        sys.exit("rest_probe: the users file needs two users")
    (_, token), (peer, _) = users[0][:2], users[1][:2]
    u = urllib.parse.urlsplit(a.url)
    time.sleep(a.delay)
    # once(): one request; returns (succeeded, the response's body).
    if a.mark_read:
        sio = SocketIO(u.hostname, u.port or 80, token)
        path = "markRead"

        def once():
            reply = sio.call("markRead", {"peerId": peer, "upTo": "f" * 24})
            ok = bool(reply) and isinstance(reply[0], dict) and reply[0].get("status") == "ok"
            return ok, json.dumps(reply).encode()
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
        path = ("/api/v1/auth/update-profile" if a.write else "/api/messages/users" if a.users_list
                else f"/api/messages/{peer}")

        def once():
            if a.write:
                conn.request("PUT", path, body=json.dumps({"bio": f"probe {len(lat)}"}),
                             headers={"Cookie": f"token={token}", "Content-Type": "application/json"})
            else:
                conn.request("GET", path, headers={"Cookie": f"token={token}"})
            r = conn.getresponse()
            body = r.read()
            return r.status == 200, body if r.status == 200 else f"{r.status} ".encode() + body
    lat, body_bytes = [], 0
    end = time.monotonic() + a.duration
    while time.monotonic() < end:
        t = time.perf_counter()
        ok, body = once()
        lat.append((time.perf_counter() - t) * 1000)
        if not ok:
            print(f"rest_probe: {path} failed: {body[:200]!r}", file=sys.stderr)
            sys.exit(1)
        body_bytes = len(body)
        time.sleep(a.interval_ms / 1000)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    res = {"requests": len(lat), "p50_ms": round(q(0.5), 2), "p90_ms": round(q(0.9), 2),
           "p99_ms": round(q(0.99), 2), "max_ms": round(lat[-1], 2), "body_bytes": body_bytes}
    verb = "emit" if a.mark_read else "PUT" if a.write else "GET"
    print(f"{verb} {path}: {res['requests']} requests, p50 {res['p50_ms']} ms, p90 {res['p90_ms']} ms, "
          f"p99 {res['p99_ms']} ms, max {res['max_ms']} ms ({body_bytes} bytes)")
    print("RESULT " + json.dumps(res, separators=(",", ":")))


if __name__ == "__main__":
    main()
