#!/usr/bin/env bash
# Heap allocations per round trip on each side, at steady state: the client and the server are
# separate processes, each counted by perf's uprobes on glibc's allocation functions (malloc,
# calloc, realloc, posix_memalign, aligned_alloc), over two runs of N and 3N calls (after a
# warm-up) whose difference is divided by 2N: start-up and warm-up cancel out.
# Needs root, perf and a release build (`make bench`).
#
#   Benchmarks/allocations.sh rpc          # or: transport (TCP; N = 10,000, warm-up 1,000)
#   scripts/rdma-vm -- Benchmarks/allocations.sh rpc rdma
#                                          # RDMA, in the soft-RoCE guest (N = 1,000, warm-up 300)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
layer=${1:-rpc}
transport=${2:-tcp}
case $transport in
  tcp) host=127.0.0.1; n=10000; warmup=1000 ;;
  rdma) host=${RDMA_ADDR:?"rdma runs in the guest of scripts/rdma-vm (RDMA_ADDR unset)"}; n=1000; warmup=300 ;;
  *) echo "unknown transport: $transport" >&2; exit 2 ;;
esac
B=${B:-.build/release/net-bench}
[[ -x $B ]] || { echo "build first: make bench" >&2; exit 2; }
LIBC=$(ldd "$B" | awk '/libc.so.6/ {print $3}')
EVENTS=""
for f in malloc calloc realloc posix_memalign aligned_alloc; do
  perf probe -q -x "$LIBC" --add "$f" 2>/dev/null || true
  EVENTS+="${EVENTS:+,}probe_libc:$f"
done
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

count() { # count N -> "client server"
  local n=$1 log=$scratch/serve.$1 spid ppid port
  taskset -c 0 "$B" serve --layer "$layer" --transport "$transport" --host "$host" --port 0 >"$log" 2>/dev/null & spid=$!
  for _ in $(seq 600); do grep -q LISTENING "$log" && break; sleep 0.1; done
  port=$(grep -o 'port=[0-9]*' "$log" | cut -d= -f2)
  perf stat -x, -e "$EVENTS" -p "$spid" -o "$scratch/server.$n" & ppid=$!
  sleep 0.3
  perf stat -x, -e "$EVENTS" -o "$scratch/client.$n" \
    taskset -c 1 "$B" run --layer "$layer" --transport "$transport" --host "$host" --workload rtt --warmup "$warmup" \
    --count "$n" --max-s 600 --port "$port" >/dev/null 2>&1
  sleep 0.2; kill -INT "$ppid"; wait "$ppid" 2>/dev/null || true
  kill "$spid"; wait "$spid" 2>/dev/null || true
  echo "$(awk -F, '/probe_libc/ {s+=$1} END {print s}' "$scratch/client.$n") $(awk -F, '/probe_libc/ {s+=$1} END {print s}' "$scratch/server.$n")"
}
read -r c1 s1 <<<"$(count "$n")"
read -r c2 s2 <<<"$(count $((3 * n)))"
python3 - "$layer-$transport" "$((2 * n))" "$c1" "$c2" "$s1" "$s2" <<'PY'
import sys
name, n, c1, c2, s1, s2 = sys.argv[1], *map(int, sys.argv[2:])
print(f"RESULT peer=swift-net-{name} workload=allocations value={(c2-c1)/n:.3f} unit=client_allocs_per_rtt p99_us=- n={n}")
print(f"RESULT peer=swift-net-{name} workload=allocations value={(s2-s1)/n:.3f} unit=server_allocs_per_rtt p99_us=- n={n}")
print(f"# raw counts: client {c1} / {c2}, server {s1} / {s2}")
PY
