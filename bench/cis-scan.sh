#!/usr/bin/env bash
# CIS scan benchmark: ringfence's full cis-1.6 scan of a TKG-style
# control-plane node root, side by side with kube-bench-style audits (one
# /bin/sh -c per audit command of a kube-bench-format cis-1.6) on the same
# root, in one run; then every built-in benchmark (benchmarks/cis-*.yaml) on
# the same root, in-process and as one CLI process each, beside the same
# kube-bench-style shell audits of each benchmark's kube-bench-format
# definitions. Prints Markdown table rows for BENCHMARKS.md.
#
# The audits come from the repository's own kube-bench-format cis-1.6
# (crates/ringfence-cis/tests/fixtures/kube-bench/cfg: the same audit commands
# as kube-bench's cfg/cis-1.6); KUBE_BENCH_CFG_DIR (or KUBE_BENCH_CFG) names
# another kube-bench cfg directory, e.g. kube-bench's own.
#
# Prerequisites: cargo (the release binaries are built here) and python3 with
# PyYAML, taken from the repository's .venv (scripts/python-requirements.txt),
# which is created here when missing, as scripts/test.sh does.
#
# usage: bench/cis-scan.sh [KUBE_BENCH_CFG_DIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
CFG=${1:-${KUBE_BENCH_CFG:-$repo/crates/ringfence-cis/tests/fixtures/kube-bench/cfg}}
[ -d "$CFG/cis-1.6" ] ||
  { echo "$CFG is not a kube-bench cfg directory with cis-1.6" >&2; exit 2; }
benches=$(cd "$(dirname "$0")/../benchmarks" && ls cis-*.yaml | sed 's/\.yaml$//' | sort -V)
for b in $benches; do
  [ -d "$CFG/$b" ] || { echo "$CFG has no $b, a built-in benchmark" >&2; exit 2; }
done
CFG=$(cd "$CFG" && pwd)
cd "$repo"
. scripts/lib/prereqs.sh
rf_need_tools python3:python3 || exit 2
rf_venv || { echo "could not create .venv from scripts/python-requirements.txt" >&2; exit 2; }
ROOT=$(mktemp -d /tmp/rf-cis-bench.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT

cargo build -q --release -p ringfence-cli
cargo build -q --release -p ringfence-cis --features testkit --examples
./target/release/examples/make_node_root "$ROOT/node" control-plane

# 1. In-process: discovery + 122 checks + JSON, median of 50.
inproc=$(./target/release/examples/scan_timing "$ROOT/node" 50)

# 2. End to end: the CLI process, median of 20 runs.
e2e=()
for _ in $(seq 20); do
  s=$(date +%s%N)
  ./target/release/ringfence cis scan --root "$ROOT/node" --profile tkg-1.5 --format json --out "$ROOT/out.json" || true
  e=$(date +%s%N)
  e2e+=($(( (e - s) / 1000 )))
done
e2e_us=$(printf '%s\n' "${e2e[@]}" | sort -n | sed -n "$(( ${#e2e[@]} / 2 + 1 ))p")

# 3. kube-bench-style shell audits on the same root (best of 3).
kb=$(.venv/bin/python3 bench/cis_kube_bench_audits.py "$CFG" "$ROOT/node" 3)

inproc_ms=$(sed -E 's/.*median_ms=([0-9.]+).*/\1/' <<<"$inproc")
kb_ms=$(sed -E 's/.*total_ms=([0-9.]+).*/\1/' <<<"$kb")
shells=$(sed -E 's/.*shells=([0-9]+).*/\1/' <<<"$kb")
e2e_ms=$(awk -v u="$e2e_us" 'BEGIN { printf "%.1f", u / 1000 }')
echo "machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d)"
echo "| measurement | time |"
echo "|---|---:|"
echo "| ringfence, in-process repeat scan (benchmark data already parsed; discovery + 122 checks + JSON), median of 50 | ${inproc_ms} ms |"
echo "| ringfence cis scan CLI, whole process, median of 20 | ${e2e_ms} ms |"
echo "| kube-bench-style audits, ${shells} × /bin/sh -c, best of 3 | ${kb_ms} ms |"
awk -v a="$kb_ms" -v b="$e2e_ms" -v c="$inproc_ms" 'BEGIN { printf "| ratio kube-bench-style / ringfence CLI | %.0f× |\n| ratio kube-bench-style / ringfence in-process | %.0f× |\n", a / b, a / c }'

# 4. Every built-in benchmark on the same root. In-process: one run scans with
# each in turn (discovery + checks + JSON per benchmark); the first run of the
# process also parses every embedded benchmark. Then one CLI process per
# benchmark, in a row (median of 5 rounds), and the kube-bench-style shell
# audits of each benchmark's definitions (one round).
all=$(./target/release/examples/scan_timing "$ROOT/node" 20 all)
rounds=()
for _ in $(seq 5); do
  s=$(date +%s%N)
  for b in $benches; do
    ./target/release/ringfence cis scan --root "$ROOT/node" --benchmark "$b" --format json --out "$ROOT/out.json" || true
  done
  e=$(date +%s%N)
  rounds+=($(( (e - s) / 1000 )))
done
cli_all_us=$(printf '%s\n' "${rounds[@]}" | sort -n | sed -n "$(( ${#rounds[@]} / 2 + 1 ))p")
kb_all=0
kb_all_shells=0
for b in $benches; do
  r=$(.venv/bin/python3 bench/cis_kube_bench_audits.py "$CFG" "$ROOT/node" 1 "$b")
  kb_all=$(awk -v a="$kb_all" -v b="$(sed -E 's/.*total_ms=([0-9.]+).*/\1/' <<<"$r")" 'BEGIN { printf "%.1f", a + b }')
  kb_all_shells=$(( kb_all_shells + $(sed -E 's/.*shells=([0-9]+).*/\1/' <<<"$r") ))
done
n=$(wc -w <<<"$benches")
all_first=$(sed -E 's/.*all_first_ms=([0-9.]+).*/\1/' <<<"$all")
all_median=$(sed -E 's/.*all_median_ms=([0-9.]+).*/\1/' <<<"$all")
all_checks=$(sed -E 's/.*checks=([0-9]+).*/\1/' <<<"$all")
cli_all_ms=$(awk -v u="$cli_all_us" 'BEGIN { printf "%.1f", u / 1000 }')
echo
echo "| all $n built-in benchmarks on the same root | time |"
echo "|---|---:|"
echo "| ringfence, in-process, one run of a fresh process (parses all $n; discovery + $all_checks checks + JSON) | ${all_first} ms |"
echo "| ringfence, in-process, median of 20 runs in one process | ${all_median} ms |"
echo "| ringfence cis scan CLI, $n processes in a row, median of 5 rounds | ${cli_all_ms} ms |"
echo "| kube-bench-style audits, ${kb_all_shells} × /bin/sh -c (kubectl audits left out), one round | ${kb_all} ms |"
awk -v a="$kb_all" -v b="$cli_all_ms" 'BEGIN { printf "| ratio kube-bench-style / ringfence CLI | %.0f× |\n", a / b }'
