#!/usr/bin/env bash
# Benchmark: `ringfence generate --target nftables` against Aerleon's `aclgen`
# (iptables target) on the same site, in one run, on this machine.
#
# The site (bench/generate_site.py) has 2,000 workload networks and 10 extra
# flows. ringfence renders it to nftables; Aerleon renders ringfence's own
# Aerleon export (policy + naming definitions) to iptables. Both get the same
# flows; the times are wall-clock medians of RUNS runs each.
#
# Usage: bench/generate.sh [RUNS]   (needs .venv/bin/aclgen; see docs/generate.md)
# Optional: run as root to also check the big nftables output with `nft -c`
# inside a throwaway network namespace (rf-gen-bench-<pid>).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
ACLGEN=${ACLGEN:-.venv/bin/aclgen}
[ -x "$ACLGEN" ] || { echo "missing $ACLGEN: python3 -m venv .venv && .venv/bin/pip install aerleon==1.18.0" >&2; exit 2; }

cargo build --release -q -p ringfence-cli
RF=target/release/ringfence
WORK=$(mktemp -d /tmp/rf-gen-bench.XXXXXX)
NS=""
cleanup() {
  [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 bench/generate_site.py 2000 > "$WORK/site.yaml"

# Aerleon export, limited to the iptables target for a like-for-like render.
"$RF" generate --site "$WORK/site.yaml" --target aerleon --out "$WORK/aerleon"
sed -i '/^        speedway: /d' "$WORK"/aerleon/policies/pol/*.yaml

median() { sort -n | awk '{a[NR]=$1} END {m=int((NR+1)/2); printf "%.3f", a[m]}'; }
now() { date +%s.%N; }

rf_times=()
for _ in $(seq "$RUNS"); do
  t0=$(now)
  "$RF" generate --site "$WORK/site.yaml" --target nftables --out "$WORK/bench.nft"
  t1=$(now)
  rf_times+=("$(echo "$t1 - $t0" | bc -l)")
done
ae_times=()
for _ in $(seq "$RUNS"); do
  rm -rf "$WORK/out" && mkdir -p "$WORK/out"
  t0=$(now)
  (cd "$WORK/aerleon" && "$OLDPWD/$ACLGEN" --base_directory policies --definitions_directory def \
     --output_directory "$WORK/out" >/dev/null 2>"$WORK/aclgen.log") \
     || { cat "$WORK/aclgen.log" >&2; exit 1; }
  t1=$(now)
  ae_times+=("$(echo "$t1 - $t0" | bc -l)")
done

RF_MED=$(printf '%s\n' "${rf_times[@]}" | median)
AE_MED=$(printf '%s\n' "${ae_times[@]}" | median)
RATIO=$(echo "$AE_MED / $RF_MED" | bc -l | xargs printf '%.0f')

NFT_RULES=$(grep -c ' comment "' "$WORK/bench.nft" || true)
AE_RULES=$(grep -c '^-A ' "$WORK/out/bench-dc-v4" || true)
CHECK="not run (needs root and nft)"
if [ "$(id -u)" = 0 ] && command -v nft >/dev/null; then
  NS="rf-gen-bench-$$"
  ip netns add "$NS"
  if ip netns exec "$NS" nft -c -f "$WORK/bench.nft"; then CHECK="nft -c accepts it"; else CHECK="nft -c REJECTED it"; fi
fi

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "tools: $("$RF" --version), aerleon $(.venv/bin/pip show aerleon 2>/dev/null | sed -n "s/^Version: //p"), $(nft --version 2>/dev/null || true)"
echo "site: 2000 workload networks, 10 extra flows; runs: $RUNS (median wall time)"
echo "ringfence generate --target nftables: ${RF_MED} s  ($(wc -c < "$WORK/bench.nft") bytes, $NFT_RULES rules; $CHECK)"
echo "aclgen (iptables target) on ringfence's aerleon export: ${AE_MED} s  ($AE_RULES iptables rules)"
echo "ratio aclgen / ringfence: ${RATIO}x"
echo "ringfence runs: ${rf_times[*]}"
echo "aclgen runs: ${ae_times[*]}"
