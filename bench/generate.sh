#!/usr/bin/env bash
# Benchmark: `ringfence generate --target nftables` against Aerleon's `aclgen`
# (iptables target) on the same site, in one run, on this machine.
#
# The site (bench/generate_site.py) has 2,000 workload networks and 10 extra
# flows. ringfence renders it to nftables; Aerleon renders ringfence's own
# Aerleon export (policy + naming definitions) to iptables. Both get the same
# flows; the figures are medians of RUNS runs each: wall-clock time and CPU
# time (user + system, children included; aclgen forks renderer processes).
#
# Usage: bench/generate.sh [RUNS]
# Prerequisites: python3 and bc; Aerleon's aclgen from the repository's .venv
# (created here from scripts/python-requirements.txt, as scripts/test.sh does),
# or ACLGEN=/path/to/aclgen (relative or absolute). Optional: run as root to
# also check the big nftables output with `nft -c` inside a throwaway network
# namespace (rf-gen-bench-<pid>).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/prereqs.sh
RUNS=${1:-5}
rf_need_tools python3:python3 bc:bc || exit 2
if [ -z "${ACLGEN:-}" ]; then
  rf_venv || { echo "could not set up .venv (see above)" >&2; exit 2; }
  ACLGEN=.venv/bin/aclgen
fi
[ -x "$ACLGEN" ] || { echo "missing $ACLGEN: unset ACLGEN to use the repository's .venv, or point it at aclgen" >&2; exit 2; }
ACLGEN=$(realpath "$ACLGEN")
# The Aerleon version, from the Python environment aclgen runs in.
AERLEON_VERSION=$("$(dirname "$ACLGEN")/python3" -c 'import importlib.metadata as m; print(m.version("aerleon"))' 2>/dev/null || echo unknown)

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

read -r RF_WALL RF_CPU RF_ALL < <(python3 bench/timeit.py "$RUNS" -- \
  "$RF" generate --site "$WORK/site.yaml" --target nftables --out "$WORK/bench.nft")
read -r RI_WALL RI_CPU RI_ALL < <(python3 bench/timeit.py "$RUNS" --fresh "$WORK/ipt" -- \
  "$RF" generate --site "$WORK/site.yaml" --target iptables --out "$WORK/ipt/")
read -r AE_WALL AE_CPU AE_ALL < <(python3 bench/timeit.py "$RUNS" --cwd "$WORK/aerleon" --fresh "$WORK/out" -- \
  "$ACLGEN" --base_directory policies --definitions_directory def --output_directory "$WORK/out")
[ -n "${RF_WALL:-}" ] && [ -n "${AE_WALL:-}" ] || { echo "timing failed" >&2; exit 1; }
WALL_RATIO=$(echo "$AE_WALL / $RF_WALL" | bc -l | xargs printf '%.0f')
CPU_RATIO=$(echo "$AE_CPU / ($RF_CPU + 0.0005)" | bc -l | xargs printf '%.0f')

NFT_RULES=$(grep -c ' comment "' "$WORK/bench.nft" || true)
AE_RULES=$(grep -c '^-A ' "$WORK/out/bench-dc-v4" || true)
CHECK="not run (needs root and nft)"
if [ "$(id -u)" = 0 ] && command -v nft >/dev/null; then
  NS="rf-gen-bench-$$"
  ip netns add "$NS"
  if ip netns exec "$NS" nft -c -f "$WORK/bench.nft"; then CHECK="nft -c accepts it"; else CHECK="nft -c REJECTED it"; fi
fi

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "tools: $("$RF" --version), aerleon $AERLEON_VERSION, $(nft --version 2>/dev/null || true)"
echo "site: 2000 workload networks, 10 extra flows; runs: $RUNS (medians)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ringfence generate --target nftables: wall ${RF_WALL} s, cpu ${RF_CPU} s ($(wc -c < "$WORK/bench.nft") bytes, $NFT_RULES rules; $CHECK)"
echo "ringfence generate --target iptables (both families): wall ${RI_WALL} s, cpu ${RI_CPU} s ($(cat "$WORK"/ipt/*.rules | grep -c '^-A ') rules)"
echo "aclgen (iptables target) on ringfence's aerleon export: wall ${AE_WALL} s, cpu ${AE_CPU} s ($AE_RULES iptables rules)"
echo "ratio aclgen / ringfence: wall ${WALL_RATIO}x, cpu ${CPU_RATIO}x"
echo "ringfence wall times: $RF_ALL"
echo "aclgen wall times: $AE_ALL"
