#!/usr/bin/env python3
"""Latency of history reads while something else loads the server.

    python3 bench/rest_probe.py --url http://127.0.0.1:5000 --users-file users.txt \\
        [--duration 6] [--interval-ms 50] [--delay 0] [--write]

Takes the first two users of a chat-bench users file (`<_id> <token>` lines, as
`chat-bench dm --users-file` writes them), and as the first one, on one keep-alive connection,
reads the conversation with the second (`GET /api/messages/<id>`, the newest page) every
interval for `duration` seconds, after `delay` seconds. With --write it updates the first
user's bio instead (`PUT /api/v1/auth/update-profile`, a synchronous store write). Prints the latency percentiles and one
line `RESULT {json}`; exits 1 on a response other than 200. Run it next to a `chat-bench dm`
run against the same server (docs/PERFORMANCE.md, "Sixteenth session", point 5).
"""
import argparse
import http.client
import json
import sys
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--users-file", required=True)
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--interval-ms", type=float, default=50.0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()

    users = [l.split() for l in open(a.users_file) if l.strip() and not l.startswith("#")]
    if len(users) < 2:
        sys.exit("rest_probe: the users file needs two users")
    (_, token), (peer, _) = users[0][:2], users[1][:2]
    u = urllib.parse.urlsplit(a.url)
    time.sleep(a.delay)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    path = "/api/v1/auth/update-profile" if a.write else f"/api/messages/{peer}"
    lat, body_bytes = [], 0
    end = time.monotonic() + a.duration
    while time.monotonic() < end:
        t = time.perf_counter()
        if a.write:
            conn.request("PUT", path, body=json.dumps({"bio": f"probe {len(lat)}"}),
                         headers={"Cookie": f"token={token}", "Content-Type": "application/json"})
        else:
            conn.request("GET", path, headers={"Cookie": f"token={token}"})
        r = conn.getresponse()
        body = r.read()
        lat.append((time.perf_counter() - t) * 1000)
        if r.status != 200:
            print(f"rest_probe: {r.status} {body[:200]!r}", file=sys.stderr)
            sys.exit(1)
        body_bytes = len(body)
        time.sleep(a.interval_ms / 1000)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    res = {"requests": len(lat), "p50_ms": round(q(0.5), 2), "p90_ms": round(q(0.9), 2),
           "p99_ms": round(q(0.99), 2), "max_ms": round(lat[-1], 2), "body_bytes": body_bytes}
    print(f"{'PUT' if a.write else 'GET'} {path}: {res['requests']} requests, p50 {res['p50_ms']} ms, p90 {res['p90_ms']} ms, "
          f"p99 {res['p99_ms']} ms, max {res['max_ms']} ms ({body_bytes} bytes)")
    print("RESULT " + json.dumps(res, separators=(",", ":")))


if __name__ == "__main__":
    main()
