#!/usr/bin/env bash
# Benchmarks/GuestProfile/host-perf.sh: where the host's CPU goes while the soft-RoCE guest runs
# `ib_send_lat` and then net-bench's transport rtt over RDMA, per round trip of each: samples of
# the qemu process (`perf record -e cpu-clock`, the host has no hardware counters), split into
# translated guest code, the look-up of the next translated block (`helper_lookup_tb_ptr`, after
# every return, indirect call and jump to another page), the global block hash table (when that
# look-up misses the vCPU's jump cache), the rest of qemu, and the host kernel.
#
# Equal guest instruction counts can cost the host very different times: see docs/BENCHMARKS.md,
# "fourteenth stop". Needs perf and `make bench` first.
#
# usage: Benchmarks/GuestProfile/host-perf.sh [events|busy] [NET_BENCH_BINARY]
# Environment: N (round trips per program, 60000), SECONDS_SAMPLED (8).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/arguments.sh"
command -v perf >/dev/null || { echo "$0: needs perf (apt-get install linux-perf)" >&2; exit 1; }
out=.build/host-perf
rm -rf "$out"; mkdir -p "$out"
cp "$bin" "$out/net-bench"
n=${N:-60000}
sampled=${SECONDS_SAMPLED:-8}

guest_script=$(cat <<'EOS'
set -u
out=.build/host-perf
if [ "$MODE" = busy ]; then e=""; extra="--rdma-busy-poll-us 100000"; else e="-e"; extra=""; fi
echo "MARK perftest"; sleep 1
taskset -c 0 ib_send_lat -F $e -d "$RDMA_DEVICE" -x "$RDMA_GID_INDEX" -s 64 -n "$N" -p 18515 >/dev/null 2>&1 &
s=$!; sleep 1
taskset -c 1 ib_send_lat -F $e -d "$RDMA_DEVICE" -x "$RDMA_GID_INDEX" -s 64 -n "$N" -p 18515 "$RDMA_ADDR" 2>&1 |
    awk '/^ 64/ {print "PERFTEST t_typical=" $5}'
wait "$s"
echo "MARK ours"; sleep 1
taskset -c 0 $out/net-bench serve --layer transport --transport rdma $extra --host "$RDMA_ADDR" --port 0 >/tmp/serve.log 2>&1 &
s=$!; port=""
for _ in $(seq 600); do port=$(sed -n 's/^LISTENING port=//p' /tmp/serve.log); [ -n "$port" ] && break; sleep 0.1; done
taskset -c 1 $out/net-bench run --layer transport --transport rdma $extra --workload rtt --warmup 300 \
    --count "$N" --max-s 600 --host "$RDMA_ADDR" --port "$port" 2>/dev/null | grep RESULT
kill "$s"; wait "$s" 2>/dev/null
echo "MARK end"
EOS
)
# At each MARK, sample qemu for a while once the program is in its steady state.
scripts/rdma-vm --timeout 900 -- env MODE="$mode" N="$n" bash -c "$guest_script" | tee "$out/guest.log" |
    while IFS= read -r line; do
        echo "$line"
        case $line in
            "MARK perftest" | "MARK ours")
                name=${line#MARK }
                qemu=$(pgrep -f qemu-system-x86_64 | head -1)
                (sleep 4; perf record -q -e cpu-clock -F 4000 -p "$qemu" -o "$out/$name.data" -- sleep "$sampled" \
                    >/dev/null 2>&1) & ;;
        esac
    done
wait
# helper_lookup_tb_ptr is static: it is the code after `curr_cflags`, up to the next exported
# symbol, in this qemu (Debian's 7.2), where perf shows bare addresses for it.
qemu_binary=$(command -v qemu-system-x86_64)
read -r lookup_lo lookup_hi < <(nm -D -n --defined-only "$qemu_binary" |
    awk '$3 == "curr_cflags" { lo = $1; getline; print lo, $1; exit }')
# Round trips per second of each: perftest's t_typical is half a round trip; net-bench's p50 is one.
pt=$(sed -n 's/^PERFTEST t_typical=//p' "$out/guest.log")
ours=$(sed -n 's/.*workload=rtt value=\([0-9.]*\).*/\1/p' "$out/guest.log")
for name in perftest ours; do
    if [[ $name == perftest ]]; then rtt=$(python3 -c "print(2 * $pt)"); else rtt=$ours; fi
    perf report -i "$out/$name.data" --no-children --sort dso,sym -g none --stdio -F sample,dso,sym 2>/dev/null |
        python3 -c '
import sys, re, collections
rtt, seconds, hz, name = float(sys.argv[1]), float(sys.argv[2]), 4000, sys.argv[3]
lo, hi = int(sys.argv[4], 16), int(sys.argv[5], 16)
def lookup(sym):
    m = re.search(r"0x([0-9a-f]+)", sym)
    return sym.strip().endswith("curr_cflags") or (m is not None and lo <= int(m.group(1), 16) < hi)
trips = seconds * 1e6 / rtt
cats = collections.Counter()
for line in sys.stdin:
    f = line.split(None, 2)
    if len(f) < 3 or not f[0].isdigit(): continue
    n, dso, sym = int(f[0]), f[1], f[2]
    if dso.startswith("[JIT]"): c = "translated guest code"
    elif "qht_lookup" in sym: c = "block hash table (jump-cache misses)"
    elif dso.startswith("qemu-system") and lookup(sym): c = "next-block look-up (helper_lookup_tb_ptr)"
    elif dso.startswith("qemu-system") or dso.startswith("accel-tcg"): c = "rest of qemu"
    elif "kernel" in dso: c = "host kernel (wake-ups, futexes)"
    else: c = "libraries (libc, glib)"
    cats[c] += n
print(f"== {name}: round trip {rtt:.1f} us; host CPU per round trip, both vCPUs and qemu (us):")
for c, n in cats.most_common():
    print(f"   {n / hz / trips * 1e6:7.1f}  {c}")
print(f"   {sum(cats.values()) / hz / trips * 1e6:7.1f}  total")
' "$rtt" "$sampled" "$name" "$lookup_lo" "$lookup_hi"
done
