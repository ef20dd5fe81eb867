#!/bin/sh
# Regenerate the JSON fixtures with the real tools, inside a throwaway network
# namespace (never the root namespace's ruleset): every *.nft through `nft -f`,
# every *.rules through `iptables-nft-restore` (iptables-nft's view in nft JSON).
# Needs root, nft and iptables-nft. Usage: sh regen.sh [SOURCE...] (default: all)
set -eu
cd "$(dirname "$0")"
ns="rf-fixture-$$"
ip netns add "$ns"
trap 'ip netns delete "$ns"' EXIT
if [ $# -eq 0 ]; then set -- *.nft *.rules; fi
for src in "$@"; do
  case "$src" in
    *.nft) ip netns exec "$ns" nft -f "$src" ;;
    *.rules) ip netns exec "$ns" iptables-nft-restore < "$src" ;;
  esac
  ip netns exec "$ns" nft -j list ruleset | python3 -m json.tool --indent 1 > "${src%.*}.json"
  ip netns exec "$ns" nft flush ruleset
done
