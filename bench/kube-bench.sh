#!/usr/bin/env bash
# Time kube-bench's cis-1.6 definitions on the TKG-style control-plane node
# root, answered two ways by the same binary in the same run:
#   native : read-only audit idioms answered in-process (no command runs)
#   exec   : --allow-exec --exec-all, every audit run by /bin/sh as kube-bench
#            does (one shell per audit, inside chroot ROOT)
# The exec run needs root: it bind-mounts the host's /bin, /usr, /lib, /lib64
# and /proc read-only into the node root inside a private mount namespace
# (unshare -m), so the chroot has a shell and tools; nothing outside the
# namespace changes. Usage: bench/kube-bench.sh [RUNS] (default 10).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
cfg=${KUBE_BENCH_CFG:-}
for c in "$repo/../shared/reference/kube-bench/cfg" "$repo/../../shared/reference/kube-bench/cfg"; do
  [ -z "$cfg" ] && [ -f "$c/config.yaml" ] && cfg=$(cd "$c" && pwd)
done
[ -n "$cfg" ] || { echo "kube-bench cfg not found; set KUBE_BENCH_CFG" >&2; exit 2; }
profile=${PROFILE:-release}
bin="$repo/target/$profile/ringfence"
[ -x "$bin" ] || { echo "build first: cargo build --$profile -p ringfence-cli" >&2; exit 2; }
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
time_runs "native idioms (no command run)" "$bin" "${args[@]}"
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  for d in bin usr lib lib64 proc sbin; do mkdir -p "$root/$d"; done
  inner="for d in bin usr lib lib64 sbin; do [ -e /\$d ] && mount --bind -o ro /\$d $root/\$d; done; mount --bind /proc $root/proc;"
  shells=$(unshare -m --propagation private sh -c "$inner strace -f -e trace=execve -qq -o $work/trace $bin ${args[*]} --allow-exec --exec-all >/dev/null 2>&1; grep 'execve(\"[^\"]*chroot\"' $work/trace | grep -vc ENOENT" 2>/dev/null || echo "?")
  echo "exec run: $shells audits through chroot ROOT /bin/sh per scan (counted with strace)"
  time_runs "--allow-exec --exec-all (/bin/sh per audit, chroot)" \
    unshare -m --propagation private sh -c "$inner exec $bin ${args[*]} --allow-exec --exec-all"
else
  echo "exec run skipped: needs root and unshare for the chroot's bind mounts"
fi
