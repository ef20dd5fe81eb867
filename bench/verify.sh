#!/usr/bin/env bash
# Verification benchmark: full `ringfence verify` against `iptables-restore --test`
# parsing the same 100k-rule file, plus batch `trace` throughput, in one run.
#
# Usage (as root): bench/verify.sh [RULES] [PACKETS]
# Prints a Markdown table for BENCHMARKS.md ("Verification"). RUNS=n sets the
# number of runs (medians are reported); BEFORE=/path/to/an/older/ringfence
# adds rows for that binary, timed in the same loop, for before/after tables.
# iptables-restore runs in a throwaway network namespace (rf-bench-<pid>), which
# is removed on exit; nothing touches the root namespace's firewall.
# Prerequisites (installed here with apt-get when missing, as root): iproute2,
# iptables, python3, GNU time (/usr/bin/time).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/prereqs.sh
rf_need_root "iptables-restore --test runs in a network namespace" || exit 2
rf_need_tools ip:iproute2 iptables-restore:iptables python3:python3 /usr/bin/time:time || exit 2
RULES=${1:-100000}
PACKETS=${2:-1000000}
RUNS=${RUNS:-3}
WORK=$(mktemp -d /tmp/rf-bench.XXXXXX)
NS="rf-bench-$$"
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -q -p ringfence-cli)
BIN="$ROOT/target/release/ringfence"
python3 "$ROOT/bench/gen_ruleset.py" --rules "$RULES" "$WORK/big" >"$WORK/gen.txt"
ip netns add "$NS"

# One timed run: wall seconds, user+sys seconds, peak RSS in MB.
timed() {
    local out=$1
    shift
    local rc=0
    /usr/bin/time -f "%e %U %S %M" -o "$out.raw" "$@" || rc=$?
    # time(1) prepends a line when the command exits non-zero.
    tail -n1 "$out.raw" >"$out"
    return $rc
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$WORK/ipt.all"
: >"$WORK/ver.all"
for _ in $(seq "$RUNS"); do
    timed "$WORK/t" ip netns exec "$NS" iptables-restore --test <"$WORK/big.rules"
    cat "$WORK/t" >>"$WORK/ipt.all"
    # verify exits 1 when it finds something (it does on this ruleset).
    timed "$WORK/t" "$BIN" verify --site "$ROOT/examples/site.yaml" --ruleset "$WORK/big.rules" --format json >"$WORK/verify.json" || true
    cat "$WORK/t" >>"$WORK/ver.all"
    if [ -n "${BEFORE:-}" ]; then
        timed "$WORK/t" "$BEFORE" verify --site "$ROOT/examples/site.yaml" --ruleset "$WORK/big.rules" --format json >"$WORK/verify.before.json" || true
        cat "$WORK/t" >>"$WORK/verb.all"
    fi
done
if [ -n "${BEFORE:-}" ]; then
    cmp -s "$WORK/verify.json" "$WORK/verify.before.json" || echo "note: the BEFORE binary's verify report differs" >&2
fi
python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$WORK/verify.json"

# Batch trace: packets aimed at service addresses, ACL hosts and elsewhere.
python3 - "$WORK/packets.jsonl" "$PACKETS" <<'EOF'
import random, sys
rnd = random.Random(7)
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        k = rnd.random()
        if k < 0.4:
            dst = "10.%d.%d.%d" % (96, rnd.randrange(100), rnd.randrange(256))
        elif k < 0.8:
            dst = "172.%d.%d.%d" % (16 + rnd.randrange(2), rnd.randrange(256), rnd.randrange(1, 255))
        else:
            dst = "203.0.113.%d" % rnd.randrange(256)
        src = rnd.choice(["10.244.%d.%d", "192.168.%d.%d", "10.%d.7.%d", "198.51.%d.%d"]) % (rnd.randrange(4), rnd.randrange(256))
        proto = "udp" if rnd.random() < 0.1 else "tcp"
        f.write('{"src":"%s","dst":"%s","proto":"%s","sport":%d,"dport":%d,"iif":"eth0","oif":"eth1"}\n'
                % (src, dst, proto, 32768 + i % 20000, rnd.choice([22, 53, 80, 443, 3306, 5432, 6443, 8080, 8443, 9090])))
EOF
# trace exits 1 when some packet's fate is undecided (unknown or depends);
# that is an answer, not a failure of the run. Exit 2 still stops the script.
# The same ruleset with one packet: the fixed cost of reading the ruleset.
echo '{"src":"10.244.0.1","dst":"10.96.0.1","proto":"tcp","sport":1,"dport":80}' >"$WORK/one.jsonl"
: >"$WORK/tr.all"
: >"$WORK/tr1.all"
for _ in $(seq "$RUNS"); do
    timed "$WORK/t" "$BIN" trace --ruleset "$WORK/big.rules" --packets "$WORK/packets.jsonl" >"$WORK/trace.out" || [ $? -eq 1 ]
    cat "$WORK/t" >>"$WORK/tr.all"
    test "$(wc -l <"$WORK/trace.out")" -eq "$PACKETS"
    timed "$WORK/t" "$BIN" trace --ruleset "$WORK/big.rules" --packets "$WORK/one.jsonl" >/dev/null || [ $? -eq 1 ]
    cat "$WORK/t" >>"$WORK/tr1.all"
    if [ -n "${BEFORE:-}" ]; then
        timed "$WORK/t" "$BEFORE" trace --ruleset "$WORK/big.rules" --packets "$WORK/packets.jsonl" >"$WORK/trace.before.out" || [ $? -eq 1 ]
        cat "$WORK/t" >>"$WORK/trb.all"
        cmp -s "$WORK/trace.out" "$WORK/trace.before.out" || echo "note: the BEFORE binary's trace output differs" >&2
    fi
done

col() { awk -v c="$1" '{print $c}' "$2" | median; }
cpu() { awk '{print $2 + $3}' "$1" | median; }
ipt_wall=$(col 1 "$WORK/ipt.all"); ipt_cpu=$(cpu "$WORK/ipt.all"); ipt_mem=$(col 4 "$WORK/ipt.all")
ver_wall=$(col 1 "$WORK/ver.all"); ver_cpu=$(cpu "$WORK/ver.all"); ver_mem=$(col 4 "$WORK/ver.all")
tr_wall=$(col 1 "$WORK/tr.all"); tr_cpu=$(cpu "$WORK/tr.all"); tr_mem=$(col 4 "$WORK/tr.all")
one_wall=$(col 1 "$WORK/tr1.all")
rate=$(python3 -c "print(int($PACKETS / max(0.001, $tr_wall - $one_wall)))")
rate_all=$(python3 -c "print(int($PACKETS / max(0.001, $tr_wall)))")

echo "Ruleset: $(cat "$WORK/gen.txt") ($(wc -l <"$WORK/big.rules") lines, $(du -h "$WORK/big.rules" | cut -f1)); nft JSON twin $(du -h "$WORK/big.nft.json" | cut -f1)."
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg); median of $RUNS runs."
echo
echo "| Step | Wall (s) | CPU user+sys (s) | Peak RSS (MB) |"
echo "|---|---|---|---|"
echo "| \`iptables-restore --test\` (parse only, iptables $(iptables --version | awk '{print $2}')) | $ipt_wall | $ipt_cpu | $((ipt_mem / 1024)) |"
echo "| \`ringfence verify\` (parse, flows, replies, excess, shadowed, redundant) | $ver_wall | $ver_cpu | $((ver_mem / 1024)) |"
echo "| \`ringfence trace --packets\` ($PACKETS packets) | $tr_wall | $tr_cpu | $((tr_mem / 1024)) |"
if [ -n "${BEFORE:-}" ]; then
    echo "| before: \`ringfence verify\` | $(col 1 "$WORK/verb.all") | $(cpu "$WORK/verb.all") | $(($(col 4 "$WORK/verb.all") / 1024)) |"
    echo "| before: \`ringfence trace --packets\` | $(col 1 "$WORK/trb.all") | $(cpu "$WORK/trb.all") | $(($(col 4 "$WORK/trb.all") / 1024)) |"
fi
echo
echo "Batch trace (medians): $rate_all packets/s for the whole command, ruleset load included; $rate packets/s after the ${one_wall} s load."
