#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time; fail on any crash.
#
#   scripts/fuzz-ci.sh                 # every target, FUZZ_SECONDS (45) each
#   FUZZ_SECONDS=300 scripts/fuzz-ci.sh site nft_json
#
# Each target tries the number of inputs fuzz/ci-runs gives it, with a fixed
# libFuzzer seed: a bounded run that starts from the same mutations as a local
# one (not an identical replay: hash-map order in the targets varies between
# processes). Env: FUZZ_SECONDS (per target: with a runs
# entry, the run stops after 4x this at the latest; without one, or with
# FUZZ_SECONDS_ONLY=1, after exactly this; default 45), FUZZ_SEED (libFuzzer
# -seed, default 1; set another to explore), FUZZ_REQUIRED=1 (a missing
# nightly toolchain is an error instead of a skip), FUZZ_TOOLCHAIN (default
# nightly). Seeds come from fuzz/seeds/<target>; new inputs go to a scratch
# corpus that is removed afterwards; crashes are kept in fuzz/artifacts/<target>/.
set -u
cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-45}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

if ! rustup toolchain list 2>/dev/null | grep -q "^${TOOLCHAIN}"; then
    echo "fuzz: SKIPPED: no ${TOOLCHAIN} toolchain (cargo-fuzz needs nightly for sanitizers); install it with: rustup toolchain install nightly"
    [ "${FUZZ_REQUIRED:-0}" = 1 ] && exit 1
    exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked || { echo "fuzz: FAILED to install cargo-fuzz"; exit 1; }
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo "+${TOOLCHAIN}" fuzz list)
fi

(cd fuzz && cargo "+${TOOLCHAIN}" fuzz build -O) || { echo "fuzz: FAILED to build the targets"; exit 1; }

scratch="$(mktemp -d /tmp/rf-fuzz.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
failed=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/corpus/$t" "$scratch/tmp" "fuzz/seeds/$t"
    # A fixed number of inputs (fuzz/ci-runs) bounds the run independently of
    # the machine's speed; the time limit only guards against a slow machine.
    runs=$(awk -v t="$t" '$1 == t {print $2}' fuzz/ci-runs 2>/dev/null)
    limit=(-max_total_time="$SECONDS_EACH")
    if [ -n "$runs" ] && [ -z "${FUZZ_SECONDS_ONLY:-}" ]; then
        limit=(-runs="$runs" -max_total_time="$((SECONDS_EACH * 4))")
    fi
    log="$scratch/$t.log"
    start=$(date +%s)
    # -rss_limit_mb: a parser that needs more than 2 GiB on a small input is a bug.
    # -timeout: one input taking over 10 s is a hang.
    (cd fuzz && TMPDIR="$scratch/tmp" cargo "+${TOOLCHAIN}" fuzz run -O "$t" \
        "$scratch/corpus/$t" "seeds/$t" -- \
        "${limit[@]}" -rss_limit_mb=2048 -timeout=10 \
        -max_len=262144 -seed="${FUZZ_SEED:-1}" -print_final_stats=1) >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    if [ $rc -eq 0 ]; then
        summary+=("fuzz: ok     $t: ${execs:-?} runs in ${took}s, coverage ${cov:-?}")
    else
        failed=1
        art=$(grep -o 'fuzz/artifacts/[^ ]*\|artifacts/[^ ]*' "$log" | head -1)
        summary+=("fuzz: CRASH  $t: exit $rc after ${took}s; input ${art:-see log}")
        echo "----- $t (last 40 lines) -----"
        tail -40 "$log"
    fi
    rm -rf "$scratch/tmp"/*
done
printf '%s\n' "${summary[@]}"
exit $failed
