#!/usr/bin/env bash
# Continuous assurance benchmark (issue 19): how long from a one-rule change
# of a ruleset file to the change `ringfence watch --source file:` reports,
# on the 100k-rule benchmark ruleset (bench/gen_ruleset.py), beside a plain
# full `ringfence verify` of the same file in the same run.
#
# Two measurements, side by side in one run:
#  * the library's incremental verifier (crates/ringfence-analysis/examples/
#    incremental_bench.rs): CHANGES random one-rule changes (delete a
#    random rule and insert it back; replace a random rule by a copy with
#    another destination port and put it back), each timed from the call
#    to its updated verdict (wall time, and wall time less the thread's
#    wait for a CPU, which on a shared machine is most of the tail); a
#    kube-proxy resync (every KUBE-* chain
#    rewritten, one service's rule changed); peak RSS; a full verify in the
#    same process; and a check that the final findings equal a full verify.
#    This is the issue's figure (median < 1 ms, p99 < 10 ms, resync
#    < 100 ms, memory < 1 GB).
#  * `watch --source file:` end to end: every change re-reads and re-parses
#    the whole file before the incremental update, so its latency is about
#    one parse plus the poll interval.
#
# Each change inserts (then removes) one accept rule at the top of FORWARD
# that opens vCenter (the example site's to-vcenter flow goes from blocked to
# allowed and back); the time is taken to that flow's status line. Every
# later line number moves, so the run also counts what else is reported:
# the new excess region to vCenter and, the ruleset having far more excess
# regions than verify lists, the excess count (the other findings keep
# their fingerprints).
#
# Usage: bench/watch.sh [RULES] [CHANGES] [LIB_CHANGES]
# LIB_CHANGES (default 10000) is the number of library-level changes.
# RUNS=n sets the number of verify runs (median reported); INTERVAL sets
# watch's poll interval (default 10ms). No root needed; prerequisites:
# python3, GNU time (/usr/bin/time). Everything is written under a
# temporary directory that is removed on exit, and the watch process is
# stopped on every exit path.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/prereqs.sh
rf_need_tools python3:python3 /usr/bin/time:time || exit 2
RULES=${1:-100000}
CHANGES=${2:-20}
LIB_CHANGES=${3:-10000}
RUNS=${RUNS:-3}
INTERVAL=${INTERVAL:-10ms}
WORK=$(mktemp -d /tmp/rf-bench.XXXXXX)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release -q -p ringfence-cli
cargo build --release -q -p ringfence-analysis --example incremental_bench
BIN="$ROOT/target/release/ringfence"
SITE="$ROOT/examples/site.yaml"
python3 "$ROOT/bench/gen_ruleset.py" --rules "$RULES" "$WORK/big" >"$WORK/gen.txt"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Full verify, RUNS times: wall seconds and peak RSS (MB).
: >"$WORK/ver.all"
for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o "$WORK/t.raw" "$BIN" verify --site "$SITE" --ruleset "$WORK/big.rules" --format json >"$WORK/verify.json" || true
    tail -n1 "$WORK/t.raw" >>"$WORK/ver.all"
done
ver_wall=$(awk '{print $1}' "$WORK/ver.all" | median)
ver_mem=$(awk '{printf "%.0f\n", $2/1024}' "$WORK/ver.all" | median)

# The incremental verifier, library level.
"$ROOT/target/release/examples/incremental_bench" "$WORK/big.rules" "$SITE" "$LIB_CHANGES" >"$WORK/lib.txt"
lib() { awk -v k="$1" '$1 == k {print $2}' "$WORK/lib.txt"; }
ms() { awk -v s="$1" 'BEGIN {printf "%.3f ms", s * 1000}'; }

# watch: start it on a copy, change one rule CHANGES times, time each report.
cp "$WORK/big.rules" "$WORK/watched.rules"
python3 - "$BIN" "$SITE" "$WORK/watched.rules" "$CHANGES" "$INTERVAL" >"$WORK/watch.txt" <<'EOF'
import json, os, select, signal, subprocess, sys, time

binary, site, path, changes, interval = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
base = open(path).read()
marker = "-A FORWARD -d 198.18.1.30/32 -p tcp -m tcp --dport 443 -j ACCEPT\n"
first = base.index("-A FORWARD ")
changed = base[:first] + marker + base[first:]

def write(text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)

t_start = time.perf_counter()
p = subprocess.Popen([binary, "watch", "--site", site, "--source", "file:" + path,
                      "--interval", interval, "--format", "json"],
                     stdout=subprocess.PIPE, text=True, bufsize=1)
buf = ""
def next_line(timeout):
    global buf
    end = time.perf_counter() + timeout
    while "\n" not in buf:
        left = end - time.perf_counter()
        if left <= 0:
            return None
        r, _, _ = select.select([p.stdout], [], [], left)
        if not r:
            return None
        chunk = os.read(p.stdout.fileno(), 1 << 20).decode()
        if not chunk:
            return None
        buf += chunk
    line, buf = buf.split("\n", 1)
    return line

try:
    init = json.loads(next_line(600))
    startup = time.perf_counter() - t_start
    lat, extra = [], 0
    for i in range(changes):
        write(changed if i % 2 == 0 else base)
        t0 = time.perf_counter()
        while True:
            line = next_line(120)
            if line is None:
                sys.exit("no report within 120 s of change %d" % i)
            ev = json.loads(line)
            if (ev.get("change") == "flow-status" and ev.get("kind") == "flow"
                    and ev.get("subject") == "to-vcenter"):
                lat.append(time.perf_counter() - t0)
                break
            extra += 1
        # Anything else this change caused arrives with it; collect it.
        while next_line(0.3) is not None:
            extra += 1
    with open("/proc/%d/status" % p.pid) as f:
        hwm = [l for l in f if l.startswith("VmHWM")][0].split()[1]
finally:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
lat.sort()
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print("%.3f %.3f %.3f %.3f %.3f %d %d %.0f" % (
    startup, pct(0.5), pct(0.9), lat[0], lat[-1], len(lat), extra, int(hwm) / 1024))
EOF
read -r w_start w_med w_p90 w_min w_max w_n w_extra w_mem <"$WORK/watch.txt"

echo "Ruleset: $(cat "$WORK/gen.txt") ($(wc -l <"$WORK/big.rules") lines, $(du -h "$WORK/big.rules" | cut -f1)); site examples/site.yaml."
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| what | median | p90 | min | max | peak RSS |"
echo "|---|---|---|---|---|---|"
echo "| full \`verify\` (whole command, $RUNS runs) | ${ver_wall} s | | | | ${ver_mem} MB |"
echo "| \`watch\` start: first state printed | ${w_start} s | | | | |"
echo "| \`watch\` one-rule change -> its report ($w_n changes, poll ${INTERVAL}) | ${w_med} s | ${w_p90} s | ${w_min} s | ${w_max} s | ${w_mem} MB |"
echo "| incremental verifier: full verify in the same process | $(lib full_verify_s) s | | | | $(lib full_verify_rss_mb) MB |"
echo "| incremental verifier: build (a full verify that keeps its parts) | $(lib build_s) s | | | | |"
echo "| incremental verifier: one-rule change -> updated verdict ($(lib changes) changes), wall | $(ms "$(lib change_median_s)") | $(ms "$(lib change_p90_s)") (p99 $(ms "$(lib change_p99_s)")) | | $(ms "$(lib change_max_s)") | $(lib peak_rss_mb) MB (peak, whole run; $(lib build_rss_mb) MB after build) |"
echo "| same changes, on CPU (wall less run-queue wait) | $(ms "$(lib change_cpu_median_s)") | $(ms "$(lib change_cpu_p90_s)") (p99 $(ms "$(lib change_cpu_p99_s)")) | | $(ms "$(lib change_cpu_max_s)") | |"
echo "| incremental verifier: kube-proxy resync ($(lib resync_chains) KUBE-* chains rewritten), wall / on CPU | $(ms "$(lib resync_s)") / $(ms "$(lib resync_cpu_s)") | | | | |"
echo
echo "Lines reported besides the flow's status: $w_extra over $w_n changes (every change renumbers all later lines)."
echo "Changes that needed a full verify: $(grep -c '^full_verify_fallback' "$WORK/lib.txt" || true) kinds:"
grep '^full_verify_fallback' "$WORK/lib.txt" || true
echo "The slowest 1% of changes by time on CPU (count, change kind, chain kind):"
grep '^tail_kind' "$WORK/lib.txt" | cut -d' ' -f2- || true
grep '^slowest' "$WORK/lib.txt" | head -3 || true
echo "Final state equals a full verify: $(lib final_non_region_findings_equal) (non-region findings), $(grep '^final_excess_regions' "$WORK/lib.txt" | cut -d' ' -f2-)"
