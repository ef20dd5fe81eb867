#!/bin/sh
# Regenerate the JSON fixtures from the .nft sources with the real nft tool,
# inside a throwaway network namespace (never the root namespace's ruleset).
# Needs root and nft. Usage: sh regen.sh
set -eu
cd "$(dirname "$0")"
ns="rf-fixture-$$"
ip netns add "$ns"
trap 'ip netns delete "$ns"' EXIT
for src in *.nft; do
  ip netns exec "$ns" nft -f "$src"
  ip netns exec "$ns" nft -j list ruleset | python3 -m json.tool --indent 1 > "${src%.nft}.json"
  ip netns exec "$ns" nft flush ruleset
done
