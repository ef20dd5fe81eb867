# shellcheck shell=bash
# Prerequisites shared by scripts/test.sh and the bench/ scripts: find a tool,
# or install the Debian package that has it (as root), and the pinned Python
# venv. Source it from the repository root: `. scripts/lib/prereqs.sh`.

# rf_need_tools TOOL:PACKAGE ... — every TOOL on PATH, installing the missing
# packages with apt-get when running as root. Prints what is still missing
# and returns 1 when anything is.
rf_need_tools() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing[*]}" >&2
    if [ -z "${RF_APT_UPDATED:-}" ]; then
      apt-get update -qq && RF_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || true
  fi
  local still=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || still+=("${pair%%:*} (apt-get install ${pair#*:})")
  done
  if [ ${#still[@]} -gt 0 ]; then
    echo "missing: ${still[*]}" >&2
    return 1
  fi
}

# rf_need_root WHY — fail with a message unless running as root.
rf_need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "needs root: $1" >&2
    return 1
  fi
}

# rf_venv — the repository's .venv with the pinned PyPI tools of
# scripts/python-requirements.txt (Aerleon, kubernetes-validate), created or
# brought up to date when the requirements changed.
rf_venv() {
  [ -f scripts/python-requirements.txt ] || return 0
  if cmp -s scripts/python-requirements.txt .venv/.installed 2>/dev/null; then
    return 0
  fi
  echo "setting up .venv from scripts/python-requirements.txt" >&2
  python3 -m venv .venv &&
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/python-requirements.txt &&
    cp scripts/python-requirements.txt .venv/.installed
}
