# Sourced by run.sh and host-perf.sh with their arguments: moves to the repository root and sets
# `mode` (events or busy, the first argument) and `bin` (the net-bench to profile, the second;
# .build/release/net-bench by default), or exits with their usage.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mode=${1:-events}
bin=${2:-.build/release/net-bench}
[[ $mode == events || $mode == busy ]] || { echo "usage: $0 [events|busy] [NET_BENCH_BINARY]" >&2; exit 2; }
[[ -x $bin ]] || { echo "$0: no $bin: make bench first" >&2; exit 1; }
