#!/usr/bin/env bash
# Sourced by serve.sh and test.sh: make .venv with Python 3.11+ and install the project into it, at the
# exact versions in requirements.lock (what CI tested; `bash scripts/lock.sh` regenerates it).
# Re-installs only when requirements.lock or pyproject.toml changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# 3.11 first: requirements.lock is compiled for it (CI's Python); a newer one is used only without it.
pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3 python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "walletsvc needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
stamp=.venv/.walletsvc-installed
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing walletsvc and its locked dependencies into .venv ..." >&2
  rm -f "$stamp"  # scripts/wait.sh waits for the stamp: it must not see a stale one during the install
  # Every package pinned with its hashes, then walletsvc itself (editable) without re-resolving anything.
  .venv/bin/python -m pip install --quiet --require-hashes -r requirements.lock
  .venv/bin/python -m pip install --quiet --no-deps -e .
  echo "$want" > "$stamp"
fi
