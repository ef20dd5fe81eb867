#!/usr/bin/env bash
# Shape matrix for verification (issue 15, "no shape may blow up"): for each
# shape of bench/gen_shapes.py at RULES rules, in one run, `iptables-restore
# --test` on the file, full `ringfence verify` against the site whose zones
# the rules reference, and batch `ringfence trace` throughput.
#
# Usage (as root): bench/verify-shapes.sh [RULES] [PACKETS]
#   SHAPES="overlap marks" limits the shapes; BEFORE=/path/to/an/older/ringfence
#   adds that binary's verify and trace, in the same loop (before/after rows);
#   LIMIT=SECONDS stops a verify that takes longer (reported as "> LIMIT");
#   RINGFENCE=/path/to/ringfence times that binary instead of building one.
# Prints one Markdown table for BENCHMARKS.md: wall time and peak RSS of
# each side, verify's CPU time (user + sys: on a shared machine the wall
# time swings with the load, printed per shape as the one-minute average). iptables-restore runs in a
# throwaway network namespace (rf-bench-shapes-<pid>), removed on exit;
# nothing touches the root namespace's firewall.
# Prerequisites (installed here with apt-get when missing, as root): iproute2,
# iptables, python3, GNU time (/usr/bin/time).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/prereqs.sh
rf_need_root "iptables-restore --test runs in a network namespace" || exit 2
rf_need_tools ip:iproute2 iptables-restore:iptables python3:python3 /usr/bin/time:time timeout:coreutils || exit 2
RULES=${1:-100000}
PACKETS=${2:-1000000}
SHAPES=${SHAPES:-overlap negation return kube-nat marks}
LIMIT=${LIMIT:-600}
WORK=$(mktemp -d /tmp/rf-bench-shapes.XXXXXX)
NS="rf-bench-shapes-$$"
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -n "${RINGFENCE:-}" ]; then
    BIN=$RINGFENCE
else
    cargo build --release -q -p ringfence-cli
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ringfence"
fi
ip netns add "$NS"

# One timed run: "wall user+sys maxrss_kb exit" in $1; never fails.
timed() {
    local out=$1
    shift
    local rc=0
    /usr/bin/time -f "%e %U %S %M" -o "$out.raw" timeout "$LIMIT" "$@" || rc=$?
    tail -n1 "$out.raw" | awk -v rc="$rc" '{printf "%s %.2f %d %d\n", $1, $2 + $3, $4, rc}' >"$out"
}
ratio() { python3 -c "print('%.2f' % ($1 / max(0.001, $2)))"; }

# Batch trace packets: zone sources to application servers and service IPs.
python3 - "$WORK/packets.jsonl" "$PACKETS" <<'EOF'
import random, sys
rnd = random.Random(15)
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        if rnd.random() < 0.7:
            dst = "172.%d.%d.%d" % (16 + rnd.randrange(4), rnd.randrange(64), rnd.randrange(1, 255))
        else:
            dst = "10.96.%d.%d" % (rnd.randrange(100), rnd.randrange(256))
        src = "10.%d.%d.%d" % (rnd.randrange(4), rnd.randrange(256), rnd.randrange(1, 255))
        proto = "udp" if rnd.random() < 0.15 else "tcp"
        f.write('{"src":"%s","dst":"%s","proto":"%s","sport":%d,"dport":%d,"iif":"eth0","oif":"eth1"}\n'
                % (src, dst, proto, 32768 + i % 20000,
                   rnd.choice([22, 25, 53, 80, 443, 1433, 3306, 5432, 6379, 8443, 9200, 30050])))
EOF

rows=()
for shape in $SHAPES; do
    gen=$(python3 bench/gen_shapes.py --shape "$shape" --rules "$RULES" "$WORK/$shape")
    f="$WORK/$shape.rules"
    timed "$WORK/ipt" ip netns exec "$NS" iptables-restore --test <"$f"
    read -r ipt_wall ipt_cpu ipt_rss ipt_rc <"$WORK/ipt"
    [ "$ipt_rc" = 0 ] || { echo "iptables-restore --test refused $shape (exit $ipt_rc)" >&2; exit 1; }
    # verify exits 1 when it finds something; 124 is the time limit.
    timed "$WORK/ver" "$BIN" verify --ruleset "$f" --site "$WORK/$shape.site.yaml" --format json >"$WORK/$shape.verify.json"
    read -r v_wall v_cpu v_rss v_rc <"$WORK/ver"
    timed "$WORK/tr" "$BIN" trace --ruleset "$f" --packets "$WORK/packets.jsonl" >"$WORK/trace.out"
    test "$(wc -l <"$WORK/trace.out")" -eq "$PACKETS"
    read -r t_wall t_cpu t_rss t_rc <"$WORK/tr"
    echo '{"src":"10.0.0.1","dst":"172.16.0.1","proto":"tcp","sport":1,"dport":80}' >"$WORK/one.jsonl"
    timed "$WORK/tr1" "$BIN" trace --ruleset "$f" --packets "$WORK/one.jsonl" >/dev/null
    read -r o_wall _ _ _ <"$WORK/tr1"
    pps=$(python3 -c "print(int($PACKETS / max(0.001, $t_wall - $o_wall)))")
    vtxt="$v_wall"
    [ "$v_rc" = 124 ] && vtxt="> $LIMIT (stopped)"
    load=$(cut -d' ' -f1 /proc/loadavg)
    rows+=("| $shape ($gen) | $ipt_wall / $((ipt_rss / 1024)) | $vtxt / $((v_rss / 1024)) (exit $v_rc) | $v_cpu | $(ratio "$v_wall" "$ipt_wall") | $pps | $load |")
    if [ -n "${BEFORE:-}" ]; then
        timed "$WORK/verb" "$BEFORE" verify --ruleset "$f" --site "$WORK/$shape.site.yaml" --format json >/dev/null
        read -r b_wall b_cpu b_rss b_rc <"$WORK/verb"
        timed "$WORK/trb" "$BEFORE" trace --ruleset "$f" --packets "$WORK/packets.jsonl" >/dev/null
        read -r bt_wall _ _ _ <"$WORK/trb"
        timed "$WORK/trb1" "$BEFORE" trace --ruleset "$f" --packets "$WORK/one.jsonl" >/dev/null
        read -r bo_wall _ _ _ <"$WORK/trb1"
        bpps=$(python3 -c "print(int($PACKETS / max(0.001, $bt_wall - $bo_wall)))")
        btxt="$b_wall"
        [ "$b_rc" = 124 ] && btxt="> $LIMIT (stopped)"
        rows+=("| $shape, before | (same run) | $btxt / $((b_rss / 1024)) (exit $b_rc) | $b_cpu | $(ratio "$b_wall" "$ipt_wall") | $bpps | $(cut -d' ' -f1 /proc/loadavg) |")
    fi
    echo "done: $shape" >&2
done

echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg); one run; iptables $(iptables --version | awk '{print $2, $3}')."
echo
echo "| Shape (rules in chains) | \`iptables-restore --test\` s / MB | \`ringfence verify\` s / MB | verify s CPU | verify ÷ restore (wall) | batch \`trace\` packets/s (load excluded) | load (1 min) |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
