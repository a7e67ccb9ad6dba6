#!/usr/bin/env bash
# bench/sched_slice.py sets every thread's slice of a process, keeps its nice value, and 0 gives
# back the kernel's default. Read back from /proc/<pid>/sched (se.slice, in ns); exits 77
# (skipped) where the kernel shows no per-thread slice there (Linux < 6.12, no SCHED_DEBUG).
set -euo pipefail
script="$(cd "$(dirname "$0")/../../.." && pwd)/bench/sched_slice.py"
slice_of() { awk '/^se.slice /{print $3}' "/proc/$1/sched" 2>/dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }

nice -n 5 python3 -c 'import threading, time
t = threading.Thread(target=time.sleep, args=(30,), daemon=True); t.start(); time.sleep(30)' &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 50); do [ "$(ls /proc/$pid/task | wc -l)" = 2 ] && break; sleep 0.05; done
[ "$(ls /proc/$pid/task | wc -l)" = 2 ] || fail "the two-thread process did not start"
[ -n "$(slice_of $pid)" ] || { echo "no se.slice in /proc/$pid/sched: skipped"; exit 77; }

out=$(python3 "$script" 250 $pid)
echo "$out"
[ "$out" = "2 threads asked for a 250 µs slice, 0 failed" ] || fail "unexpected output: $out"
for t in /proc/$pid/task/*; do
  tid=${t##*/}
  [ "$(awk '/^se.slice /{print $3}' $t/sched)" = 250000 ] || fail "thread $tid: se.slice $(awk '/^se.slice /{print $3}' $t/sched), not 250000"
done
[ "$(ps -o ni= -L -p $pid | sort -u | tr -d ' ')" = 5 ] || fail "the nice value changed: $(ps -o ni= -L -p $pid)"

out=$(python3 "$script" 0 $pid)
echo "$out"
[ "$out" = "2 threads asked for the kernel's default slice, 0 failed" ] || fail "unexpected output: $out"
default=$(slice_of $pid)
[ "$default" != 250000 ] && [ "$default" -gt 0 ] || fail "se.slice $default after asking for the default"
for t in /proc/$pid/task/*; do
  [ "$(awk '/^se.slice /{print $3}' $t/sched)" = "$default" ] || fail "thread ${t##*/} kept another slice"
done

python3 "$script" 250 abc >/dev/null 2>&1 && fail "a non-numeric pid was accepted"
echo "OK (the kernel's default slice here: $((default / 1000)) µs)"
