#!/usr/bin/env bash
# Steady-state fleet benchmark (issue #22): bench/fleet/steady.sh N   (default 10000)
# Starts a real node (Release build, all roles, SQLite, a fresh data folder) as a child process, provisions N devices in
# one provision-batch request, lets every device check in once (warm), measures the node's maximum (closed loop,
# CONCURRENCY clients for MAX_SECONDS) twice: at once, while the actors the warm phase woke passivate (the "during wave"
# fields), and again once the node's live-actor gauge has settled (checkinsPerSecond: the idle fleet; SETTLE_MAX_SECONDS
# bounds the wait, default 300), then offers check-ins at RATE (default N/300 per second: a 5-minute cadence) for
# FIXED_SECONDS and takes the latency percentiles there, reads RSS after a full GC (dotnet-gcdump induces one), restarts
# the node and measures cold check-ins (every actor recovered from the journal) and, after a 10 s warm-up, the maximum of
# this second node process (checkinsPerSecondSecondProcess), then starts a baseline process beside it and measures the two
# in turn, INTERLEAVE_PAIRS (4) pairs of INTERLEAVE_SECONDS (10) windows on the same client (ratioInterleaved: the machine's
# speed drifts during a run, and alternating windows weigh a drift on both sides alike), and finally runs the baseline, a minimal ASP.NET Core
# endpoint with the same HMAC check against the N keys and the same answer bytes, under the same client, and the same
# endpoint once more with one Ed25519 signature per answer (the node's directive signature: the work the issue's baseline
# leaves out), then the baseline's maximum in a second process after the same warm-up (baselinePerSecondSecondProcess;
# ratioTwoProcesses divides the sums: a process settles in one of two speeds, so one process of each side is one draw). Nothing is assigned, so every check-in is "nothing to do". The last line is one JSON object.
# Env: CONCURRENCY (64), MAX_SECONDS (20), FIXED_SECONDS (120), RATE (N/300), CADENCE_GAP_SECONDS (61: the wait before the
# fixed-rate phase, so its devices were last answered longer ago than Admission:EarlyWithinSeconds, as on a cadence), STEADY_WORK
# (work folder, default under /tmp), NODE_ENV ("A=1 B=2": environment of the node only, e.g. NODE_ENV="DOTNET_gcServer=1", as cold.sh; over the runtime
# environment the node ships with, DOTNET_GCgen0size=0x4000000, which the baseline gets too, as the node has it).
# Storm: STORM_SECONDS (0 = off) runs STORM_FACTOR (3) x the measured maximum, open loop, from half the devices while the
# other half keep their cadence; STORM_MAX_IN_FLIGHT (8192) caps the client. Reports refusals with Retry-After, peak RSS.
# STORM_MODE=agents instead starts the storm half at once (at that rate) as agents: one check-in at a time per device,
# Retry-After honoured, done when answered; STORM_AGENT_SECONDS (150) bounds it and the cadence measurement.
# STORM_CLIENT=wrk (repeat mode) sends the storm from wrk (bench/fleet/storm.lua) instead: check-ins signed before it
# starts, closed loop on STORM_CONNECTIONS (4096) connections, STORM_WRK_THREADS (2), STORM_PIPELINE (1) requests at once
# per connection; first the same wrk against the node's /health/live for STORM_TRIVIAL_SECONDS (10): the client's ceiling.
# STORM_MODE=honour with STORM_CLIENT=wrk: the same storm, but each connection waits out a 429/503's Retry-After before
# its next request, as the agent does (storm.lua); attempts/s = answered + refused. A closed loop whose refused connections
# sleep 1-2 s at the least (Admission:RetryAfterSeconds=1) offers at most about STORM_CONNECTIONS / 1.5 s of refusals, so
# 3x the maximum needs thousands of connections (each one a file descriptor in wrk and in the node: mind ulimit -n).
# The node's admission rule for a saturated node (Admission:BusyQueueWaitMilliseconds over Admission:BusySustainedProbes)
# is on in the node's defaults, off here unless STORM_SECONDS > 0 or NODE_ENV / ORCH_Admission__BusyQueueWaitMilliseconds sets it. The storm reports its CPU: node, wrk, machine.
# STORM_CLIENT=sockets (with STORM_MODE=honour): the same pre-signed check-ins from SteadyBench's own raw-socket client
# (AgentSocketStorm.cs), which uses its connections as agents do: a refusal with Connection: close (the node's default,
# Admission:CloseRefusedConnections) is retried on a new connection after Retry-After, an answered device's connection is
# closed and the slot's next device connects; wrk instead keeps every connection open and reconnects at once.
# STORM_CADENCE_NICE=-10 runs the cadence devices' client at that CPU priority (they are other machines in a fleet).
# CADENCE_FRESH_CONNECTIONS (1): each cadence check-in on a connection of its own, as a device checking in minutes apart
# does (0: a pool of kept-alive connections); each connect is timed apart from its request (a connect of a second or more
# is a SYN the node's full listen backlog dropped). STORM_SOURCE_ADDRESSES (64): the socket storm connects from that many
# loopback addresses (127.0.1.x; the cadence devices from 127.0.2.1), as a fleet connects from many hosts: from one
# address the kernel's ephemeral-port search among the storm's connections and the node's TIME_WAITs takes the cores.
# STORM_INLINE_COMPLETIONS (1): the socket storm client's continuations run on the sockets' event thread, so each storm
# device writes its request as soon as its connect completes, as a device does (0: through the client's thread pool,
# where the herd's writes queued behind its connects and reached the node up to seconds after them).
# CLIENT_TIERED_COMPILATION (0): the storm's device clients (socket storm, cadence devices) compile each method once,
# fully optimized, as an ahead-of-time compiled agent runs (1: tiered, whose background recompilation during the storm
# took cores from the node). STORM_CLIENT_CPUS (unset): confine those clients to these CPUs (taskset list, e.g. 0), as
# devices are other machines; the node stays free to use every core.
# Output goes to bench/results/fleet-steady-<N>[-STEADY_TAG].txt as well. Wrap in flock on shared machines.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
n="${1:-10000}"
if [ "${STORM_CLIENT:-}" = wrk ] && ! command -v wrk >/dev/null; then
  apt-get install -y -qq wrk >/dev/null || { echo "STORM_CLIENT=wrk needs wrk: apt-get install wrk" >&2; exit 2; }
fi
dotnet build -c Release "$root/src/Orchestrator" -v q -nologo >/dev/null
dotnet build -c Release "$here/SteadyBench" -v q -nologo >/dev/null
tools="$here/SteadyBench/bin/tools"
if [ ! -x "$tools/dotnet-gcdump" ]; then dotnet tool install dotnet-gcdump --version 10.0.750501 --tool-path "$tools" >/dev/null; fi
work="${STEADY_WORK:-${TMPDIR:-/tmp}/orch-steady-$n-$$}"
rm -rf "$work"
GCDUMP="$tools/dotnet-gcdump" dotnet "$here/SteadyBench/bin/Release/net10.0/SteadyBench.dll" "$n" "$work" \
  "$root/src/Orchestrator/bin/Release/net10.0/orchestrator.dll" | tee "$here/../results/fleet-steady-$n${STEADY_TAG:+-$STEADY_TAG}.txt"
if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$work"; fi
