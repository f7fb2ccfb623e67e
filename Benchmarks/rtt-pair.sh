# Sourced by critical-path.sh and timeline.sh: starts net-bench's 64 B rtt ping-pong for `$layer`
# (runtime, transport or rpc), server on CPU 0 and client on CPU 1, running long enough to be
# traced; sets `server`, `client` (their PIDs) and `scratch` (a folder removed at exit, with the
# processes). Uses `B` (default .build/release/net-bench).
B=${B:-.build/release/net-bench}
[[ -x $B ]] || { echo "build first: make bench" >&2; exit 2; }
case $layer in
  runtime) serve=(--layer runtime); run=(--layer runtime --workload rtt) ;;
  transport|rpc) serve=(--layer "$layer" --transport tcp); run=(--layer "$layer" --transport tcp --workload rtt) ;;
  *) echo "unknown layer: $layer" >&2; exit 2 ;;
esac
scratch=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$scratch"' EXIT
taskset -c 0 "$B" serve "${serve[@]}" --port 0 >"$scratch/serve" 2>/dev/null & server=$!; pids+=("$server")
for _ in $(seq 50); do grep -q LISTENING "$scratch/serve" && break; sleep 0.1; done
port=$(grep -o 'port=[0-9]*' "$scratch/serve" | cut -d= -f2)
taskset -c 1 "$B" run "${run[@]}" --port "$port" --count 1000000 --max-s 30 >/dev/null 2>&1 & client=$!; pids+=("$client")
sleep 1.5  # past the warm-up
