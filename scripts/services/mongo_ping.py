#!/usr/bin/env python3
"""mongo_ping.py PORT [HOST]: sends {ping: 1} to a MongoDB-wire server (OP_MSG) and exits 0 if it
answered ok: 1. Standard library only; used as the readiness check of ferretdb.sh."""
import socket
import struct
import sys


def bson_doc(elements: bytes) -> bytes:
    return struct.pack("<i", len(elements) + 5) + elements + b"\x00"


def main() -> int:
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    doc = bson_doc(b"\x10ping\x00" + struct.pack("<i", 1)
                   + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00")
    body = struct.pack("<I", 0) + b"\x00" + doc
    msg = struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(msg)
        head = b""
        while len(head) < 16:
            chunk = s.recv(16 - len(head))
            if not chunk:
                return 1
            head += chunk
        length, _, _, opcode = struct.unpack("<iiii", head)
        rest = b""
        while len(rest) < length - 16:
            chunk = s.recv(length - 16 - len(rest))
            if not chunk:
                return 1
            rest += chunk
    ok_double = b"\x01ok\x00" + struct.pack("<d", 1.0)
    ok_int = b"\x10ok\x00" + struct.pack("<i", 1)
    return 0 if opcode == 2013 and (ok_double in rest or ok_int in rest) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError:
        sys.exit(1)
