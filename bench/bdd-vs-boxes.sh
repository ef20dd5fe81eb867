#!/usr/bin/env bash
# The packet-space representation, measured: ringfence's boxes (full
# `ringfence verify`) against a Batfish-style BDD analysis of the same
# ruleset (bench/bdd: every field as BDD variables, chains walked in order
# with jumps inlined), in one run on the same file.
#
# Usage: bench/bdd-vs-boxes.sh [RULES]   (default 100000; the BDD side takes
# minutes at that size). Prints a Markdown table for BENCHMARKS.md.
# Prerequisites: python3 and GNU time (/usr/bin/time), installed here with
# apt-get when missing (as root); bench/bdd builds with cargo.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/prereqs.sh
rf_need_tools python3:python3 /usr/bin/time:time || exit 2
RULES=${1:-100000}
WORK=$(mktemp -d /tmp/rf-bdd.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

(cd "$ROOT" && cargo build --release -q -p ringfence-cli)
(cd "$ROOT/bench/bdd" && cargo build --release -q)
python3 "$ROOT/bench/gen_ruleset.py" --rules "$RULES" "$WORK/big" >"$WORK/gen.txt"

/usr/bin/time -f "%e %U %S %M" -o "$WORK/boxes.time" \
    "$ROOT/target/release/ringfence" verify --site "$ROOT/examples/site.yaml" \
    --ruleset "$WORK/big.rules" --format json >"$WORK/verify.json" || true
/usr/bin/time -f "%e %U %S %M" -o "$WORK/bdd.time" \
    "$ROOT/bench/bdd/target/release/ringfence-bdd-baseline" "$WORK/big.rules" >"$WORK/bdd.json"

python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
def t(name):
    e, u, s, m = open(f"{w}/{name}.time").read().split()[-4:]
    return float(e), float(u) + float(s), int(m) // 1024
v = json.load(open(f"{w}/verify.json"))
b = json.load(open(f"{w}/bdd.json"))
print(open(f"{w}/gen.txt").read().strip())
print()
print("| Analysis | Wall (s) | CPU (s) | Peak RSS (MB) | Notes |")
print("|---|---|---|---|---|")
e, c, m = t("boxes")
print(f"| ringfence verify (boxes): parse, flows, replies, excess, shadowed, redundant | {e:.2f} | {c:.2f} | {m} | {v['summary']['shadowed']} shadowed, {v['summary']['redundant']} redundant, {v['summary']['excess']} excess regions |")
e, c, m = t("bdd")
print(f"| BDD baseline: parse, encode every rule, walk the forward hook (accepted set + rules never matched) | {e:.2f} | {c:.2f} | {m} | parse {b['parse_s']:.2f} s, encode {b['encode_s']:.2f} s, walk {b['walk_s']:.2f} s; {b['variables']} variables; accepted set {b['accepted_nodes']} nodes; {b['rules_never_matching_in_reached_chains']} rules never matched |")
PY
