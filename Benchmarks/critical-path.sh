#!/usr/bin/env bash
# The user-space part of a round trip's critical path on one side: for the 64 B rtt workload, the
# time from the core's `io_uring_enter` returning (the request or reply has arrived) to the next
# `sendto`/`sendmsg` on the same thread (the answer or next request leaves), median over one
# second of round trips, from perf's raw_syscalls tracepoints. Server on CPU 0, client on CPU 1.
# Needs root, perf and a release build (`make bench`). The tracepoints add a little to every gap.
#
#   Benchmarks/critical-path.sh transport client      # layers: runtime, transport, rpc; sides: client, server
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
layer=${1:-transport}
side=${2:-client}
[[ $side == client || $side == server ]] || { echo "unknown side: $side (client or server)" >&2; exit 2; }
source Benchmarks/rtt-pair.sh
target=$server
[[ $side == client ]] && target=$client
perf record -q -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -p "$target" -o "$scratch/perf.data" -- sleep 1 >/dev/null 2>&1
perf script -i "$scratch/perf.data" -F tid,time,event,trace --ns 2>/dev/null | python3 -c "
import re, statistics, sys
URING_ENTER, SENDTO, SENDMSG = 426, 44, 46   # x86-64 system call numbers
woke, gaps = {}, []
for line in sys.stdin:
    m = re.match(r'\s*(\d+)\s+([\d.]+):\s+raw_syscalls:sys_(enter|exit):\s+NR (\d+)', line)
    if not m: continue
    tid, t, kind, nr = int(m[1]), float(m[2]), m[3], int(m[4])
    if kind == 'exit' and nr == URING_ENTER: woke[tid] = t
    elif kind == 'enter' and nr == URING_ENTER: woke.pop(tid, None)
    elif kind == 'enter' and nr in (SENDTO, SENDMSG) and tid in woke: gaps.append((t - woke.pop(tid)) * 1e6)
if not gaps: sys.exit('no round trips seen')
gaps.sort()
print(f'RESULT peer=swift-net-$layer-tcp workload=critical_path_$side value={statistics.median(gaps):.2f} unit=us_p50 p99_us={gaps[len(gaps) * 99 // 100]:.2f} n={len(gaps)}')
"
