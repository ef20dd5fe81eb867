#!/usr/bin/env bash
# Benchmark: `ringfence probe` vs `nmap -sT -Pn -n` over the full NodePort
# range (TCP 30000-32767) on 20 lab hosts, from the same lab namespace, in
# one run (ROUNDS rounds, order alternating). Needs root, iproute2,
# nftables, nmap, bc. Everything happens inside
# `rf-bnp-*` namespaces on 198.18.0.0/15 and is removed at the end.
#
#   [ROUNDS=5] [RATE=0] bench/probe-nodeport.sh [path/to/ringfence]
# Prerequisites are installed here with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/prereqs.sh
rf_need_root "the lab builds network namespaces" || exit 2
rf_need_tools ip:iproute2 nft:nftables nmap:nmap bc:bc python3:python3 || exit 2
RF=${1:-target/release/ringfence}
[ -x "$RF" ] || cargo build --release -p ringfence-cli
NAME=bnp
WORK=$(mktemp -d)
STATE=$WORK/state
cleanup() { "$RF" lab down --name "$NAME" --state-dir "$STATE" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

# The example site with 20 workload nodes as single hosts.
nodes=$(for i in $(seq 11 30); do printf '198.18.20.%s, ' "$i"; done)
sed "s|  workload: \[198.18.20.0/24, 198.18.21.0/24\]|  workload: [${nodes%, }]|" examples/site.yaml > "$WORK/site.yaml"
grep -q "198.18.20.30" "$WORK/site.yaml"
"$RF" generate --site "$WORK/site.yaml" --target nftables --family 4 --out "$WORK/rules.nft" >/dev/null
"$RF" lab up --site "$WORK/site.yaml" --ruleset "$WORK/rules.nft" --name "$NAME" --state-dir "$STATE"

# The avi-se host (198.18.30.1) probes the 20 nodes.
NS=$(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(next(h['ns'] for h in s['plan']['hosts'] if h['addr']=='198.18.30.1'))" "$STATE/lab-$NAME.json")
HOSTS=$(for i in $(seq 11 30); do printf '198.18.20.%s ' "$i"; done)

# ROUNDS rounds in the one lab; the order alternates (ringfence first in odd
# rounds, nmap first in even ones) so neither always runs on a warmer cache.
# RATE=N probes ringfence at its own rate cap instead of none (nmap -sT has
# no rate cap either: it adapts its parallelism).
ROUNDS=${ROUNDS:-5}
RATE=${RATE:-0}
rf() { ip netns exec "$NS" "$RF" probe --site "$WORK/site.yaml" --from avi-se --flows avi-nodeport --rate "$RATE" --concurrency 1024 --timeout 250 --format json --out "$WORK/rf.json" || true; }
# shellcheck disable=SC2086
nm() { ip netns exec "$NS" nmap -sT -Pn -n -p30000-32767 -oG "$WORK/nmap.gnmap" $HOSTS >/dev/null; }
timed() { local t0 t1; t0=$(date +%s.%N); "$1"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
: > "$WORK/times"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then a=$(timed rf); b=$(timed nm); else b=$(timed nm); a=$(timed rf); fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    python3 - "$WORK/rf.json" "$WORK/nmap.gnmap" "$r" "$a" "$b" "$load" >> "$WORK/times" <<'PY'
import json, re, sys
rf = json.load(open(sys.argv[1]))
mine = {(r["dst"], r["port"]) for r in rf["results"] if r["state"] == "open" and 30000 <= r["port"] <= 32767}
probed = sum(1 for r in rf["results"] if 30000 <= r["port"] <= 32767)
theirs = set()
for line in open(sys.argv[2]):
    m = re.match(r"Host: (\S+) .*Ports: (.*)", line)
    if m:
        for p in m.group(2).split(","):
            f = p.strip().split("/")
            if len(f) > 1 and f[1] == "open":
                theirs.add((m.group(1), int(f[0])))
same = mine == theirs and probed == 20 * 2768
if not same:
    states = {(r["dst"], r["port"]): r["state"] for r in rf["results"]}
    for k in sorted(mine ^ theirs):
        print(f"round {sys.argv[3]}: {k[0]}:{k[1]} ringfence {states.get(k)}, nmap {'open' if k in theirs else 'not open'}", file=sys.stderr)
print(sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], len(mine), len(theirs), "yes" if same else "NO")
PY
done

python3 - "$WORK/times" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print("targets: 55360 TCP (20 hosts x 2768 ports)")
print("| round | ringfence probe | nmap -sT | load avg | open (rf/nmap) | same answers |")
print("|-------|-----------------|----------|----------|----------------|--------------|")
for r, a, b, load, x, y, same in rows:
    print(f"| {r} | {float(a):.2f} s | {float(b):.2f} s | {load} | {x}/{y} | {same} |")
ma = statistics.median(float(r[1]) for r in rows)
mb = statistics.median(float(r[2]) for r in rows)
print(f"| median | {ma:.2f} s | {mb:.2f} s | | | |")
sys.exit(0 if all(r[6] == "yes" for r in rows) else 1)
PY
