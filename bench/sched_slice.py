#!/usr/bin/env python3
"""Sets the scheduler time slice of every thread of some processes (Linux >= 6.12, EEVDF).

    python3 bench/sched_slice.py US PID [PID...]

US is the slice in microseconds (the kernel clamps it to 100..100000); 0 asks for the kernel's
default. Each thread keeps its scheduling policy and nice value (sched_getattr, then sched_setattr
with sched_runtime; what chatd's core/sched.cpp does for its own threads). A thread or process
starts with its creator's slice, so the benchmark scripts reset their own shell to the kernel's
default before they start anything (a slice left on the launching shell would otherwise reach
every server and generator they start), and bench/cluster.sh --service-slice gives Redis and the
Kafka broker short ones. Prints how many threads were set; on kernels without per-thread slices
the call succeeds and changes nothing. x86_64 and aarch64 only (their syscall numbers).
"""
import ctypes
import os
import platform
import struct
import sys

SYSCALLS = {"x86_64": (315, 314), "aarch64": (275, 274)}  # (sched_getattr, sched_setattr)
ATTR_SIZE = 56  # struct sched_attr, SCHED_ATTR_SIZE_VER1


def set_slice(us, pids):
    if platform.system() != "Linux" or platform.machine() not in SYSCALLS:
        return 0, 0
    getattr_nr, setattr_nr = SYSCALLS[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    done = failed = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            failed += 1
            continue
        for tid in tids:
            buf = ctypes.create_string_buffer(ATTR_SIZE)
            if libc.syscall(getattr_nr, int(tid), buf, ATTR_SIZE, 0) != 0:
                failed += 1  # the thread exited meanwhile, or no such call
                continue
            raw = bytearray(buf.raw)
            struct.pack_into("<I", raw, 0, ATTR_SIZE)  # size
            flags = struct.unpack_from("<Q", raw, 8)[0] & 0x01  # keep only RESET_ON_FORK
            struct.pack_into("<Q", raw, 8, flags)
            struct.pack_into("<Q", raw, 24, us * 1000)  # sched_runtime, ns; 0: the default
            if libc.syscall(setattr_nr, int(tid), ctypes.create_string_buffer(bytes(raw), ATTR_SIZE), 0) != 0:
                failed += 1
            else:
                done += 1
    return done, failed


def main(argv):
    if len(argv) < 3 or not argv[1].isdigit() or not all(p.isdigit() for p in argv[2:]):
        sys.exit("usage: sched_slice.py US PID [PID...]")
    us = int(argv[1])
    done, failed = set_slice(us, argv[2:])
    what = "the kernel's default slice" if us == 0 else f"a {us} µs slice"
    print(f"{done} threads asked for {what}, {failed} failed")


if __name__ == "__main__":
    main(sys.argv)
