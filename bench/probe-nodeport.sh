#!/usr/bin/env bash
# Benchmark: `ringfence probe` vs `nmap -sT -Pn -n` over the full NodePort
# range (TCP 30000-32767) on 20 lab hosts, from the same lab namespace, in
# one run. Needs root, iproute2, nftables, nmap. Everything happens inside
# `rf-bnp-*` namespaces on 198.18.0.0/15 and is removed at the end.
#
#   bench/probe-nodeport.sh [path/to/ringfence]
set -euo pipefail
cd "$(dirname "$0")/.."
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

t0=$(date +%s.%N)
ip netns exec "$NS" "$RF" probe --site "$WORK/site.yaml" --from avi-se --flows avi-nodeport --rate 0 --concurrency 1024 --timeout 250 --format json --out "$WORK/rf.json" || true
t1=$(date +%s.%N)
# shellcheck disable=SC2086
ip netns exec "$NS" nmap -sT -Pn -n -p30000-32767 -oG "$WORK/nmap.gnmap" $HOSTS >/dev/null
t2=$(date +%s.%N)

python3 - "$WORK/rf.json" "$WORK/nmap.gnmap" "$t0" "$t1" "$t2" <<'PY'
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
t0, t1, t2 = map(float, sys.argv[3:6])
print(f"targets: {probed} TCP (20 hosts x 2768 ports)")
print(f"open: ringfence {len(mine)}, nmap {len(theirs)}, same answers: {mine == theirs}")
print(f"ringfence probe: {t1 - t0:.2f} s")
print(f"nmap -sT:        {t2 - t1:.2f} s")
sys.exit(0 if mine == theirs and probed == 20 * 2768 else 1)
PY
