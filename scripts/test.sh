#!/usr/bin/env bash
# Run the whole ringfence test suite: the README's test command, and what
# .ci/run runs.
#
# As root it first installs the real tools the tests drive (Debian's
# nftables, iptables, iproute2, etcd-server, nmap, chromium, util-linux) and a
# Python venv (.venv) with the pinned PyPI tools (Aerleon, kubernetes-validate).
#
# No skipped test is counted as passed. A test that lacks a prerequisite (root,
# a tool) records itself in a skip log and is reported here as skipped; with
# CI=true, or RINGFENCE_REQUIRE_ALL=1 (set here when running as root, after
# the installs), it fails instead, naming what is missing. Tests marked
# `#[ignore = "opt-in: ..."]` need data outside the repository and are listed
# as opt-in, not run (see CONTRIBUTING.md).
#
# The last line is the count: `tests: N passed, N failed, N skipped`.
# Arguments are passed to `cargo test` (e.g. `-p ringfence-site`).
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

is_root=0
[ "$(id -u)" = 0 ] && is_root=1

. scripts/lib/prereqs.sh
installed_all=1
if ! rf_need_tools nft:nftables iptables-restore:iptables ip6tables-restore:iptables ip:iproute2 ipset:ipset \
       etcd:etcd-server nmap:nmap chromium:chromium unshare:util-linux python3:python3; then
  echo "warning: tests that need the tools above will fail under CI=true and be listed as skipped otherwise (run as root to install them)" >&2
  installed_all=0
fi
# Pinned Python tools, used by the generation and manifest tests.
if ! rf_venv; then
  echo "error: could not create .venv from scripts/python-requirements.txt" >&2
  installed_all=0
fi

# As root with everything installed, a missing prerequisite is a bug in this
# script or the machine: make every test fail on it rather than skip.
if [ "$is_root" = 1 ] && [ "$installed_all" = 1 ]; then
  export RINGFENCE_REQUIRE_ALL=1
fi

work="$(mktemp -d /tmp/rf-test.XXXXXX)"
trap 'rm -rf "$work"' EXIT
export RINGFENCE_SKIP_LOG="$work/skipped"
: >"$RINGFENCE_SKIP_LOG"

# The whole workspace, unless the arguments name packages (-p/--package).
scope=(--workspace)
for a in "$@"; do
  case "$a" in -p|-p*|--package|--package=*) scope=() ;; esac
done
cargo test "${scope[@]}" --locked --no-fail-fast "$@" 2>&1 | tee "$work/cargo.log"
cargo_rc=${PIPESTATUS[0]}

# In CI (CI=true), or when asked (FUZZ=1), run every fuzz target too: each
# tries its fixed budget of inputs from fuzz/ci-runs (about a minute), and any
# crash fails the run. See fuzz/README.md.
fuzz_rc=0
if [ "${CI:-}" = true ] || [ "${FUZZ:-0}" = 1 ]; then
  # Under CI=true a missing nightly toolchain is a failure, like any other
  # missing prerequisite.
  FUZZ_REQUIRED="${FUZZ_REQUIRED:-$([ "${CI:-}" = true ] && echo 1 || echo 0)}" \
    FUZZ_SECONDS="${FUZZ_SECONDS:-45}" ./scripts/fuzz-ci.sh
  fuzz_rc=$?
fi

# Count. cargo prints one `test result:` line per test binary; a test that
# skipped itself returned normally and is among its "passed", so it is moved
# to "skipped" here. Ignored tests are opt-in runs or skips too.
sum() { grep -E '^test result:' "$work/cargo.log" | grep -oE "[0-9]+ $1" | awk '{s+=$1} END {print s+0}'; }
passed=$(sum passed)
failed=$(sum failed)
ignored=$(sum ignored)
mapfile -t skipped_tests < <(cut -f1 "$RINGFENCE_SKIP_LOG" | sort -u)
optin=$(grep -cE '^test .* \.\.\. ignored, opt-in' "$work/cargo.log")
# `#[ignore = "helper: ..."]` marks an entry point another test runs as a
# child process: not a test of its own, so neither run nor skipped.
helpers=$(grep -cE '^test .* \.\.\. ignored, helper:' "$work/cargo.log")
other_ignored=$((ignored - optin - helpers))
skipped=$(( ${#skipped_tests[@]} + other_ignored ))
passed=$(( passed - ${#skipped_tests[@]} ))
# Binaries that did not build or crashed print no result line.
if [ "$cargo_rc" != 0 ] && [ "$failed" = 0 ]; then
  failed=1
  echo "error: cargo test failed without a failing test (a build error or a crashed test binary)" >&2
fi

echo
if [ ${#skipped_tests[@]} -gt 0 ]; then
  echo "skipped (prerequisite missing):"
  sort -u "$RINGFENCE_SKIP_LOG" | awk -F'\t' '!seen[$1]++ {print "  " $1 ": " $2}'
fi
if [ "$other_ignored" -gt 0 ]; then
  echo "ignored:"
  grep -E '^test .* \.\.\. ignored' "$work/cargo.log" | grep -vE '\.\.\. ignored, (opt-in|helper:)' | sed 's/^test /  /'
fi
if [ "$optin" -gt 0 ]; then
  echo "opt-in, not run ($optin; they need data outside the repository, see CONTRIBUTING.md):"
  grep -E '^test .* \.\.\. ignored, opt-in' "$work/cargo.log" | sed 's/^test /  /; s/ \.\.\. ignored, / -- /'
fi
if [ "${CI:-}" = true ] || [ "${FUZZ:-0}" = 1 ]; then
  [ "$fuzz_rc" = 0 ] && echo "fuzz: every target ran its budget without a crash" || echo "fuzz: FAILED (see above)"
fi
elapsed=$(( $(date +%s) - started ))
printf 'duration: %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
echo "tests: $passed passed, $failed failed, $skipped skipped"

[ "$cargo_rc" = 0 ] && [ "$fuzz_rc" = 0 ] || exit 1
# Under CI=true nothing may be skipped.
if [ "${CI:-}" = true ] && [ "$skipped" != 0 ]; then
  echo "error: CI=true, but $skipped tests were skipped" >&2
  exit 1
fi
exit 0
