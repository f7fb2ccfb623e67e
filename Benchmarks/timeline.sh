#!/usr/bin/env bash
# Where a 64 B round trip's time goes, both sides at once: from perf's raw_syscalls tracepoints
# on the client and the server (one second of round trips), the median of each segment:
#   request  client's send enters -> server's io_uring_enter returns (the kernel's delivery and wake-up)
#   server   server's io_uring_enter returns -> server's send enters (our user space)
#   reply    server's send enters -> client's io_uring_enter returns
#   client   client's io_uring_enter returns -> client's next send enters
# Server on CPU 0, client on CPU 1. Needs root, perf and a release build (`make bench`).
#
#   Benchmarks/timeline.sh rpc         # layers: runtime, transport, rpc
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
layer=${1:-rpc}
source Benchmarks/rtt-pair.sh
perf record -q -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -p "$server,$client" -o "$scratch/perf.data" -- sleep 1 >/dev/null 2>&1
perf script -i "$scratch/perf.data" -F pid,time,event,trace --ns 2>/dev/null | python3 -c "
import re, statistics, sys
URING_ENTER, SENDTO, SENDMSG = 426, 44, 46   # x86-64 system call numbers
server, client = $server, $client
events = []   # (time, side, what): what is 'send' (enter) or 'woke' (io_uring_enter exit)
for line in sys.stdin:
    m = re.match(r'\s*(\d+)\s+([\d.]+):\s+raw_syscalls:sys_(enter|exit):\s+NR (\d+)', line)
    if not m: continue
    pid, t, kind, nr = int(m[1]), float(m[2]), m[3], int(m[4])
    side = 'server' if pid == server else 'client' if pid == client else None
    if side is None: continue
    if kind == 'exit' and nr == URING_ENTER: events.append((t, side, 'woke'))
    elif kind == 'enter' and nr in (SENDTO, SENDMSG): events.append((t, side, 'send'))
events.sort()
# Walk the cycle: client send -> server woke -> server send -> client woke -> client send ...
# (the first event of each kind after the one before; one io_uring_enter per message per side)
order = [('client', 'send'), ('server', 'woke'), ('server', 'send'), ('client', 'woke')]
names = ['request', 'server', 'reply', 'client']
segments = {n: [] for n in names}
step, last = None, None
for t, side, what in events:
    if step is None:
        if (side, what) == order[0]: step, last = 1, t
        continue
    if (side, what) == order[step]:
        segments[names[step - 1]].append((t - last) * 1e6)
        step, last = (step + 1) % 4, t
for n in names:
    v = sorted(segments[n])
    if not v: sys.exit('no round trips seen')
    print(f'RESULT peer=swift-net-$layer-tcp workload=segment_{n} value={statistics.median(v):.2f} unit=us_p50 p99_us={v[len(v) * 99 // 100]:.2f} n={len(v)}')
"
