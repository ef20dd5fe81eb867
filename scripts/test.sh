#!/usr/bin/env bash
# Run the whole ringfence test suite. On a fresh machine it first installs the
# real tools the tests drive (nftables, iptables, iproute2, etcd, nmap,
# chromium) when run as root, and a Python venv (.venv) with the pinned PyPI
# tools (Aerleon, kubernetes-validate).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pair in nft:nftables iptables-restore:iptables ip:iproute2 etcd:etcd-server nmap:nmap \
            chromium:chromium unshare:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: missing ${missing[*]}; tests that need them will say they were skipped" >&2
  fi
fi

# Pinned Python tools, used by the generation and manifest tests.
if [ -f scripts/python-requirements.txt ] && ! cmp -s scripts/python-requirements.txt .venv/.installed 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/python-requirements.txt
  cp scripts/python-requirements.txt .venv/.installed
fi

cargo test --workspace --locked --no-fail-fast "$@"

# In CI (CI=true), or when asked (FUZZ=1), run every fuzz target too: each
# tries its fixed budget of inputs from fuzz/ci-runs (about a minute), and any
# crash fails the run. See fuzz/README.md.
if [ "${CI:-}" = true ] || [ "${FUZZ:-0}" = 1 ]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-45}" ./scripts/fuzz-ci.sh
fi
