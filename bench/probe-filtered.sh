#!/usr/bin/env bash
# Benchmark: `ringfence probe` with its defaults and with `--rate 0` against
# `nmap -sT -Pn -n -T4`, over TCP 30000-32767 on 20 lab hosts, from the same
# lab namespace, on two labs built side by side in one run:
#
#   reset:    the router accepts the whole NodePort range (the example
#             site's nftables rules): 6 ports per host open (the lab's
#             listeners), the others answer with a reset;
#   filtered: the same rules, but the router accepts only 30000-30999 and
#             silently drops 31000-32767 (35,360 of 55,360 ports filtered, as
#             a real deny-all firewall makes them).
#
# Every round checks, port for port, that each ringfence run gave the same
# state (open / closed / filtered) as nmap for all 55,360 ports. Needs root,
# iproute2, nftables, nmap, bc, python3. Everything happens inside
# `rf-bpr-*` / `rf-bpf-*` namespaces on 198.18.0.0/15 and is removed at the end.
#
#   [ROUNDS=3] [LABS="reset filtered"] bench/probe-filtered.sh [path/to/ringfence]
# Prerequisites are installed here with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/prereqs.sh
rf_need_root "the lab builds network namespaces" || exit 2
rf_need_tools ip:iproute2 nft:nftables nmap:nmap bc:bc python3:python3 || exit 2
RF=${1:-target/release/ringfence}
[ -x "$RF" ] || cargo build --release -p ringfence-cli
ROUNDS=${ROUNDS:-3}
LABS=${LABS:-reset filtered}
WORK=$(mktemp -d)
STATE=$WORK/state
cleanup() {
    for name in bpr bpf; do
        "$RF" lab down --name "$name" --state-dir "$STATE" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# The example site with 20 workload nodes as single hosts.
nodes=$(for i in $(seq 11 30); do printf '198.18.20.%s, ' "$i"; done)
sed "s|  workload: \[198.18.20.0/24, 198.18.21.0/24\]|  workload: [${nodes%, }]|" examples/site.yaml > "$WORK/site.yaml"
grep -q "198.18.20.30" "$WORK/site.yaml"
"$RF" generate --site "$WORK/site.yaml" --target nftables --family 4 --out "$WORK/reset.nft" >/dev/null
# The filtered lab's router accepts only the first thousand NodePorts.
sed 's|tcp dport 30000-32767 accept comment "avi-nodeport"|tcp dport 30000-30999 accept comment "avi-nodeport"|' \
    "$WORK/reset.nft" > "$WORK/filtered.nft"
grep -q "30000-30999" "$WORK/filtered.nft"
HOSTS=$(for i in $(seq 11 30); do printf '198.18.20.%s ' "$i"; done)

lab_ns() { # the avi-se host (198.18.30.1) of lab $1
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(next(h['ns'] for h in s['plan']['hosts'] if h['addr']=='198.18.30.1'))" "$STATE/lab-$1.json"
}

# ringfence probe in lab namespace $1, writing $2, with extra flags after.
rf() { local ns=$1 out=$2; shift 2; ip netns exec "$ns" "$RF" probe --site "$WORK/site.yaml" --from avi-se --flows avi-nodeport --format json --out "$out" "$@" 2>/dev/null || true; }
# shellcheck disable=SC2086
nm() { ip netns exec "$1" nmap -sT -Pn -n -T4 -p30000-32767 -oX "$2" $HOSTS >/dev/null; }
timed() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }

: > "$WORK/times"
for lab in $LABS; do
    case $lab in
        reset) name=bpr ;;
        filtered) name=bpf ;;
        *) echo "unknown lab $lab (reset, filtered)" >&2; exit 2 ;;
    esac
    "$RF" lab up --site "$WORK/site.yaml" --ruleset "$WORK/$lab.nft" --name "$name" --state-dir "$STATE" >/dev/null
    NS=$(lab_ns "$name")
    for r in $(seq 1 "$ROUNDS"); do
        # The order alternates so no tool always runs on a warmer cache.
        if [ $((r % 2)) -eq 1 ]; then
            d=$(timed rf "$NS" "$WORK/rf-default.json")
            z=$(timed rf "$NS" "$WORK/rf-rate0.json" --rate 0)
            n=$(timed nm "$NS" "$WORK/nmap.xml")
        else
            n=$(timed nm "$NS" "$WORK/nmap.xml")
            z=$(timed rf "$NS" "$WORK/rf-rate0.json" --rate 0)
            d=$(timed rf "$NS" "$WORK/rf-default.json")
        fi
        load=$(cut -d' ' -f1 /proc/loadavg)
        python3 - "$WORK/nmap.xml" "$WORK/rf-default.json" "$WORK/rf-rate0.json" "$lab" "$r" "$n" "$d" "$z" "$load" >> "$WORK/times" <<'PY'
import json, sys
import xml.etree.ElementTree as ET
xml, default, rate0, lab, rnd, tn, td, tz, load = sys.argv[1:]
# Every port nmap probed: listed ones, and the collapsed ones ("extraports"),
# whose ranges nmap's XML names.
nmap = {}
for h in ET.parse(xml).getroot().iter("host"):
    host = h.find("address").get("addr")
    for ex in h.iter("extraports"):
        for why in ex.iter("extrareasons"):
            for part in why.get("ports", "").split(","):
                if part:
                    a, _, b = part.partition("-")
                    for p in range(int(a), int(b or a) + 1):
                        nmap[(host, p)] = ex.get("state")
    for port in h.iter("port"):
        nmap[(host, int(port.get("portid")))] = port.find("state").get("state")
def states(path):
    rf = json.load(open(path))
    return {(r["dst"], r["port"]): r["state"] for r in rf["results"] if r["proto"] == "tcp" and 30000 <= r["port"] <= 32767}
out = [lab, rnd, tn, td, tz, load]
for name, path in (("defaults", default), ("rate0", rate0)):
    mine = states(path)
    diff = sorted(k for k in nmap.keys() | mine.keys() if nmap.get(k) != mine.get(k))
    for k in diff[:10]:
        print(f"{lab} round {rnd} {name}: {k[0]}:{k[1]} ringfence {mine.get(k)}, nmap {nmap.get(k)}", file=sys.stderr)
    out.append("yes" if not diff and len(mine) == len(nmap) == 20 * 2768 else f"NO({len(diff)})")
count = {s: sum(1 for v in nmap.values() if v == s) for s in ("open", "closed", "filtered")}
out.append(f"{count['open']}/{count['closed']}/{count['filtered']}")
print(" ".join(out))
PY
    done
    "$RF" lab down --name "$name" --state-dir "$STATE" >/dev/null
done

python3 - "$WORK/times" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print("targets: 55360 TCP (20 hosts x 2768 ports) per lab; states nmap open/closed/filtered")
print("| lab | round | nmap -sT -T4 | ringfence (defaults) | ringfence --rate 0 | load avg | same as nmap (defaults / rate 0) | nmap open/closed/filtered |")
print("|-----|-------|--------------|----------------------|--------------------|----------|----------------------------------|---------------------------|")
for lab, r, n, d, z, load, sd, sz, cnt in rows:
    print(f"| {lab} | {r} | {float(n):.2f} s | {float(d):.2f} s | {float(z):.2f} s | {load} | {sd} / {sz} | {cnt} |")
for lab in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == lab]
    mn, md, mz = (statistics.median(float(r[i]) for r in mine) for i in (2, 3, 4))
    print(f"| {lab} | median | {mn:.2f} s | {md:.2f} s ({md / mn:.2f}x) | {mz:.2f} s ({mz / mn:.2f}x) | | | |")
sys.exit(0 if all(r[6] == "yes" and r[7] == "yes" for r in rows) else 1)
PY
