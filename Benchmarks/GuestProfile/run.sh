#!/usr/bin/env bash
# Benchmarks/GuestProfile/run.sh: guest instructions per round trip, user and kernel, server and
# client, of `ib_send_lat` and of net-bench's transport rtt over RDMA, counted by a QEMU plugin
# (tbprof.c) in the soft-RoCE guest (scripts/rdma-vm). Counts do not depend on how busy the host
# is, where times in this guest swing by tens of percent between runs. Each program runs twice
# (N1 and N2 round trips) and the difference is divided by N2 - N1, so set-up cancels.
#
# usage: Benchmarks/GuestProfile/run.sh [events|busy] [NET_BENCH_BINARY]
# Builds nothing of ours: `make bench` first (the default binary is .build/release/net-bench).
# Needs gcc, python3, nm, objdump. Environment: N1 (2000), N2 (12000), TOP (25 functions),
# SERVE_ARGS and RUN_ARGS (more arguments for net-bench's server and client, such as
# `--receive handler`), SPREAD (also list the N functions with the most distinct user blocks).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/arguments.sh"
out=.build/guest-profile
rm -rf "$out"; mkdir -p "$out"
gcc -O2 -shared -fPIC -o "$out/tbprof.so" Benchmarks/GuestProfile/tbprof.c -lpthread
cp "$bin" "$out/net-bench"

guest_script=$(cat <<'EOS'
set -u -o pipefail
out=.build/guest-profile
mark() { echo "MARK $*"; sleep 3; }  # the host dumps the counts on seeing this, while all idles
# Both runs read the maps (the reading's own instructions then cancel out); the second keeps them.
# Only the server's are read, and kept for the client too: both run the same binary with
# `setarch -R`, so their code lies at the same addresses, and the server lives through the whole
# run, where a busy-polled perftest client of N2 round trips can end before the read.
maps() {
    sleep 0.5
    p=$(pgrep -x -o "$1")
    for _ in server client; do echo "== $p $(tr '\0' ' ' </proc/"$p"/cmdline)"; cat /proc/"$p"/maps; done >>"$2"
}
if [ "$MODE" = busy ]; then e=""; extra="--rdma-busy-poll-us 100000"; else e="-e"; extra=""; fi
cat /proc/kallsyms >"$out/kallsyms.txt"
sleep 2
for n in "$N1" "$N2"; do
    mark "perftest $n"
    taskset -c 0 setarch -R ib_send_lat -F $e -d "$RDMA_DEVICE" -x "$RDMA_GID_INDEX" -s 64 -n "$n" -p 18515 >/dev/null 2>&1 &
    s=$!; sleep 1
    if [ "$n" = "$N2" ]; then dest="$out/maps-perftest.txt"; else dest=/dev/null; fi
    (maps ib_send_lat "$dest" &)
    taskset -c 1 setarch -R ib_send_lat -F $e -d "$RDMA_DEVICE" -x "$RDMA_GID_INDEX" -s 64 -n "$n" -p 18515 "$RDMA_ADDR" >/dev/null 2>&1
    wait "$s"
done
for n in "$N1" "$N2"; do
    mark "net-bench $n"
    taskset -c 0 setarch -R $out/net-bench serve --layer transport --transport rdma $extra $SERVE_ARGS --host "$RDMA_ADDR" --port 0 >/tmp/serve.log 2>&1 &
    s=$!; port=""
    for _ in $(seq 600); do port=$(sed -n 's/^LISTENING port=//p' /tmp/serve.log); [ -n "$port" ] && break; sleep 0.1; done
    if [ "$n" = "$N2" ]; then dest="$out/maps-ours.txt"; else dest=/dev/null; fi
    (maps net-bench "$dest" &)
    taskset -c 1 setarch -R $out/net-bench run --layer transport --transport rdma $extra --workload rtt $RUN_ARGS \
        --warmup 300 --count $((n - 300)) --max-s 600 --host "$RDMA_ADDR" --port "$port" 2>/dev/null | grep RESULT
    kill "$s"; wait "$s" 2>/dev/null
done
mark end
EOS
)
# The plugin dumps its table when $out/trigger appears: touch it at each MARK the guest prints.
RDMA_VM_QEMU_ARGS="-plugin $PWD/$out/tbprof.so,dir=$PWD/$out" scripts/rdma-vm --timeout 900 -- \
    env MODE="$mode" N1="${N1:-2000}" N2="${N2:-12000}" SERVE_ARGS="${SERVE_ARGS:-}" RUN_ARGS="${RUN_ARGS:-}" bash -c "$guest_script" |
    while IFS= read -r line; do
        echo "$line"
        [[ $line == MARK* ]] && touch "$out/trigger"
    done
for _ in $(seq 50); do [[ -e $out/trigger ]] || break; sleep 0.1; done
delta=$(( ${N2:-12000} - ${N1:-2000} ))
echo "== ib_send_lat ($mode)"
python3 Benchmarks/GuestProfile/per-round-trip.py "$out" 0 1 2 "$delta" maps-perftest.txt "${TOP:-25}"
echo "== net-bench transport rtt ($mode)"
python3 Benchmarks/GuestProfile/per-round-trip.py "$out" 2 3 4 "$delta" maps-ours.txt "${TOP:-25}"
