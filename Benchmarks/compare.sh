#!/usr/bin/env bash
# Runs our benchmarks and the peers of ../shared/peers alternately, ROUNDS times (default 3),
# server on CPU 0 and client on CPU 1 (PIN=split for the peers), and prints every RESULT line
# plus the median ratio of ours to each peer. Needs `make bench` first (release net-bench).
#
#   Benchmarks/compare.sh runtime-rtt      # raw runtime sockets vs sockperf
#   Benchmarks/compare.sh transport        # framed TCP echo: rtt, rate, bulk vs nio-echo, sockperf, iperf3
#   Benchmarks/compare.sh rpc              # unary RPC echo: rtt, rate, bulk vs nio-echo, grpc-echo, sockperf
#   Benchmarks/compare.sh transport-rtt    # the transport's and the RPC layer's rtt alone vs sockperf:
#   Benchmarks/compare.sh rpc-rtt          # each pair ~1 minute apart, not ~3 with the other peers between
#
# Environment: ROUNDS (3), PEERS_DIR (../shared/peers), OUT (results/compare-<stamp>.txt),
# VARIANTS: ';'-separated extra arguments for our run, each variant run every round (default: one
# run with none). The server gets a variant's --idle-poll-us too. "; --idle-poll-us 200" adds
# cores that poll while idle; "; --batched" (rpc) adds calls through RPCConnection.callAll.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
what=${1:-runtime-rtt}
ROUNDS=${ROUNDS:-3}
IFS=';' read -r -a variants <<<"${VARIANTS:-}"
[[ ${#variants[@]} -gt 0 ]] || variants=("")
PEERS_DIR=${PEERS_DIR:-../shared/peers}
BIN=.build/release/net-bench
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-results/compare-$what-$STAMP.txt}
mkdir -p "$(dirname "$OUT")"
[[ -x $BIN ]] || { echo "build first: make bench" >&2; exit 2; }

case $what in
  runtime-rtt) ours=("--layer runtime --workload rtt"); peers="sockperf"; workloads="rtt" ;;
  transport) ours=("--layer transport --transport tcp --workload rtt" "--layer transport --transport tcp --workload rate"
                   "--layer transport --transport tcp --workload bulk")
             peers="nio-echo sockperf iperf3"; workloads="rtt rate bulk" ;;
  rpc) ours=("--layer rpc --transport tcp --workload rtt" "--layer rpc --transport tcp --workload rate"
             "--layer rpc --transport tcp --workload bulk")
       peers="nio-echo grpc-echo sockperf"; workloads="rtt rate bulk" ;;
  transport-rtt) ours=("--layer transport --transport tcp --workload rtt"); peers="sockperf"; workloads="rtt" ;;
  rpc-rtt) ours=("--layer rpc --transport tcp --workload rtt"); peers="sockperf"; workloads="rtt" ;;
  *) echo "unknown comparison: $what" >&2; exit 2 ;;
esac

server_pid=""
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

run_ours() {
  local layer_args=$1 extra=$2 log serve_extra
  serve_extra=$(grep -o -- '--idle-poll-us [0-9]*' <<<"$extra" || true)
  log=$(mktemp)
  # shellcheck disable=SC2086
  taskset -c 0 "$BIN" serve ${layer_args%% --workload*} $serve_extra --port 0 >"$log" 2>/dev/null &
  server_pid=$!
  for _ in $(seq 100); do grep -q LISTENING "$log" && break; sleep 0.1; done
  local port
  port=$(grep -o 'port=[0-9]*' "$log" | cut -d= -f2)
  # shellcheck disable=SC2086
  taskset -c 1 "$BIN" run $layer_args $extra --port "$port" 2>/dev/null | grep '^RESULT' | tee -a "$OUT"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
  rm -f "$log"
}

echo "# compare $what, $ROUNDS rounds, $(date -u), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT"
for round in $(seq "$ROUNDS"); do
  echo "# round $round" | tee -a "$OUT"
  for variant in "${variants[@]}"; do
    for args in "${ours[@]}"; do run_ours "$args" "$variant"; done
  done
  PIN=split PEERS="$peers" WORKLOADS="$workloads" SKIP_BUILD="${SKIP_BUILD:-}" bash "$PEERS_DIR/run.sh" 2>/dev/null \
    | grep '^RESULT' | tee -a "$OUT"
done

python3 - "$OUT" <<'PY'
import sys, re, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("RESULT"):
        kv = dict(p.split("=", 1) for p in line.split()[1:])
        rows[(kv["peer"], kv["workload"])].append(float(kv["value"]))
ours = {k: v for k, v in rows.items() if k[0].startswith("swift-net")}
print("# medians:", {f"{p}/{w}": statistics.median(v) for (p, w), v in rows.items()})
for (p, w), v in ours.items():
    for (q, w2), u in rows.items():
        if w2 == w and not q.startswith("swift-net"):
            ratios = [a / b for a, b in zip(v, u)]
            print(f"# ratio {p}/{q} {w}: per round {[round(r, 3) for r in ratios]} median {statistics.median(ratios):.3f}")
PY
