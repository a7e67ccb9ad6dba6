#!/usr/bin/env python3
"""mongo_ping.py PORT [HOST]: sends {ping: 1} to a MongoDB-wire server (OP_MSG) and exits 0 if it
answered ok: 1. Standard library only; used as the readiness check of ferretdb.sh.

As a module, command() runs any one command (bench/cluster.sh counts a collection with it, and
compares the read positions with the newest messages)."""
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


def bson_int64(name: str, value: int) -> bytes:
    return b"\x12" + name.encode() + b"\x00" + struct.pack("<q", value)


def bson_oid(name: str, hex_id: str) -> bytes:
    return b"\x07" + name.encode() + b"\x00" + bytes.fromhex(hex_id)


def bson_document(name: str, elements: bytes) -> bytes:
    return b"\x03" + name.encode() + b"\x00" + bson_doc(elements)


def bson_array(name: str, docs: list) -> bytes:
    """An array of documents, each given as its BSON elements."""
    items = b"".join(bson_document(str(i), d) for i, d in enumerate(docs))
    return b"\x04" + name.encode() + b"\x00" + bson_doc(items)


def decode(doc: bytes):
    """A whole BSON document as a dict (arrays as lists, ObjectIds as hex, dates as ms); fields of
    other types are skipped."""
    out, i, end = {}, 4, struct.unpack("<i", doc[:4])[0] - 1
    while i < end:
        t = doc[i]
        j = doc.index(b"\x00", i + 1)
        name = doc[i + 1:j].decode()
        i = j + 1
        if t == 0x01:
            out[name], i = struct.unpack("<d", doc[i:i + 8])[0], i + 8
        elif t in (0x02, 0x0D, 0x0E):
            n = struct.unpack("<i", doc[i:i + 4])[0]
            out[name], i = doc[i + 4:i + 3 + n].decode(), i + 4 + n
        elif t in (0x03, 0x04):
            n = struct.unpack("<i", doc[i:i + 4])[0]
            sub = decode(doc[i:i + n])
            out[name], i = (list(sub.values()) if t == 0x04 else sub), i + n
        elif t == 0x05:
            i += 5 + struct.unpack("<i", doc[i:i + 4])[0]
        elif t == 0x07:
            out[name], i = doc[i:i + 12].hex(), i + 12
        elif t == 0x08:
            out[name], i = doc[i] != 0, i + 1
        elif t in (0x09, 0x12):
            out[name], i = struct.unpack("<q", doc[i:i + 8])[0], i + 8
        elif t == 0x0A:
            out[name] = None
        elif t == 0x10:
            out[name], i = struct.unpack("<i", doc[i:i + 4])[0], i + 4
        elif t in (0x11,):
            i += 8
        elif t == 0x13:
            i += 16
        else:
            break  # a type this reader does not know: the fields after it are not read
    return out


def top_level_fields(doc: bytes) -> dict:
    """The numbers and strings among a BSON document's top-level fields (other types skipped)."""
    return {k: v for k, v in decode(doc).items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def exchange(s: socket.socket, elements: bytes, whole: bool = False) -> dict:
    """One command (its BSON elements, `$db` included) as OP_MSG over an open connection; the
    reply's top-level fields (the whole reply, decode(), with `whole`). OSError when the server
    closes, ValueError when the reply is not an OP_MSG."""
    body = struct.pack("<I", 0) + b"\x00" + bson_doc(elements)
    s.sendall(struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body)
    head = b""
    while len(head) < 16:
        chunk = s.recv(16 - len(head))
        if not chunk:
            raise ConnectionError("closed before the reply")
        head += chunk
    length, _, _, opcode = struct.unpack("<iiii", head)
    parts, got = [], 0
    while got < length - 16:
        chunk = s.recv(min(1 << 20, length - 16 - got))
        if not chunk:
            raise ConnectionError("closed during the reply")
        parts.append(chunk)
        got += len(chunk)
    rest = b"".join(parts)
    if opcode != 2013 or len(rest) < 5 or rest[4] != 0:
        raise ValueError("not an OP_MSG reply with a body section")
    # flag bits (4), section kind 0 (1), then the document
    return decode(rest[5:]) if whole else top_level_fields(rest[5:])


def command(port: int, elements: bytes, host: str = "127.0.0.1", timeout: float = 2.0,
            whole: bool = False) -> dict:
    """exchange() over a connection of its own (a server's cursors live on their connection:
    a getMore needs exchange() on the one that made the cursor). OSError when the server cannot
    be reached."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        return exchange(s, elements, whole)


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
