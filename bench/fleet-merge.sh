#!/usr/bin/env bash
# Time the fleet merge on N synthetic node results (default 5000), with one
# and with all threads, side by side with the anchor: the jq pipeline people
# use to summarise kube-bench/ringfence JSON from pod logs (per-check counts
# and the unexpectedly failing nodes, i.e. the same aggregation).
#
#   bench/fleet-merge.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
runs=${2:-5}
bin=target/release/ringfence
# Prerequisites: jq (the anchor), bc, python3; installed with apt-get when
# missing (as root). The release binary is built here.
. scripts/lib/prereqs.sh
rf_need_tools jq:jq bc:bc python3:python3 || exit 2
cargo build --release -q -p ringfence-cli
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 bench/fleet-gen.py "$n" "$dir/results"
echo "machine: $(nproc) cores; $n node results, $(du -sh "$dir/results" | cut -f1) on disk"

# The merge subcommand's words.
merge=(cis merge)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # label, command...
  local label=$1; shift
  "$@" >/dev/null 2>&1 || true # warm the page cache
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
  done | median | xargs printf "%-40s %8.3f s (median of $runs)\n" "$label"
}

jq_merge() {
  jq -n '[inputs | .node.name as $n | .checks[]
          | {id, n: $n, s: (if .status == "fail" then (if .expected then "xf" else "uf" end) else .status end)}]
        | group_by(.id)
        | map({id: .[0].id,
               pass: map(select(.s == "pass")) | length,
               expected_fail: map(select(.s == "xf")) | length,
               unexpected_fail: map(select(.s == "uf")) | length,
               warn: map(select(.s == "warn")) | length,
               info: map(select(.s == "info")) | length,
               unexpected_nodes: map(select(.s == "uf") | .n)})' "$dir"/results/*.json
}

timeit "ringfence ${merge[*]} --jobs 1 (json)" "$bin" "${merge[@]}" --jobs 1 --format json "$dir/results"
timeit "ringfence ${merge[*]} --jobs $(nproc) (json)" "$bin" "${merge[@]}" --jobs "$(nproc)" --format json "$dir/results"
timeit "jq -n '[inputs] | group_by(.id)...' (anchor)" jq_merge

# Same answer: per-check unexpected counts agree.
diff <("$bin" "${merge[@]}" --format json "$dir/results" | jq -c '[.checks[] | {id, unexpected_fail}] | sort_by(.id)') \
     <(jq_merge | jq -c '[.[] | {id, unexpected_fail}] | sort_by(.id)') >/dev/null \
  && echo "results agree (per-check unexpected failures)"
