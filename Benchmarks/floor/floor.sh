#!/usr/bin/env bash
# The kernel floor of a 64 B loopback TCP ping-pong, beside sockperf, server on CPU 0 and client
# on CPU 1, ROUNDS (3) alternating rounds: C blocking recv on both sides, a C io_uring client
# against the blocking server, C busy-polling (MSG_DONTWAIT) on both sides, and sockperf with its
# default epoll wait and with --timeout 0 (epoll_wait polled). Needs gcc, liburing-dev, sockperf.
# URING_MODES="uringpf mshot" adds io_uring clients shaped like the runtime's receive (pingpong.c).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bin=$(mktemp -d)/pingpong
gcc -O2 -o "$bin" pingpong.c -luring
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
taskset -c 0 "$bin" server 18601 block >/dev/null & pids+=($!)
taskset -c 0 "$bin" server 18602 spin >/dev/null & pids+=($!)
taskset -c 0 sockperf sr --tcp -i 127.0.0.1 -p 18603 >/dev/null 2>&1 & pids+=($!)
taskset -c 0 sockperf sr --tcp -i 127.0.0.1 -p 18604 --timeout 0 >/dev/null 2>&1 & pids+=($!)
sleep 1
sockperf_rtt() {  # sockperf reports half a round trip
  local p50
  p50=$(taskset -c 1 sockperf pp --tcp -i 127.0.0.1 -p "$1" -m 64 -t 3 ${2:-} 2>&1 | awk '/percentile 50.000/ {print $NF}')
  echo "RESULT peer=sockperf$3 workload=rtt value=$(awk -v v="$p50" 'BEGIN { printf "%.2f", 2 * v }') unit=us_p50"
}
for round in $(seq "${ROUNDS:-3}"); do
  echo "# round $round"
  taskset -c 1 "$bin" client 18601 block
  taskset -c 1 "$bin" client 18601 uring
  for mode in ${URING_MODES:-}; do taskset -c 1 "$bin" client 18601 "$mode"; done
  taskset -c 1 "$bin" client 18602 spin
  sockperf_rtt 18603 "" ""
  sockperf_rtt 18604 "--timeout 0" "-timeout0"
done
