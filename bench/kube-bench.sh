#!/usr/bin/env bash
# Time kube-bench-format cis-1.6 definitions on the TKG-style control-plane
# node root, answered two ways by the same binary in the same run:
#   native : read-only audit idioms answered in-process (no command runs)
#   exec   : --allow-exec --exec-all, every audit run by /bin/sh as kube-bench
#            does (one shell per audit, inside chroot ROOT)
#
# Definitions: the repository's own kube-bench-format cis-1.6
# (crates/ringfence-cis/tests/fixtures/kube-bench/cfg, the same checks, audits
# and tests as kube-bench's cfg/cis-1.6); KUBE_BENCH_CFG=DIR uses another
# kube-bench cfg directory, e.g. kube-bench's own.
#
# Prerequisites: cargo (the binary and the node-root builder are built here)
# and python3. The exec run also needs root and unshare (util-linux), and
# counts its shells with strace; missing tools are installed with apt-get, as
# scripts/test.sh does. It bind-mounts the host's /bin, /usr, /lib, /lib64
# and /proc read-only into the node root inside a private mount namespace
# (unshare -m), so the chroot has a shell and tools; nothing outside the
# namespace changes. Without root the exec run is skipped, and says so.
#
# Usage: bench/kube-bench.sh [RUNS] (default 10).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
cfg=${KUBE_BENCH_CFG:-$repo/crates/ringfence-cis/tests/fixtures/kube-bench/cfg}
[ -f "$cfg/config.yaml" ] && [ -d "$cfg/cis-1.6" ] ||
  { echo "KUBE_BENCH_CFG=$cfg is not a kube-bench cfg directory with cis-1.6" >&2; exit 2; }
cfg=$(cd "$cfg" && pwd)
cd "$repo"
. scripts/lib/prereqs.sh
rf_need_tools python3:python3 || exit 2
profile=${PROFILE:-release}
cargo build -q --profile "$profile" -p ringfence-cli
bin="$repo/target/$([ "$profile" = dev ] && echo debug || echo "$profile")/ringfence"
work=$(mktemp -d /tmp/rf-kb-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/node"
cargo run -q -p ringfence-cis --features testkit --example make_node_root -- "$root" control-plane
args=(cis scan --root "$root" --kube-bench-cfg "$cfg" --benchmark cis-1.6 --format json --today 2026-01-01)

ms() { date +%s%N; }
time_runs() { # label, command...
  local label=$1; shift
  local start end
  "$@" >/dev/null 2>&1 || true   # warm-up
  start=$(ms)
  for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1 || true; done
  end=$(ms)
  echo "$label: $(( (end - start) / runs / 1000 )) us per scan ($runs runs)"
}

checks=$("$bin" "${args[@]}" 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["checks"]))' || true)
echo "machine: $(nproc) cores; checks per scan: $checks; binary: $profile"
echo "definitions: $cfg"
time_runs "native idioms (no command run)" "$bin" "${args[@]}"
if [ "$(id -u)" = 0 ] && rf_need_tools unshare:util-linux; then
  rf_need_tools strace:strace || true   # only for the shell count
  for d in bin usr lib lib64 proc sbin; do mkdir -p "$root/$d"; done
  inner="for d in bin usr lib lib64 sbin; do [ -e /\$d ] && mount --bind -o ro /\$d $root/\$d; done; mount --bind /proc $root/proc;"
  shells=$(unshare -m --propagation private sh -c "$inner strace -f -e trace=execve -qq -o $work/trace $bin ${args[*]} --allow-exec --exec-all >/dev/null 2>&1; grep 'execve(\"[^\"]*chroot\"' $work/trace | grep -vc ENOENT" 2>/dev/null || echo "?")
  echo "exec run: $shells audits through chroot ROOT /bin/sh per scan (counted with strace)"
  time_runs "--allow-exec --exec-all (/bin/sh per audit, chroot)" \
    unshare -m --propagation private sh -c "$inner exec $bin ${args[*]} --allow-exec --exec-all"
else
  echo "exec run skipped: needs root and unshare for the chroot's bind mounts (see the top of this script)"
fi
