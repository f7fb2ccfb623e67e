# rdma-ratios.awk: the ratios of a scripts/rdma-bench log (its output), per round and their
# median, ours / perftest measured in the same round:
#   round trips: net-bench's p50 against 2 x perftest's t_typical (perftest reports half a round
#   trip); busy polling against `ib_send_lat`, completion events against `ib_send_lat -e`;
#   bandwidth: net-bench's echo in MB/s (10^6 bytes) against `ib_send_bw`'s one-way MB/sec, which
#   perftest counts in units of 2^20 bytes (converted here);
#   message rate: net-bench's transport rate against `ib_send_bw -s 64`'s MsgRate (Mpps).
# Usage: awk -f Benchmarks/rdma-ratios.awk LOG
/^== every RESULT line/ { done = 1 }
done { next }
/^== round [0-9]+:/ {
    round = $3; sub(":", "", round); round += 0
    section = $0
    if (round > rounds) rounds = round
    next
}
# perftest's result lines start with the message size. A figure that is not a finite number
# (perftest sometimes prints "inf") leaves that round without a base, so the round is skipped.
function finite(text) { return text ~ /^[0-9]+(\.[0-9]+)?$/ }
section ~ /ib_send_lat 64 B/ && $1 == "64" && NF >= 5 && finite($5) { base[round, "lat"] = 2 * $5 }
section ~ /ib_send_lat -e 64 B/ && $1 == "64" && NF >= 5 && finite($5) { base[round, "late"] = 2 * $5 }
section ~ /ib_send_bw 64 B/ && $1 == "64" && NF >= 5 && finite($5) { base[round, "rate"] = $5 * 1e6 }
section ~ /ib_send_bw 1 MiB/ && $1 == "1048576" && NF >= 4 && finite($4) { base[round, "bw"] = $4 * 1.048576 }
/^RESULT / {
    peer = ""; workload = ""; value = ""
    for (i = 2; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "peer") peer = kv[2]
        else if (kv[1] == "workload") workload = kv[2]
        else if (kv[1] == "value") value = kv[2]
    }
    key = peer ":" workload
    if (section ~ /eager/) key = key ":eager"
    if (section ~ /handler server/) key = key ":handler"
    ours[round, key] = value + 0
}
function line(name, key, against,    r, n, v, i, j, t, text) {
    n = 0; text = ""
    for (r = 1; r <= rounds; r++) {
        if (!((r, key) in ours) || !((r, against) in base) || base[r, against] == 0) continue
        v[++n] = ours[r, key] / base[r, against]
        text = text (n > 1 ? ", " : "") sprintf("%.2f", v[n])
    }
    if (n == 0) return
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    printf "%-58s %-22s median %.2fx\n", name, text, (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2)
}
END {
    print "== ratios per round, ours / perftest in the same round (median of the rounds)"
    line("transport rtt, events / 2 x ib_send_lat -e", "swift-net-transport-rdma:rtt", "late")
    line("transport rtt, events, handler server / 2 x ib_send_lat -e", "swift-net-transport-rdma:rtt:handler", "late")
    line("transport rtt, busy polling / 2 x ib_send_lat", "swift-net-transport-rdma-poll:rtt", "lat")
    line("transport rtt, busy polling, handler server / 2 x ib_send_lat", "swift-net-transport-rdma-poll:rtt:handler", "lat")
    line("transport rtt, cores polling while idle / 2 x ib_send_lat -e", "swift-net-transport-rdma-idlepoll:rtt", "late")
    line("rpc rtt, events / 2 x ib_send_lat -e", "swift-net-rpc-rdma:rtt", "late")
    line("transport 1 MiB echo, rendezvous / ib_send_bw", "swift-net-transport-rdma:bulk", "bw")
    line("transport 1 MiB echo, rendezvous, handler server / ib_send_bw", "swift-net-transport-rdma:bulk:handler", "bw")
    line("rpc 1 MiB echo, rendezvous / ib_send_bw", "swift-net-rpc-rdma:bulk", "bw")
    line("transport 1 MiB echo, eager / ib_send_bw", "swift-net-transport-rdma:bulk:eager", "bw")
    line("transport rate, 64 B / ib_send_bw -s 64 message rate", "swift-net-transport-rdma:rate", "rate")
}
