#pragma once
// A worker runs one shard of a scenario with its own I/O threads and reports to the coordinator
// over a Channel (see channel.hpp). Protocol, one line each:
//   worker → coordinator: "READY {json}"      connections set up (dm/cluster), or nothing to do (idle)
//   coordinator → worker: "GO <t0 ns>"        start at steady-clock t0 (CLOCK_MONOTONIC, shared by
//                                             all processes of the machine)
//   worker → coordinator: "CONNECTED {json}"  idle: every connection attempt finished
//   coordinator → worker: "STOP"              idle: end the hold
//   worker → coordinator: "DONE {json}"       the shard's counters and histograms
//   coordinator → worker: "ABORT"             give up (any time)
#include <vector>

#include "channel.hpp"
#include "http_client.hpp"
#include "options.hpp"

namespace chat::bench {

/// Runs the shard `o.shard` (0 when single-process) of `o.scenario` for `users` (all users of the
/// run; the shard picks its own). Blocks until done. Returns 0, or 1 after an ABORT/closed channel.
int run_worker(const Options& o, const std::vector<BenchUser>& users, Channel& channel);

}  // namespace chat::bench
