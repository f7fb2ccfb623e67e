#!/usr/bin/env python3
"""Guest instructions per round trip, from three tbprof dumps taken around two runs of the same
program with N1 and N2 round trips: per translation block, ((h2 - h1) - (h1 - h0)) / (N2 - N1),
so start-up and tear-down cancel. Prints, for the server (vCPU 0) and the client (vCPU 1), user
and kernel instructions per round trip, the translation blocks executed (and how many distinct
ones), the functions with the most instructions, and the calls per round trip of a few runtime
entry points.

usage: per-round-trip.py DIR H0 H1 H2 DELTA MAPS [TOP]
  DIR: the dumps (hist-NNN.txt), kallsyms.txt and MAPS (/proc/PID/maps of the server, then the
  client, each after a line starting with "== PID COMMAND"); H0..H2: dump numbers; DELTA: N2 - N1.
Needs nm, objdump and `swift demangle`. Addresses are the guest's: run the programs with
`setarch -R` so both runs share one layout."""
import bisect, collections, os, subprocess, sys

d, h_ids, delta, maps = sys.argv[1], [int(x) for x in sys.argv[2:5]], int(sys.argv[5]), sys.argv[6]
top = int(sys.argv[7]) if len(sys.argv) > 7 else 25

def load(i):
    table = collections.defaultdict(lambda: [0, 0, 0])
    for line in open(f"{d}/hist-{i:03d}.txt"):
        addr, n, c0, c1 = line.split()
        e = table[int(addr, 16)]
        e[0] = int(n); e[1] += int(c0); e[2] += int(c1)
    return table

h0, h1, h2 = (load(i) for i in h_ids)
per = {}  # address -> (instructions vCPU0, vCPU1, executions vCPU0, vCPU1) per round trip
for a in set(h0) | set(h1) | set(h2):
    n = max(h[a][0] for h in (h0, h1, h2) if a in h)
    g = lambda h, k: h[a][k] if a in h else 0
    e = [((g(h2, k) - g(h1, k)) - (g(h1, k) - g(h0, k))) / delta for k in (1, 2)]
    per[a] = (n * e[0], n * e[1], e[0], e[1])

kernel = sorted((int(f[0], 16), f[2]) for f in (l.split() for l in open(f"{d}/kallsyms.txt")) if f[1] in "tTwW")
kaddr = [k[0] for k in kernel]
procs, cur = [], None
for line in open(f"{d}/{maps}"):
    if line.startswith("=="):
        cur = []
        if len(line.split()) > 2: procs.append(cur)
        continue
    f = line.split()
    if cur is not None and len(f) >= 6 and "x" in f[1]:
        s, e = (int(x, 16) for x in f[0].split("-"))
        cur.append((s, e, int(f[2], 16), f[5]))

cache = {}
def symbols(path):
    if path not in cache:
        out = subprocess.run(["nm", "-n", "--defined-only", path], capture_output=True, text=True).stdout
        if not out.strip():
            out = subprocess.run(["nm", "-D", "-n", "--defined-only", path], capture_output=True, text=True).stdout
        entries = sorted((int(f[0], 16), f[2]) for f in (l.split() for l in out.splitlines()) if len(f) == 3 and f[1] in "tTwWiI")
        cache[path] = (entries, [x[0] for x in entries])
    return cache[path]

def name(a, proc):
    if a >> 63:
        i = bisect.bisect_right(kaddr, a) - 1
        return "[kernel] " + (kernel[i][1] if i >= 0 else "?")
    for s, e, off, path in procs[proc]:
        if s <= a < e:
            entries, addrs = symbols(path)
            i = bisect.bisect_right(addrs, a - s + off) - 1
            return os.path.basename(path) + " " + (entries[i][1] if i >= 0 else "?")
    return "? (vdso or anonymous)"

entry_points = ("swift_retain", "swift_release", "swift_task_switch", "swift_task_alloc",
                "_ZL20withStatusRecordLock", "swift_isUniquelyReferenced_nonNull_native", "swift_beginAccess",
                "malloc", "swift_allocObject", "swift_continuation_init")
for vcpu, side in ((0, "server (vCPU 0)"), (1, "client (vCPU 1)")):
    total, user, kern = collections.Counter(), 0.0, 0.0
    for a, v in per.items():
        if abs(v[vcpu]) < 1e-9: continue
        total[name(a, vcpu)] += v[vcpu]
        if a >> 63: kern += v[vcpu]
        else: user += v[vcpu]
    print(f"== {side}: {user:,.0f} user and {kern:,.0f} kernel instructions per round trip")
    # Translation blocks executed, and distinct ones run at least every other round trip. Under
    # TCG these weigh more than instructions: every return, indirect call and jump to another page
    # looks the next block up, in a 4,096-entry cache per vCPU, then in a global hash table.
    blocks = [sum(v[vcpu + 2] for a, v in per.items() if (a >> 63) == k) for k in (0, 1)]
    distinct = [sum(1 for a, v in per.items() if (a >> 63) == k and v[vcpu + 2] >= 0.5) for k in (0, 1)]
    print(f"   translation blocks per round trip: {blocks[0]:,.0f} user and {blocks[1]:,.0f} kernel "
          f"({distinct[0]:,} and {distinct[1]:,} distinct)")
    # Distinct user blocks per module and per function: under TCG the code's spread costs more
    # than its instructions, so these show what to fold together.
    spread, modules = collections.Counter(), collections.Counter()
    for a, v in per.items():
        if not a >> 63 and v[vcpu + 2] >= 0.5:
            k = name(a, vcpu); spread[k] += 1; modules[k.split(" ", 1)[0]] += 1
    print("   distinct user blocks by module: " + ", ".join(f"{m} {n}" for m, n in modules.most_common(8)))
    names = [k for k, _ in total.most_common(top)]
    plain = subprocess.run(["swift", "demangle", "--simplified", "--compact"], capture_output=True, text=True,
                           input="\n".join(k.split(" ", 1)[1] for k in names)).stdout.splitlines()
    for k, p in zip(names, plain):
        print(f"{total[k]:8,.0f}  {k.split(' ', 1)[0][:16]:16s} {p[:120]}")
    calls = collections.Counter()
    for s, e, off, path in procs[vcpu] if vcpu < len(procs) else []:
        entries, _ = symbols(path)
        for addr, sym in entries:
            if any(sym.startswith(p) or sym.startswith("__" + p) for p in entry_points):
                v = per.get(addr - off + s)
                if v and v[vcpu + 2] > 0.05: calls[sym.split("@")[0]] += v[vcpu + 2]
    if os.environ.get("SPREAD"):
        names = [k for k, _ in spread.most_common(int(os.environ["SPREAD"]))]
        plain = subprocess.run(["swift", "demangle", "--simplified", "--compact"], capture_output=True, text=True,
                               input="\n".join(k.split(" ", 1)[1] for k in names)).stdout.splitlines()
        print("   functions with the most distinct blocks:")
        for k, p in zip(names, plain):
            print(f"{spread[k]:8,}  {k.split(' ', 1)[0][:16]:16s} {p[:120]}")
    if calls:
        print("   calls per round trip: " + ", ".join(f"{k[:40]} {v:.1f}" for k, v in calls.most_common(12)))
