#!/usr/bin/env python3
"""mongo_ping.py PORT [HOST]: sends {ping: 1} to a MongoDB-wire server (OP_MSG) and exits 0 if it
answered ok: 1. Standard library only; used as the readiness check of ferretdb.sh.

As a module, command() runs any one command (bench/cluster.sh counts a collection with it)."""
import socket
import struct
import sys


def bson_doc(elements: bytes) -> bytes:
    return struct.pack("<i", len(elements) + 5) + elements + b"\x00"


def bson_int32(name: str, value: int) -> bytes:
    return b"\x10" + name.encode() + b"\x00" + struct.pack("<i", value)


def bson_string(name: str, value: str) -> bytes:
    v = value.encode()
    return b"\x02" + name.encode() + b"\x00" + struct.pack("<i", len(v) + 1) + v + b"\x00"


def top_level_fields(doc: bytes) -> dict:
    """The numbers and strings among a BSON document's top-level fields (other types skipped)."""
    fixed = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16}
    out, i, end = {}, 4, struct.unpack("<i", doc[:4])[0] - 1
    while i < end:
        t = doc[i]
        j = doc.index(b"\x00", i + 1)
        name = doc[i + 1:j].decode()
        i = j + 1
        if t == 0x01:
            out[name] = struct.unpack("<d", doc[i:i + 8])[0]
        elif t == 0x10:
            out[name] = struct.unpack("<i", doc[i:i + 4])[0]
        elif t == 0x12:
            out[name] = struct.unpack("<q", doc[i:i + 8])[0]
        elif t == 0x02:
            n = struct.unpack("<i", doc[i:i + 4])[0]
            out[name] = doc[i + 4:i + 3 + n].decode()
        if t in fixed:
            i += fixed[t]
        elif t in (0x02, 0x0D, 0x0E):  # string, JavaScript, symbol: int32 length + bytes
            i += 4 + struct.unpack("<i", doc[i:i + 4])[0]
        elif t in (0x03, 0x04):  # document, array: length-prefixed
            i += struct.unpack("<i", doc[i:i + 4])[0]
        elif t == 0x05:  # binary: int32 length, subtype, bytes
            i += 5 + struct.unpack("<i", doc[i:i + 4])[0]
        else:
            break  # a type this reader does not know: the fields after it are not read
    return out


def command(port: int, elements: bytes, host: str = "127.0.0.1", timeout: float = 2.0) -> dict:
    """Sends one command (its BSON elements, `$db` included) as OP_MSG; returns the reply's
    top-level fields. OSError when the server cannot be reached or closes, ValueError when the
    reply is not an OP_MSG."""
    body = struct.pack("<I", 0) + b"\x00" + bson_doc(elements)
    msg = struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(msg)
        head = b""
        while len(head) < 16:
            chunk = s.recv(16 - len(head))
            if not chunk:
                raise ConnectionError("closed before the reply")
            head += chunk
        length, _, _, opcode = struct.unpack("<iiii", head)
        rest = b""
        while len(rest) < length - 16:
            chunk = s.recv(length - 16 - len(rest))
            if not chunk:
                raise ConnectionError("closed during the reply")
            rest += chunk
    if opcode != 2013 or len(rest) < 5 or rest[4] != 0:
        raise ValueError("not an OP_MSG reply with a body section")
    return top_level_fields(rest[5:])  # flag bits (4), section kind 0 (1), then the document


def main() -> int:
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    reply = command(port, bson_int32("ping", 1) + bson_string("$db", "admin"), host)
    return 0 if reply.get("ok") == 1 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError, IndexError, struct.error):
        sys.exit(1)
