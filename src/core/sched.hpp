#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace chat {

/// The time slice Linux's EEVDF scheduler (kernel 6.12 and later) gives the calling thread, as
/// set by request_time_slice() or the kernel's default; zero where the kernel keeps no slice per
/// thread (older kernels, other systems) or for a thread that is not SCHED_OTHER.
std::chrono::microseconds current_time_slice();

/// Asks the scheduler for a time slice of `slice` for the calling thread (the kernel clamps it to
/// 0.1-100 ms), keeping its scheduling policy and nice value. A thread with a shorter slice than the
/// one running when it wakes preempts it at once; with the default (1.4 ms on a 2-core machine) a
/// wake-up can wait for the rest of a busy thread's slice on the same core, such as the store's
/// indexer (nice +10) in the middle of a transaction, whatever their nice values. Meant for threads
/// that wake to do a little latency-critical work (I/O, the message journal, message delivery).
/// A slice of zero or less asks for the kernel's default. A new thread or process starts with its
/// creator's slice, so this is how one drops a slice it inherited (a server started from a shell
/// that had asked for one runs every thread with it otherwise).
/// A thread that is not SCHED_OTHER: nothing changes, returns zero. Otherwise returns
/// current_time_slice() afterwards: zero where the kernel has no per-thread slices (nothing
/// changed, nothing lost) or refused. Thread-safe; no privilege needed.
std::chrono::microseconds request_time_slice(std::chrono::microseconds slice);

/// The kernel's default slice: what request_time_slice(0) gives a thread (found on a short-lived
/// thread of its own, so the caller's slice does not change); zero where the kernel keeps no
/// slice per thread.
std::chrono::microseconds default_time_slice();

/// A slice as written in a setting: "0" or "off" (the kernel's default), or a whole number of
/// microseconds or milliseconds within the kernel's range, "100us" to "100ms". Nullopt otherwise.
std::optional<std::chrono::microseconds> parse_time_slice(std::string_view text);

}  // namespace chat
